"""The end of a headless run: settle the experiment's status, write its markdown report (saved in the
ledger and printed by the CLI), and with an HF token push the best checkpoint with a model card whose
model-index metadata holds the evaluation table.

    report = end_of_run(session)                     # after the session's turn
    build_report(ledger, 3, user="local")            # the markdown of one of the user's experiments
    push_best_model(ledger, 3, settings, user="local")  # {"repo_id", "url", "run_id", "files"}
"""

from __future__ import annotations

import math
from pathlib import Path

from agent.target import Budget
from tools.ledger import Ledger
from tools.lineage import (
    baseline_of,
    best,
    change_of,
    find_run,
    format_cost,
    format_duration,
    format_eval,
    hyperparameters,
    is_full_eval,
    judged_tasks,
    primary_task,
    runs_in_order,
)
from tools.redact import redact
from tools.settings import Settings
from tools.targets import targets_of

# A difference smaller than this many combined standard errors is reported as within noise.
NOISE_SIGMAS = 2.0


def best_evals(tree: dict) -> list[dict]:
    """The best trained score per judged task that has one (`tools.lineage.judged_tasks` and `best`)."""
    found = [best(tree["evals"], task, lower_is_better) for task, lower_is_better in judged_tasks(tree)]
    return [row for row in found if row is not None]


def compare(best: dict, base: dict | None) -> str:
    """The difference to the baseline with how many combined stderrs it spans."""
    if base is None:
        return "no baseline"
    delta = best["value"] - base["value"]
    errors = [e for e in (best["stderr"], base["stderr"]) if e is not None]
    if len(errors) < 2 or not math.hypot(*errors):
        return f"{delta:+.3f}"
    sigmas = abs(delta) / math.hypot(*errors)
    verdict = "within noise" if sigmas < NOISE_SIGMAS else "beyond noise"
    return f"{delta:+.3f} ({sigmas:.1f}× the combined stderr: {verdict})"


def build_report(ledger: Ledger, experiment_id: int, *, user: str) -> str:
    """One of `user`'s experiments as a markdown report: goal, target, scores with uncertainty, every run, the spend
    so far, and the commands that reproduce the best run. ValueError when the user has no such experiment."""
    tree = ledger.experiment_tree(experiment_id, user=user)
    if tree is None:
        raise ValueError(f"there is no experiment {experiment_id} in the ledger")
    exp = tree["experiment"]
    outcome = f" — {exp['stop_reason']}" if exp.get("stop_reason") else ""
    lines = [f"# ml-intern report: experiment {exp['id']}", "", f"**Goal:** {exp['goal']}",
             f"**Status:** {exp['status']}{outcome}"]
    best = best_evals(tree)
    for target in targets_of(exp):
        row = next((b for b in best if b["task"] == target.task), None)
        state = (f"met by run {row['run_id']} ({row['value']:.3f})" if row and target.met_by(row["value"])
                 else f"not met (best {row['value']:.3f})" if row else "not met (no trained evaluation)")
        lines.append(f"**Target:** {target} — {state}")
    if exp.get("budget"):
        lines.append(f"**Budget:** {Budget(**exp['budget'])}")
    lines += ["", "## Scores", "", "| | task | metric | score | stderr | n | vs baseline |",
              "|---|---|---|---|---|---|---|"]
    for base in tree["baselines"]:
        lines.append(f"| baseline | {base['task']} | {base['metric']} | {base['value']:.3f} | "
                     f"{_num(base['stderr'])} | {_num(base['n_samples'])} | |")
    for row in best:
        lines.append(f"| best: run {row['run_id']} | {row['task']} | {row['metric']} | {row['value']:.3f} | "
                     f"{_num(row['stderr'])} | {_num(row['n_samples'])} | "
                     f"{compare(row, baseline_of(tree, row['task']))} |")
    if not best:
        lines.append("\nNo trained checkpoint was evaluated in full.")
    lines += ["", "## What was tried", ""] + _runs_table(tree)
    lines += ["", "## Data", ""] + _data_lines(tree)
    wall = (exp["finished_at"] - exp["created_at"]) / 3600 if exp.get("finished_at") else None
    wall_text = f" · wall time {wall:.2f} h" if wall is not None else ""
    lines += ["", "## Cost", "", spend_line(ledger, exp, user=user) + wall_text]
    if best:
        lines += ["", "## Reproduce the best run", ""] + reproduce_lines(tree, best[0])
    return "\n".join(lines)


