"""Print the ledger's experiments for the CLI.

    python -m agent experiments            # one line per experiment
    python -m agent experiments show ID    # the lineage tree: datasets, runs (parent → child with the change),
                                           # checkpoints and evals with stderr and n
    python -m agent experiments report ID  # the markdown report (saved at the end of a headless run)
"""

from __future__ import annotations

from tools.ledger import Ledger
from tools.lineage import render_tree

USAGE = "usage: python -m agent experiments [show ID | report ID]"


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def experiments_lines(ledger: Ledger, *, user: str) -> list[str]:
    rows = ledger.experiments_table(user=user)
    if not rows:
        return ["no experiments yet"]
    lines = [f"{'id':>4}  {'status':<16} {'runs':>4}  {'baseline':>8}  {'best':>8}  {'cost':>8}  "
             f"{'target':<20}  goal"]
    for r in rows:
        cost = f"${r['cost_usd']:.2f}"
        lines.append(f"{r['id']:>4}  {r['status']:<16} {r['runs']:>4}  {_fmt(r['baseline']):>8}  "
                     f"{_fmt(r['best']):>8}  {cost:>8}  {(r['target'] or '-')[:20]:<20}  {r['goal'][:60]}")
    return lines


def print_experiments(ledger: Ledger, args: list[str], *, user: str) -> int:
    """Print `user`'s experiments (or one of them: show, report); another user's experiment is not there."""
    if len(args) == 2 and args[0] in ("show", "report") and args[1].isdigit():
        experiment_id = int(args[1])
        tree = ledger.experiment_tree(experiment_id, user=user)
        if tree is None:
            print(f"no experiment {experiment_id}; `python -m agent experiments` lists them")
            return 1
        if args[0] == "show":
            print(render_tree(tree))
        else:
            from agent.report import build_report

            print(tree["experiment"]["report"] or build_report(ledger, experiment_id, user=user))
        return 0
    if args:
        print(USAGE)
        return 2
    print("\n".join(experiments_lines(ledger, user=user)))
    return 0
