"""Read an experiment's lineage tree (`Ledger.experiment_tree`): walk it, describe its runs, render it
as indented text, and turn it into a score-per-iteration series. This is also the one home of the
best-score rule, which the ledger, the report, the target guard and the app use:

    judged_tasks(tree)                       -> [("tiny_sentiment", False)]  each target's task, else the primary
    best(tree["evals"], "tiny_sentiment", lower_is_better=False)  -> the best full trained eval row, or None

    tree = ledger.experiment_tree(1, user="local")
    print(render_tree(tree))
    experiment 1: improve tiny on tiny_sentiment  [met]  target tiny_sentiment>=0.6
      baseline  tiny_sentiment acc 0.500 ± 0.046 (n=120)  model tiny
      dataset 1  /data/ds1 (prompt-completion, 360 rows)  ← raw/reviews  transform {...}
      run 1  sft [completed]  lr 0.003, max_steps 15, batch 16  · 14 s · -  job local-1 on local
         data: dataset 1
         checkpoint /ckpt/1
           eval 2  tiny_sentiment acc 0.500 ± 0.046 (n=120)  Δ +0.000
        └─ run 2 (child of run 1: max_steps 15 → 150)  sft [completed]  lr 0.003, max_steps 150, …  · 60 s · $0.25
           checkpoint /ckpt/2
             eval 3  tiny_sentiment acc 0.710 ± 0.042 (n=120)  Δ +0.210
             eval run 3  tiny_sentiment|0 [completed] · 40 s · $0.01  job 68a1f on hf-jobs
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from tools.targets import targets_of

# Hyperparameters shown for a run, in this order, with their short labels; METHOD_HYPERPARAMETERS only for
# the methods that use them.
KEY_HYPERPARAMETERS = (("learning_rate", "lr"), ("max_steps", "max_steps"), ("num_train_epochs", "epochs"),
                       ("per_device_train_batch_size", "batch"), ("gradient_accumulation_steps", "grad_accum"),
                       ("lora", "lora"), ("qlora", "qlora"), ("lora_r", "lora_r"), ("beta", "beta"),
                       ("num_generations", "generations"), ("reward_functions", "rewards"))
METHOD_HYPERPARAMETERS = {"beta": ("dpo", "grpo"), "num_generations": ("grpo",), "reward_functions": ("grpo",)}
# Config keys that name where things are, not how the run trains: left out of diffs.
NOT_HYPERPARAMETERS = {"output_dir", "hub_model_id", "push_to_hub"}


def walk_runs(tree: dict) -> Iterator[tuple[int, dict]]:
    """(depth, run node) depth-first, children after their parent, siblings in creation order."""
    stack = [(0, node) for node in reversed(tree["runs"])]
    while stack:
        depth, node = stack.pop()
        yield depth, node
        stack.extend((depth + 1, child) for child in reversed(node["children"]))


def runs_in_order(tree: dict) -> list[dict]:
    """Every run node, in the order the runs were created (the iterations)."""
    return sorted((node for _, node in walk_runs(tree)), key=lambda n: n["id"])


def find_run(tree: dict, run_id: int | None) -> dict | None:
    return next((node for _, node in walk_runs(tree) if node["id"] == run_id), None)


def primary_task(tree: dict) -> str | None:
    """The experiment's main task: its recorded task, else its baseline's, else its first eval's."""
    evals = tree["baselines"] or tree["evals"]
    return tree["experiment"].get("task") or (evals[0]["task"] if evals else None)


def judged_tasks(tree: dict) -> list[tuple[str | None, bool]]:
    """(task, lower_is_better) the experiment is judged on, never empty: each target's task with its
    direction, else the primary task with higher is better (its task is None when there is none).
    `tree` needs "experiment", "baselines" and "evals"."""
    return [(t.task, t.lower_is_better) for t in targets_of(tree["experiment"])] or [(primary_task(tree), False)]


def is_full_eval(row: dict) -> bool:
    """False for an evaluation limited with max_samples (a smoke check, not a comparable score)."""
    details = row.get("details")
    if details is None and row.get("details_json"):
        details = json.loads(row["details_json"])
    return not (details or {}).get("max_samples")


def is_trained_score(row: dict) -> bool:
    """True for a full evaluation of a trained checkpoint: linked to a run, not a baseline, not max_samples-limited."""
    return bool(row["run_id"]) and not row["is_baseline"] and is_full_eval(row)


def best(evals: list[dict], task: str | None, lower_is_better: bool = False) -> dict | None:
    """The best trained score (`is_trained_score`) on `task` among eval rows: the lowest value when lower is
    better, else the highest; the first recorded wins a tie. None when there is none."""
    rows = [e for e in evals if e["task"] == task and is_trained_score(e)]
    return (min if lower_is_better else max)(rows, key=lambda e: e["value"], default=None)


def baseline_of(tree: dict, task: str | None) -> dict | None:
    rows = [e for e in tree["baselines"] if e["task"] == task]
    return rows[-1] if rows else None


def hyperparameters(config: dict) -> str:
    """The run's key hyperparameters as short text, e.g. "lr 0.003, max_steps 150, batch 16"."""
    parts = []
    for key, label in KEY_HYPERPARAMETERS:
        value = config.get(key)
        skip = (value in (None, False, [], "") or (key in METHOD_HYPERPARAMETERS
                                                  and config.get("method") not in METHOD_HYPERPARAMETERS[key])
                or (key == "num_train_epochs" and (config.get("max_steps") or 0) > 0)
                or (key == "gradient_accumulation_steps" and value == 1)
                or (key == "lora_r" and not config.get("lora")))
        if not skip:
            text = value if not isinstance(value, list) else "+".join(map(str, value))
            parts.append(label if value is True else f"{label} {value:g}" if isinstance(value, float) else
                         f"{label} {text}")
    return ", ".join(parts)