def spend_line(ledger: Ledger, exp: dict, *, user: str) -> str:
    """The spend so far from the spend ledger: the experiment's session's (LLM calls are the session's), else the
    experiment's own rows; holds of running jobs and LLM calls of unknown price are named."""
    spend = (ledger.session_spend(exp["session_id"], user=user) if exp.get("session_id")
             else ledger.experiment_spend(exp["id"], user=user))
    unpriced = spend["unpriced_calls"]
    calls = f"{unpriced} call{'s' if unpriced != 1 else ''}"
    llm = format_cost(spend["llm_usd"]) + (f" (+ {calls} of unknown price)" if unpriced else "")
    held = (f" · held for running jobs: {format_cost(spend['reserved_usd'])}" if spend["reserved_usd"] else "")
    budget = (exp.get("budget") or {}).get("usd")
    of = f" of the ${budget:g} budget" if budget else ""
    return (f"Training and evaluation jobs: {format_cost(spend['jobs_usd'])} · LLM: {llm}{held} · total "
            f"{format_cost(spend['total_usd'])}{of}")


def _num(value) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _runs_table(tree: dict) -> list[str]:
    runs = runs_in_order(tree)
    if not runs:
        return ["No training run was written."]
    lines = ["| run | parent | change (why) | method | hyperparameters | score | status | duration | cost |",
             "|---|---|---|---|---|---|---|---|---|"]
    task = (best_evals(tree) or [{"task": primary_task(tree)}])[0]["task"]
    for node in runs:
        scores = [format_eval(e) for e in node["evals"] if e["task"] == task and is_full_eval(e)]
        status = node["status"] + (f": {node['error']}" if node.get("error") else "")
        lines.append(f"| {node['id']} | {node['parent_run_id'] or '-'} | {change_of(node, tree) or '-'} | "
                     f"{node['method']} | {hyperparameters(node['config'])} | {'; '.join(scores) or '-'} | "
                     f"{status} | {format_duration(node['duration_s'])} | {format_cost(node['cost_usd'])} |")
    return lines


def _data_lines(tree: dict) -> list[str]:
    used = {node["dataset"] for node in runs_in_order(tree)}
    lines = []
    for data in tree["datasets"]:
        transform = f"; transform {data['transform']}" if data["transform"] else ""
        lines.append(f"- dataset {data['id']}: `{data['path']}` from {data['source']} ({data['format'] or '?'}, "
                     f"{data['rows'] or '?'} rows){transform}")
        used.discard(data["path"])
    lines += [f"- `{path}`" for path in sorted(used)]
    return lines or ["No dataset recorded."]


def reproduce_lines(tree: dict, best: dict) -> list[str]:
    """The commands that retrain and re-evaluate the best checkpoint, as a fenced block."""
    run = find_run(tree, best["run_id"])
    lines = ["```bash"]
    if run and run.get("script_path"):
        sha = f" (sha256 {run['script_sha256'][:12]})" if run.get("script_sha256") else ""
        lines.append(f"# train: run {run['id']}, script{sha}")
        if run.get("backend") == "hf-jobs":
            lines.append(f"hf jobs uv run --flavor {run.get('hardware') or 'cpu-basic'} --secrets HF_TOKEN "
                         f"{run['script_path']}")
        else:
            lines.append(f"uv run --script {run['script_path']}")
    lines += [f"# evaluate (from the ml-intern repository root): eval {best['id']}", best.get("command") or
              "# the evaluation command was not recorded", "```"]
    if run and run.get("output_dir"):
        lines.append(f"\nCheckpoint: `{run['output_dir']}`")
    return lines


