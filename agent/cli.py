"""The command line: headless runs, an interactive terminal chat, and the offline demo.

    ml-intern "improve Qwen3-1.7B on GSM8K"   # headless, auto-approve, prints the stream and a report
    ml-intern "improve Qwen3-1.7B on GSM8K" --target "gsm8k>=0.60" --budget-usd 20 --budget-hours 10
    ml-intern                                  # interactive chat; paid actions asked at the prompt
    python -m agent --demo                     # scripted offline demo on a tiny model
    python -m agent --demo --target "tiny_sentiment>=0.6"   # the demo iterates until the target is met
    python -m agent experiments                # the ledger's experiments
    python -m agent experiments show 1         # one experiment's lineage tree
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent.config import BACKENDS, DEMO_PLAN, AgentConfig
from agent.events import Event
from agent.target import Budget
from tools.targets import parse_targets

ICONS = {"user": ">", "thought": "💭", "code": "⌨", "tool_result": "↳", "job_update": "⚙", "eval_result": "📊",
         "run_created": "📝", "preflight": "🔎", "diagnosis": "🩺", "notice": "ℹ", "error": "✗",
         "final_answer": "✓", "token_usage": "·", "approval": "?"}


def format_event(event: Event) -> str | None:
    """One event as terminal text; None for events the terminal does not show."""
    if event.kind == "delta":
        return None
    icon = ICONS.get(event.kind, "-")
    if event.kind == "code":
        body = "\n".join("    " + line for line in event.text.splitlines())
        return f"{icon} code:\n{body}"
    if event.kind == "eval_result":
        d = event.data
        label = "baseline" if d.get("is_baseline") else "checkpoint"
        return f"{icon} eval ({label}): {d.get('task')} {d.get('metric')} = {d.get('value')}"
    if event.kind == "job_update":
        d = event.data
        progress = d.get("progress") or {}
        step = f" step {progress.get('step')}/{progress.get('max_steps')}" if progress.get("step") else ""
        loss = (d.get("latest_metrics") or {}).get("loss")
        loss_text = f" loss {loss:.4g}" if isinstance(loss, float) else ""
        return f"{icon} job {d.get('job_id')}: {d.get('stage')}{step}{loss_text}"
    if event.kind == "run_created":
        d = event.data
        return f"{icon} run {d.get('run_id')} created: {d.get('method')} {d.get('model')} on {d.get('dataset')}"
    return f"{icon} {event.kind}: {event.text}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ml-intern", description="An autonomous ML engineer for LLM post-training.")
    parser.add_argument("task", nargs="*", help="the goal; omit it for an interactive chat. "
                        "'experiments' [show ID | report ID] reads the ledger instead")
    parser.add_argument("--demo", action="store_true", help="run the scripted offline demo")
    parser.add_argument("--backend", choices=BACKENDS, help="LLM backend (default: anthropic)")
    parser.add_argument("--model", help="LLM model id")
    parser.add_argument("--compute", choices=["auto", "local", "hf-jobs"], help="where jobs run")
    parser.add_argument("--data-dir", type=Path, help="where the ledger and runs live")
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--plan", type=Path, help="with --backend scripted: the YAML plan to replay")
    parser.add_argument("--target", help='headless: keep iterating until met, e.g. "gsm8k>=0.60" '
                        '(several: comma-separated; comparators >=, >, <=, <)')
    parser.add_argument("--budget-usd", type=float, help="headless: stop once the jobs (and LLM, if known) cost this")
    parser.add_argument("--budget-hours", type=float, help="headless: stop after this many wall-clock hours")
    parser.add_argument("--hub-repo", help="with HF_TOKEN: Hub repo for the best checkpoint "
                        "(default <user>/ml-intern-experiment-ID)")
    parser.add_argument("--no-push", action="store_true", help="do not push the best checkpoint, even with HF_TOKEN")
    return parser


def _config(args) -> AgentConfig:
    config = AgentConfig.from_env()
    settings = config.settings
    if args.data_dir:
        settings = settings.with_(data_dir=args.data_dir)
    if args.compute:
        settings = settings.with_(compute_backend=args.compute)
    if args.demo:
        from agent.demo import DEMO_ITERATE_PLAN

        return AgentConfig.demo(settings=settings, plan=DEMO_ITERATE_PLAN if args.target else DEMO_PLAN)
    changes = {"settings": settings}
    for name, value in (("backend", args.backend), ("model_id", args.model),
                        ("max_steps", args.max_steps), ("scripted_plan", args.plan)):
        if value is not None:
            changes[name] = value
    return config.with_(**changes)


def _ask(action: str, details: dict) -> bool:
    summary = ", ".join(f"{k}={v}" for k, v in details.items())
    answer = input(f"\n? approve {action} ({summary})? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def _print_turn(session, text: str, variables: dict | None = None) -> None:
    previous = None
    for event in session.run(text, variables=variables):
        line = format_event(event)
        if line and event.kind != "user" and line != previous:
            print(line, flush=True)
        previous = line


def _end(session, push: bool = True, repo_id: str | None = None) -> int:
    """Print the run's report; exit code 0 when it met its target (or, without one, answered)."""
    from agent.report import end_of_run

    print("\n" + end_of_run(session, push=push, repo_id=repo_id), flush=True)
    ctx = session.ctx
    experiment = session.ledger.get_experiment(ctx.experiment_id, user=ctx.user) if ctx.experiment_id else None
    return 0 if experiment and experiment["status"] in ("met", "done") else 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        targets = parse_targets(args.target) if args.target is not None else []
        budget = Budget(usd=args.budget_usd, hours=args.budget_hours)
    except ValueError as err:
        print(f"ml-intern: error: {err}", file=sys.stderr)
        return 2
    if (targets or budget) and not (args.task or args.demo):
        print("ml-intern: error: --target and --budget-* hold a headless run: give a task or --demo",
              file=sys.stderr)
        return 2
    config = _config(args)
    from tools.ledger import LOCAL_USER, Ledger

    ledger = Ledger.in_dir(config.settings.data_dir)
    if args.task[:1] == ["experiments"]:
        from agent.experiments_view import print_experiments

        return print_experiments(ledger, args.task[1:], user=LOCAL_USER)

    from agent.session import Session

    if args.demo:
        from agent.demo import DEMO_ITERATE_TASK, DEMO_TASK, prepare_demo

        print("ml-intern offline demo — SCRIPTED: a replayed plan, not an LLM. Tools, training "
              "and evaluation are real.", flush=True)
        try:
            variables = prepare_demo(config.settings.data_dir, targets)
        except ValueError as err:
            print(f"ml-intern: error: {err}", file=sys.stderr)
            return 2
        session = Session(config, ledger=ledger, title="offline demo", targets=targets, budget=budget)
        _print_turn(session, DEMO_ITERATE_TASK if targets else DEMO_TASK, variables)
        return _end(session, push=False)

    if args.task:
        task = " ".join(args.task)
        session = Session(config.with_(auto_approve=True), ledger=ledger, title=task[:80], targets=targets,
                          budget=budget)
        _print_turn(session, task)
        return _end(session, push=not args.no_push, repo_id=args.hub_repo)

    session = Session(config, ledger=ledger, approve=_ask, title="terminal chat")
    print("ml-intern — type a goal; 'exit' or Ctrl-D quits.")
    while True:
        try:
            text = input("\n> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if text in ("exit", "quit"):
            return 0
        if text:
            _print_turn(session, text)


if __name__ == "__main__":
    sys.exit(main())
