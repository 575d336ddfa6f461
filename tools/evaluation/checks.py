"""The checks that decide whether a trained score may be trusted, for run_evaluation.

- Baseline first: a trained score is recorded only when the experiment already holds a baseline of
  its starting model (the model its root training run started from; without a run, the experiment's
  base_model) on the same task spec and the same eval data.
- Contamination: the training data of the run that produced the checkpoint, and of every run it
  descends from, is checked for copies of the eval questions (evals.contamination: exact, normalised,
  fuzzy; shared template wording does not count).
  Local training data is read whole (up to TRAIN_ROWS_LOCAL rows); Hub data through the dataset
  viewer, TRAIN_ROWS_HUB rows spread over the split. The report says how much was read.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from evals.contamination import find_contamination
from evals.integrity import local_eval_texts
from evals.tasks import TASKS
from tools.context import ToolContext
from tools.errors import ToolError

TRAIN_ROWS_LOCAL = 200_000
TRAIN_ROWS_HUB = 2_000
EVAL_ROWS_HUB = 2_000
MAX_EXAMPLES = 5


def details_of(row: dict) -> dict:
    return row.get("details") or json.loads(row.get("details_json") or "null") or {}


def same_model(a: str | None, b: str | None) -> bool:
    """Two model references name the same model: equal Hub ids, or the same local folder."""
    if not a or not b:
        return False

    def norm(x: str) -> str:
        path = Path(x).expanduser()
        return str(path.resolve()) if path.exists() else x.strip().rstrip("/")

    return norm(a) == norm(b)


def training_runs(ledger, run_id: int, *, user: str) -> list[dict]:
    """The run and every run of `user` it descends from: its parent_run_id chain, and runs whose checkpoint it
    trained from."""
    seen, queue, runs = set(), [int(run_id)], []
    all_runs = None
    while queue:
        current = queue.pop(0)
        if current in seen:
            continue
        seen.add(current)
        run = ledger.get_run(current, user=user)
        if run is None:
            continue
        runs.append(run)
        if run.get("parent_run_id"):
            queue.append(int(run["parent_run_id"]))
        all_runs = all_runs if all_runs is not None else ledger.list_runs(user=user)
        queue += [r["id"] for r in all_runs if r.get("output_dir") and same_model(r["output_dir"], run["model"])]
    return runs


def starting_model(ledger, experiment_id: int, run: dict | None, *, user: str) -> str | None:
    """The model a checkpoint started from: its root training run's model, else the experiment's base_model."""
    if run is not None:
        return training_runs(ledger, run["id"], user=user)[-1]["model"]
    return (ledger.get_experiment(experiment_id, user=user) or {}).get("base_model")


def require_baseline(ctx: ToolContext, experiment_id: int, ref: dict, run: dict | None,
                     data_sha256: str | None) -> dict:
    """The baseline eval a trained score is compared with; ToolError saying to run it first when there is none."""
    start = starting_model(ctx.ledger, experiment_id, run, user=ctx.user)
    rows = [e for e in ctx.ledger.evals_for(experiment_id, user=ctx.user) if e["is_baseline"]
            and e["task"] == ref["key"] and details_of(e).get("task_spec", ref["spec"]) == ref["spec"]]
    if start:
        rows = [e for e in rows if same_model(e["model"], start) or same_model(e.get("checkpoint"), start)]
    who = f"the starting model {start}" if start else "the starting model"
    if not rows:
        raise ToolError(f"no baseline of {who} on {ref['key']} ({ref['spec']}) in this experiment: run the baseline "
                        f"first, with run_evaluation(model={start or '<starting model>'!r}, task={ref['key']!r}, "
                        "is_baseline=True) (as a job: collect it with collect_evaluation before evaluating trained "
                        "checkpoints). Every trained score is compared with it.")
    baseline = rows[-1]
    recorded = details_of(baseline).get("data_sha256")
    if data_sha256 and recorded and recorded != data_sha256:
        raise ToolError(f"the eval data of {ref['key']} changed since its baseline (eval {baseline['id']}): scores on "
                        "different items cannot be compared. Run the baseline again on the current data first.")
    return baseline


def hub_reachable(endpoint: str, timeout_s: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub endpoint opens (False when HF_HUB_OFFLINE=1)."""
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    url = urlparse(endpoint)
    try:
        with socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)),
                                      timeout=timeout_s):
            return True
    except OSError:
        return False


def _eval_texts(ctx: ToolContext, ref: dict) -> tuple[list[str], dict]:
    if ref.get("data_path"):
        texts = local_eval_texts(TASKS[ref["key"]])
        return texts, {"data": ref["data_path"], "rows_read": len(texts)}
    from tools.data.rows import load_rows

    where = ref["texts"]
    loaded = load_rows(ctx, where["hf_repo"], config=where["hf_subset"], split=where["split"], limit=EVAL_ROWS_HUB,
                       spread=True)
    column = ref["question_column"]
    return [str(r.get(column, "")) for r in loaded.rows], loaded.describe()


def _train_texts(ctx: ToolContext, run: dict) -> tuple[list[str], dict]:
    from tools.data.rows import load_rows, row_text

    config = json.loads(run["config_json"]) if run.get("config_json") else {}
    local = Path(str(run["dataset"])).expanduser().exists()
    loaded = load_rows(ctx, run["dataset"], config=config.get("dataset_config"),
                       split=config.get("dataset_split") or "train",
                       limit=TRAIN_ROWS_LOCAL if local else TRAIN_ROWS_HUB, spread=not local)
    return [row_text(r) for r in loaded.rows], {"run_id": run["id"], **loaded.describe()}


def check_contamination(ctx: ToolContext, ref: dict, run_id: int | None) -> dict:
    """{"checked", "contaminated", ...}: n-gram overlap of the checkpoint's training data with the eval questions."""
    if run_id is None:
        return {"checked": False, "contaminated": None,
                "reason": "no run_id: the data that trained this checkpoint is unknown; pass the run_id to check it."}
    try:
        eval_texts, eval_source = _eval_texts(ctx, ref)
        train_texts, sources = [], []
        for run in training_runs(ctx.ledger, run_id, user=ctx.user):
            texts, source = _train_texts(ctx, run)
            train_texts += texts
            sources.append(source)
    except (ToolError, OSError, ValueError) as err:
        return {"checked": False, "contaminated": None, "reason": f"could not read the data to compare: {err}"}
    report = find_contamination(train_texts, eval_texts)
    summary = report.summary(max_matches=MAX_EXAMPLES)
    return {"checked": True, "contaminated": report.contaminated > 0, "eval_items": report.eval_items,
            "contaminated_items": report.contaminated, "fraction": report.fraction, "levels": report.levels,
            "eval_indices": [m.eval_index for m in report.matches][:100],
            "train_rows_matching": len(report.train_matches), "matches": summary["matches"],
            "skipped_short_items": len(report.skipped), "method": summary["method"], "eval_source": eval_source,
            "train_sources": sources, "train_rows_read": len(train_texts)}


def contamination_warning(report: dict, key: str) -> str:
    levels = ", ".join(f"{n} {level}" for level, n in report["levels"].items() if n)
    first = report["matches"][0]["eval_text"][:120] if report["matches"] else ""
    return (f"CONTAMINATED: {report['contaminated_items']} of {report['eval_items']} {key} eval questions "
            f"({100 * report['fraction']:.1f}%) occur in this checkpoint's training data ({levels}; e.g. \"{first}\"). "
            "This score is not a held-out result and must not be reported as one: drop the matching rows "
            "(reformat_dataset with decontaminate=...) and retrain.")