def config_diff(parent: dict, child: dict) -> str:
    """What changed from `parent`'s config to `child`'s, e.g. "max_steps 15 → 150"."""
    keys = [k for k in {**parent, **child} if k not in NOT_HYPERPARAMETERS and parent.get(k) != child.get(k)]
    return ", ".join(f"{k} {str(parent.get(k))[:40]} → {str(child.get(k))[:40]}" for k in keys)


def change_of(node: dict, tree: dict) -> str | None:
    """The recorded change of a child run, else the difference of its config from its parent's."""
    if node.get("change"):
        return node["change"]
    parent = find_run(tree, node.get("parent_run_id"))
    if parent is None:
        return None
    return config_diff(parent["config"], node["config"]) or None


def format_eval(row: dict) -> str:
    stderr = f" ± {row['stderr']:.3f}" if row.get("stderr") is not None else ""
    n = f" (n={row['n_samples']})" if row.get("n_samples") is not None else ""
    return f"{row['task']} {row['metric']} {row['value']:.3f}{stderr}{n}"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def format_cost(usd: float | None) -> str:
    return "-" if usd is None else f"${usd:.2f}"


def format_eval_run(run: dict) -> str:
    """An evaluation run on one line: "eval run 4  tiny_sentiment|0 [completed] · 40 s · $0.01  job j on hf-jobs"."""
    job = f"  job {run['job_id']} on {run['backend']}" if run.get("job_id") else ""
    return (f"eval run {run['id']}  {run['dataset']} [{run['status']}] · {format_duration(run['duration_s'])} · "
            f"{format_cost(run['cost_usd'])}{job}")


def render_tree(tree: dict) -> str:
    """The lineage as indented text: goal, baselines, datasets, runs nested under their parents with
    what changed, each run's checkpoint, its evals (with stderr, n and the difference to the baseline) and
    the evaluation jobs that scored it; evaluation jobs of no training run of the tree (baselines) at the top."""
    exp = tree["experiment"]
    target = f"  target {exp['target']}" if exp.get("target") else ""
    lines = [f"experiment {exp['id']}: {exp['goal']}  [{exp['status']}]{target}"]
    if exp.get("stop_reason"):
        lines.append(f"  outcome: {exp['stop_reason']}")
    for row in tree["baselines"]:
        lines.append(f"  baseline  {format_eval(row)}  model {row['model']}")
    for run in tree["eval_runs"]:
        if find_run(tree, run["parent_run_id"]) is None:
            lines.append(f"  {format_eval_run(run)}  model {run['model']}")
    for data in tree["datasets"]:
        shape = ", ".join(str(x) for x in (data["format"], f"{data['rows']} rows" if data["rows"] else None) if x)
        origin = f"  ← {data['source']}" if data["source"] and data["source"] != data["path"] else ""
        transform = f"  transform {data['transform']}" if data["transform"] else ""
        lines.append(f"  dataset {data['id']}  {data['path']}" + (f" ({shape})" if shape else "") + origin + transform)
    for depth, node in walk_runs(tree):
        pad = "  " * (depth + 1)
        head = f"{pad}└─ run {node['id']}" if depth else f"{pad}run {node['id']}"
        if node.get("parent_run_id"):
            head += f" (child of run {node['parent_run_id']}: {change_of(node, tree) or 'change not recorded'})"
        job = f"  job {node['job_id']} on {node['backend']}" if node.get("job_id") else ""
        lines.append(f"{head}  {node['method']} [{node['status']}]  {hyperparameters(node['config'])}"
                     f"  · {format_duration(node['duration_s'])} · {format_cost(node['cost_usd'])}{job}")
        if node.get("dataset_id"):
            lines.append(f"{pad}   data: dataset {node['dataset_id']}")
        if node.get("error"):
            lines.append(f"{pad}   error: {node['error']}")
        if node.get("output_dir"):
            lines.append(f"{pad}   checkpoint {node['output_dir']}")
        for row in node["evals"]:
            base = baseline_of(tree, row["task"])
            delta = f"  Δ {row['value'] - base['value']:+.3f}" if base else ""
            partial = "" if is_full_eval(row) else "  (max_samples: not comparable)"
            lines.append(f"{pad}     eval {row['id']}  {format_eval(row)}{delta}{partial}")
        for run in node["eval_runs"]:
            lines.append(f"{pad}     {format_eval_run(run)}")
    loose = [e for e in tree["evals"] if not e["is_baseline"] and e["run_id"] is None]
    for row in loose:
        lines.append(f"  eval {row['id']} (no run)  {format_eval(row)}  model {row['model']}")
    return "\n".join(lines)


def score_series(tree: dict, task: str | None = None) -> list[dict]:
    """One row per trained score (`is_trained_score`) on `task` (default: the first judged task), in run
    order: {"iteration" (1-based run order), "run_id", "score", "stderr", "n_samples"}."""
    task = task or judged_tasks(tree)[0][0]
    rows = []
    for iteration, node in enumerate(runs_in_order(tree), start=1):
        for row in node["evals"]:
            if row["task"] == task and is_trained_score(row):
                rows.append({"iteration": iteration, "run_id": node["id"], "score": row["value"],
                             "stderr": row["stderr"], "n_samples": row["n_samples"]})
    return rows