def model_card(tree: dict, best: dict, repo_id: str):
    """A ModelCard for the best checkpoint: model-index eval results in its metadata, the report's score
    table and reproduction commands in its body."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    from tools.backends.hub import is_hub_id
    from tools.training.scripts import is_local_path

    run = find_run(tree, best["run_id"])
    results = [e for e in run["evals"] if is_full_eval(e)]
    data = ModelCardData(
        model_name=repo_id.split("/")[-1], library_name="transformers",
        base_model=run["model"] if is_hub_id(run["model"]) and not is_local_path(run["model"]) else None,
        tags=["ml-intern", "trl", run["method"]],
        eval_results=[EvalResult(task_type="text-generation", dataset_type=e["task"], dataset_name=e["task"],
                                 metric_type=e["metric"], metric_name=e["metric"], metric_value=e["value"])
                      for e in results])
    rows = ["| | task | metric | score | stderr | n |", "|---|---|---|---|---|---|"]
    for label, row in [("baseline", b) for b in tree["baselines"]] + [("this model", e) for e in results]:
        rows.append(f"| {label} | {row['task']} | {row['metric']} | {row['value']:.4f} | {_num(row['stderr'])} | "
                    f"{_num(row['n_samples'])} |")
    body = [f"# {repo_id.split('/')[-1]}", "", f"Trained by ml-intern for: {tree['experiment']['goal']}", "",
            f"Run {run['id']}: {run['method']} of `{run['model']}` on `{run['dataset']}` "
            f"({hyperparameters(run['config'])}).", "", "## Evaluation", "", *rows, "", "## Reproduce", "",
            *reproduce_lines(tree, best)]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body) + "\n")


def push_best_model(ledger: Ledger, experiment_id: int, settings: Settings, repo_id: str | None = None,
                    private: bool = True, *, user: str) -> dict:
    """Upload the best evaluated checkpoint of one of `user`'s experiments and its model card in one commit."""
    from huggingface_hub import CommitOperationAdd

    from tools.backends.hub import hf_api

    tree = ledger.experiment_tree(experiment_id, user=user)
    best = best_evals(tree) if tree else []
    if not best:
        raise ValueError(f"experiment {experiment_id} has no fully evaluated trained checkpoint to push")
    run = find_run(tree, best[0]["run_id"])
    checkpoint = Path(run["output_dir"] or "")
    if not (checkpoint / "config.json").is_file():
        raise ValueError(f"the best checkpoint {checkpoint} is not a local model folder (a job's checkpoint lives "
                         "where the job pushed it)")
    api = hf_api(settings)
    if repo_id is None:
        namespace = settings.hf_namespace or api.whoami()["name"]
        repo_id = f"{namespace}/ml-intern-experiment-{experiment_id}"
    url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    files = sorted(p for p in checkpoint.rglob("*") if p.is_file() and p.name != "README.md")
    operations = [CommitOperationAdd(path_in_repo=p.relative_to(checkpoint).as_posix(), path_or_fileobj=str(p))
                  for p in files]
    card = model_card(tree, best[0], repo_id)
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode()))
    api.create_commit(repo_id, operations=operations, repo_type="model",
                      commit_message=f"ml-intern experiment {experiment_id}: best checkpoint (run {run['id']})")
    return {"repo_id": repo_id, "url": str(url), "run_id": run["id"], "files": len(operations)}


def end_of_run(session, push: bool = True, repo_id: str | None = None) -> str:
    """Settle the session's experiment, push its best checkpoint when an HF token is set and `push`, save
    the report in the ledger and return it (secrets redacted)."""
    experiment_id = session.ctx.experiment_id
    if experiment_id is None:
        return "No experiment was recorded: the agent used no tool that writes the ledger."
    if session.guard is not None:
        session.guard.settle(session.final_answer)
    ledger, settings = session.ledger, session.config.settings
    report = build_report(ledger, experiment_id, user=session.ctx.user)
    if push and settings.hf_token:
        try:
            pushed = push_best_model(ledger, experiment_id, settings, repo_id=repo_id, user=session.ctx.user)
            report += (f"\n\n## Model\n\nThe best checkpoint (run {pushed['run_id']}) is on the Hub: "
                       f"{pushed['url']} (private), with this evaluation table in its model card.")
        except Exception as err:  # the report matters more than the upload; say why it failed
            report += f"\n\n## Model\n\nThe best checkpoint was not pushed: {type(err).__name__}: {err}"
    report = redact(report, session.config.secrets)
    ledger.update_experiment(experiment_id, report=report)
    return report
