"""What a benchmark run (tools/run_rules.py) admits into training, checked before a run is written.

- `check_training_model`: the starting model is the run's base model, or the checkpoint of a run whose lineage
  (the runs whose checkpoints it trained from) starts at the base model; anything else is refused.
- `check_clean`: the rows of a dataset split hold no item of the benchmark's evaluation data (evals.contamination:
  exact, normalised or fuzzy copies); a set that does is refused, with the call that drops those rows.

`admit_training` runs both for write_training_script and returns the record the audit keeps
(`<run dir>/admission.json`, written by `save_admission`).
"""

from __future__ import annotations

import json
from pathlib import Path

from evals.contamination import find_contamination
from tools.context import ToolContext
from tools.errors import ToolError
from tools.run_rules import ADMISSION_FILE

EVAL_ROWS = 20_000
TRAIN_ROWS_LOCAL = 1_000_000
TRAIN_ROWS_HUB = 5_000  # a spread sample through the dataset viewer; the record says it is partial
MAX_LINEAGE = 100


def same_model(a: str | None, b: str | None) -> bool:
    """Equal Hub ids, or the same local folder."""
    def norm(x: str) -> str:
        path = Path(x).expanduser()
        return str(path.resolve()) if path.exists() else x.strip().rstrip("/")

    return bool(a and b) and norm(a) == norm(b)


def model_lineage(ctx: ToolContext, model: str) -> list[dict]:
    """The runs of this user that led to checkpoint `model`, newest first: the run whose output_dir it is, the run
    whose checkpoint that one started from, and so on. Empty when `model` is no run's checkpoint."""
    chain, current = [], model
    runs = ctx.ledger.list_runs(user=ctx.user)
    while len(chain) < MAX_LINEAGE:
        run = next((r for r in runs if r["kind"] == "train" and r.get("output_dir")
                    and same_model(r["output_dir"], current) and r not in chain), None)
        if run is None:
            return chain
        chain.append(run)
        current = run["model"]
    return chain


def check_training_model(ctx: ToolContext, model: str) -> list[dict]:
    """The lineage of `model` (empty for the base model itself); ToolError when it does not start at the base."""
    base = ctx.rules.base_model
    if same_model(model, base):
        return []
    lineage = model_lineage(ctx, model)
    if lineage and same_model(lineage[-1]["model"], base):
        return lineage
    raise ToolError(f"Refused: this benchmark run may train only the base model {base} (or a checkpoint of a run "
                    f"that started from it), not {model!r}. Fine-tuning another model, an instruct version included, "
                    f"gets the run flagged and scored as the base model. Train model={base!r}.")


def eval_items(ctx: ToolContext) -> tuple[list[str], dict]:
    """The benchmark's evaluation items (one text each) and where they were read."""
    from tools.data.rows import load_eval_items

    loaded, column, texts = load_eval_items(ctx, ctx.rules.eval_set, EVAL_ROWS)
    return texts, {**{k: v for k, v in loaded.describe().items() if k != "pages"}, "column": column}


def check_clean(ctx: ToolContext, dataset: str, split: str | None = None, config: str | None = None,
                purpose: str = "training data") -> dict:
    """The decontamination record of `dataset` against the benchmark; ToolError when any row holds an eval item."""
    from tools.data.rows import load_rows, row_text
    from tools.paths import looks_local

    local = looks_local(ctx, dataset)
    loaded = load_rows(ctx, dataset, config=config, split=split, limit=TRAIN_ROWS_LOCAL if local else TRAIN_ROWS_HUB,
                       spread=not local)
    texts, source = eval_items(ctx)
    report = find_contamination([row_text(r) for r in loaded.rows], texts)
    record = {"dataset": loaded.dataset, "split": loaded.split, "config": loaded.config, "purpose": purpose,
              "rows_checked": len(loaded.rows), "rows_total": loaded.total,
              "partial": loaded.total is not None and len(loaded.rows) < loaded.total,
              "eval_set": ctx.rules.eval_set, "eval_source": source, "eval_items": report.eval_items,
              "rows_matching": len(report.train_matches), "items_matched": report.contaminated,
              "levels": report.levels, "method": report.summary()["method"], "clean": not report.train_matches}
    if report.train_matches:
        rows = sorted(report.train_matches)[:10]
        raise ToolError(f"Refused: {len(report.train_matches)} rows of {loaded.dataset} ({loaded.split}) hold items of "
                        f"the benchmark's evaluation data {ctx.rules.eval_set} ({report.contaminated} of "
                        f"{report.eval_items} items; per level {json.dumps(report.levels)}; rows {rows}). Training "
                        f"on test items is contamination and gets the run flagged. Drop them first: "
                        f"reformat_dataset(dataset={dataset!r}, target_format=..., "
                        f"decontaminate={ctx.rules.eval_set!r}), then use the dataset it writes.")
    return record


def admit_training(ctx: ToolContext, model: str, dataset: str, split: str | None, config: str | None) -> dict | None:
    """None outside a benchmark run; else the admission record of one training run (ToolError when refused)."""
    if ctx.rules is None:
        return None
    lineage = check_training_model(ctx, model)
    check = check_clean(ctx, dataset, split=split, config=config)
    return {"base_model": ctx.rules.base_model, "model": model, "lineage_run_ids": [r["id"] for r in lineage],
            "decontamination": check}


def save_admission(run_dir: Path, record: dict | None) -> None:
    if record is not None:
        (run_dir / ADMISSION_FILE).write_text(json.dumps(record, indent=1))
