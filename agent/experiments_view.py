"""Print the ledger's experiments for the CLI (`python -m agent experiments [show ID]`)."""

from __future__ import annotations

from tools.ledger import Ledger


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def print_experiments(ledger: Ledger, args: list[str]) -> int:
    if args[:1] == ["show"] and len(args) == 2 and args[1].isdigit():
        return _show(ledger, int(args[1]))
    if args:
        print("usage: python -m agent experiments [show ID]")
        return 2
    rows = ledger.experiments_table()
    if not rows:
        print("no experiments yet")
        return 0
    print(f"{'id':>4}  {'status':<8} {'runs':>4}  {'baseline':>8}  {'best':>8}  goal")
    for r in rows:
        print(f"{r['id']:>4}  {r['status']:<8} {r['runs']:>4}  {_fmt(r['baseline']):>8}  "
              f"{_fmt(r['best']):>8}  {r['goal'][:60]}")
    return 0


def _show(ledger: Ledger, experiment_id: int) -> int:
    exp = ledger.get_experiment(experiment_id)
    if exp is None:
        print(f"no experiment {experiment_id}; `python -m agent experiments` lists them")
        return 1
    print(f"experiment {exp['id']}: {exp['goal']}  [{exp['status']}]")
    for run in ledger.runs_for(experiment_id):
        parent = f" (child of run {run['parent_run_id']}: {run['change']})" if run["parent_run_id"] else ""
        print(f"  run {run['id']}: {run['method']} {run['model']} on {run['dataset']} "
              f"[{run['status']}] job={run['job_id']} backend={run['backend']}{parent}")
    for ev in ledger.evals_for(experiment_id):
        kind = "baseline" if ev["is_baseline"] else f"run {ev['run_id']}"
        print(f"  eval {ev['id']} ({kind}): {ev['task']} {ev['metric']} = {_fmt(ev['value'])}"
              f" ± {_fmt(ev['stderr'])} (n={ev['n_samples']})")
    return 0
