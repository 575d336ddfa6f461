"""The command line: headless runs, an interactive terminal chat, and the offline demo.

    ml-intern "improve Qwen3-1.7B on GSM8K"   # headless, auto-approve, prints the stream
    ml-intern                                  # interactive chat; paid actions asked at the prompt
    python -m agent --demo                     # scripted offline demo on a tiny model
    python -m agent experiments                # the ledger's experiments
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent.config import BACKENDS, AgentConfig
from agent.events import Event

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
                        "'experiments' [show ID] lists the ledger instead")
    parser.add_argument("--demo", action="store_true", help="run the scripted offline demo")
    parser.add_argument("--backend", choices=BACKENDS, help="LLM backend (default: anthropic)")
    parser.add_argument("--model", help="LLM model id")
    parser.add_argument("--compute", choices=["auto", "local", "hf-jobs"], help="where jobs run")
    parser.add_argument("--data-dir", type=Path, help="where the ledger and runs live")
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--plan", type=Path, help="with --backend scripted: the YAML plan to replay")
    return parser


def _config(args) -> AgentConfig:
    config = AgentConfig.from_env()
    settings = config.settings
    if args.data_dir:
        settings = settings.with_(data_dir=args.data_dir)
    if args.compute:
        settings = settings.with_(compute_backend=args.compute)
    if args.demo:
        return AgentConfig.demo(settings=settings)
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = _config(args)
    from tools.ledger import Ledger

    ledger = Ledger.in_dir(config.settings.data_dir)
    if args.task[:1] == ["experiments"]:
        from agent.experiments_view import print_experiments

        return print_experiments(ledger, args.task[1:])

    from agent.session import Session

    if args.demo:
        from agent.demo import DEMO_TASK, prepare_demo, score_summary

        print("ml-intern offline demo — SCRIPTED: a replayed plan, not an LLM. Tools, training "
              "and evaluation are real.", flush=True)
        variables = prepare_demo(config.settings.data_dir)
        session = Session(config, ledger=ledger, title="offline demo")
        _print_turn(session, DEMO_TASK, variables)
        print("\nScores read back from the ledger:")
        print(score_summary(ledger, session.ctx.current_experiment()))
        return 0

    if args.task:
        session = Session(config.with_(auto_approve=True), ledger=ledger, title=" ".join(args.task)[:80])
        _print_turn(session, " ".join(args.task))
        return 0

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
