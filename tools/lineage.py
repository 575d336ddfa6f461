"""Read an experiment's lineage tree (`Ledger.experiment_tree`): walk it, describe its runs, render it
as indented text, and turn it into a score-per-iteration series.

    tree = ledger.experiment_tree(1)
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
"""

from __future__ import annotations

from collections.abc import Iterator

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
    """The task the experiment is judged on: its recorded task, else its baseline's, else its first eval's."""
    evals = tree["baselines"] or tree["evals"]
    return tree["experiment"].get("task") or (evals[0]["task"] if evals else None)


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


def render_tree(tree: dict) -> str:
    """The lineage as indented text: goal, baselines, datasets, runs nested under their parents with
    what changed, each run's checkpoint and its evals (with stderr, n and the difference to the baseline)."""
    exp = tree["experiment"]
    target = f"  target {exp['target']}" if exp.get("target") else ""
    lines = [f"experiment {exp['id']}: {exp['goal']}  [{exp['status']}]{target}"]
    if exp.get("stop_reason"):
        lines.append(f"  outcome: {exp['stop_reason']}")
    for row in tree["baselines"]:
        lines.append(f"  baseline  {format_eval(row)}  model {row['model']}")
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
            partial = "  (max_samples: not comparable)" if (row.get("details") or {}).get("max_samples") else ""
            lines.append(f"{pad}     eval {row['id']}  {format_eval(row)}{delta}{partial}")
    loose = [e for e in tree["evals"] if not e["is_baseline"] and e["run_id"] is None]
    for row in loose:
        lines.append(f"  eval {row['id']} (no run)  {format_eval(row)}  model {row['model']}")
    return "\n".join(lines)


def score_series(tree: dict, task: str | None = None) -> list[dict]:
    """One row per full evaluation of a trained checkpoint on `task` (default: the primary task), in run
    order: {"iteration" (1-based run order), "run_id", "score", "stderr", "n_samples"}."""
    task = task or primary_task(tree)
    rows = []
    for iteration, node in enumerate(runs_in_order(tree), start=1):
        for row in node["evals"]:
            if row["task"] == task and not (row.get("details") or {}).get("max_samples"):
                rows.append({"iteration": iteration, "run_id": node["id"], "score": row["value"],
                             "stderr": row["stderr"], "n_samples": row["n_samples"]})
    return rows
