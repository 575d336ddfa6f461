"""The command line: headless runs, an interactive terminal chat, and the offline demo.

    ml-intern "improve Qwen3-1.7B on GSM8K"   # headless, auto-approve, prints the stream and a report
    ml-intern "improve Qwen3-1.7B on GSM8K" --target "gsm8k>=0.60" --budget-usd 20 --budget-hours 10
    ml-intern                                  # interactive chat; paid actions asked at the prompt
    python -m agent --demo                     # scripted offline demo on a tiny model
    python -m agent --demo --target "tiny_sentiment>=0.6"   # the demo iterates until the target is met
    python -m agent experiments                # the ledger's experiments
    python -m agent experiments show 1         # one experiment's lineage tree
    ml-intern sessions                         # your sessions, newest first
    ml-intern --resume SESSION ["next message"]   # carry on after a restart, Ctrl-C or kill -9
    ml-intern export SESSION [--out F] [--upload] # the session as redacted JSONL (--upload: private Hub dataset)
    ml-intern run --base-model M --benchmark B --hours H [--workdir W] [--eval-command CMD] [prompt]
                                               # a benchmark run, unattended: final_model/, audit.json

During a turn, Ctrl-C stops it after the current tool returns (--on-stop says whether running jobs are left or
canceled; without it the terminal asks); a second Ctrl-C exits at once.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
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
    parser.add_argument("--budget-usd", type=float, default=None,
                        help="headless: the spending cap in dollars for LLM calls and jobs; a job that does not fit "
                        "is refused, the run stops when it is spent (default: ML_INTERN_BUDGET_USD, else 20, "
                        "which also caps the chat; ML_INTERN_BUDGET_USD=none for no cap)")
    parser.add_argument("--budget-hours", type=float, help="headless: stop after this many wall-clock hours")
    parser.add_argument("--hub-repo", help="with HF_TOKEN: Hub repo for the best checkpoint "
                        "(default <user>/ml-intern-experiment-ID)")
    parser.add_argument("--no-push", action="store_true", help="do not push the best checkpoint, even with HF_TOKEN")
    parser.add_argument("--resume", metavar="SESSION", help="continue a stored session (`sessions` lists them): its "
                        "memory, experiment and running jobs; with a task, that is its next message")
    parser.add_argument("--on-stop", choices=["ask", "leave", "cancel"], default="ask",
                        help="what Ctrl-C does to the session's running jobs (default: ask when it stops)")
    parser.add_argument("--out", type=Path, help="with export: the JSONL file (default <data-dir>/exports/ID.jsonl)")
    parser.add_argument("--upload", action="store_true", help="with export and HF_TOKEN: also upload it to your "
                        "private dataset <user>/ml-intern-sessions")
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


class _CtrlC:
    """While a turn runs: the first Ctrl-C stops it after the current tool returns, a second one exits at once
    (KeyboardInterrupt). The handler only sets flags; the session does the rest on its own threads."""

    def __init__(self, session, on_stop: str):
        self.session, self.on_stop, self.pressed = session, on_stop, False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)

    def _handle(self, signum, frame) -> None:
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True
        print("\n■ stopping after the current step (Ctrl-C again to exit now)", flush=True)
        self.session.stop(cancel_jobs=self.on_stop == "cancel")


def _print_turn(session, text: str, variables: dict | None = None, on_stop: str = "ask") -> None:
    previous = None
    with _CtrlC(session, on_stop) as ctrl_c:
        for event in session.run(text, variables=variables):
            line = format_event(event)
            if line and event.kind != "user" and line != previous:
                print(line, flush=True)
            previous = line
    if ctrl_c.pressed:
        _after_stop(session, on_stop)


def _after_stop(session, on_stop: str) -> None:
    """After a Ctrl-C stop: ask whether to cancel the jobs left running (when --on-stop did not say)."""
    from agent.session_jobs import session_runs

    running = [run["job_id"] for run in session_runs(session.ctx) if run["job_id"]]
    if running and on_stop == "ask" and sys.stdin.isatty():
        answer = input(f"? cancel the running jobs {', '.join(running)}? [y/N] ").strip().lower()
        if answer in ("y", "yes"):
            notice = session.stop(cancel_jobs=True)
            print(format_event(notice) if notice else "", flush=True)
    print(f"resume with: ml-intern --resume {session.id}", flush=True)


def _resumed_config(config: AgentConfig, stored: dict, args) -> AgentConfig:
    """The config a session ran with (backend, model, plan, compute, limits), unless the command line says otherwise."""
    saved = json.loads(stored["config_json"] or "{}")
    changes = {"auto_approve": bool(saved.get("auto_approve"))}
    for name, given in (("backend", args.backend), ("model_id", args.model), ("max_steps", args.max_steps),
                        ("scripted_plan", args.plan)):
        if given is None and saved.get(name) is not None:
            changes[name] = Path(saved[name]) if name == "scripted_plan" else saved[name]
    if args.compute is None and saved.get("compute"):
        changes["settings"] = config.settings.with_(compute_backend=saved["compute"])
    return config.with_(**changes)


def _resume(args, config: AgentConfig, ledger) -> int:
    from agent.session import Session
    from tools.ledger import LOCAL_USER

    stored = ledger.get_session(args.resume, user=LOCAL_USER)
    if stored is None:
        print(f"ml-intern: error: there is no session {args.resume!r}; `ml-intern sessions` lists them",
              file=sys.stderr)
        return 2
    session = Session.resume(args.resume, _resumed_config(config, stored, args), ledger, user=LOCAL_USER,
                             approve=_ask)
    for event in session.resumed.events:
        print(format_event(event), flush=True)
    text, variables = (" ".join(args.task), None) if args.task else (None, None)
    if text is None and not session.resumed.finished:
        text, variables = session.resumed.continuation()
    elif text is None and not session.config.auto_approve:
        print("The session's last turn had finished; type its next message.")
        return _chat(session, args.on_stop)
    if session.guard is None:  # the report settles the experiment, as a headless run's does
        from agent.target import RunGuard

        session.guard = RunGuard(session.ctx, [], Budget())
    if text is not None:  # else a finished headless run: only its report is due
        _print_turn(session, text, variables, args.on_stop)
    return _end(session, push=not args.no_push, repo_id=args.hub_repo)


def _chat(session, on_stop: str) -> int:
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
            _print_turn(session, text, on_stop=on_stop)


def _sessions(ledger, user: str) -> int:
    for row in ledger.list_sessions(user=user):
        created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(row["created_at"]))
        print(f"{row['id']}  {created} UTC  {row['title'] or ''}")
    return 0


def _export(ledger, config: AgentConfig, args, user: str) -> int:
    from agent.export import upload_export, write_export

    if len(args.task) != 2:
        print("ml-intern: error: usage: ml-intern export SESSION [--out FILE] [--upload]", file=sys.stderr)
        return 2
    session_id = args.task[1]
    out = args.out or Path(config.settings.data_dir) / "exports" / f"{session_id}.jsonl"
    try:
        path = write_export(ledger, session_id, out, user=user, secrets=config.secrets)
        print(f"wrote {path}")
        if args.upload:
            uploaded = upload_export(path, session_id, config.settings)
            print(f"uploaded to the private dataset {uploaded['repo_id']} as {uploaded['path_in_repo']}")
    except Exception as err:  # an unknown session, no token, a Hub refusal: say which
        print(f"ml-intern: error: {err}", file=sys.stderr)
        return 1
    return 0


def _end(session, push: bool = True, repo_id: str | None = None) -> int:
    """Print the run's report; exit code 0 when it met its target (or, without one, answered)."""
    from agent.report import end_of_run

    print("\n" + end_of_run(session, push=push, repo_id=repo_id), flush=True)
    ctx = session.ctx
    experiment = session.ledger.get_experiment(ctx.experiment_id, user=ctx.user) if ctx.experiment_id else None
    return 0 if experiment and experiment["status"] in ("met", "done") else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"]:  # a benchmark run: its own options (agent/harness.py)
        from agent.harness import main as run_main

        return run_main(argv[1:])
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
    if args.task == ["sessions"]:
        return _sessions(ledger, LOCAL_USER)
    if args.task[:1] == ["export"]:
        return _export(ledger, config, args, LOCAL_USER)
    try:
        return _run(args, config, ledger, targets, budget)
    except KeyboardInterrupt:  # a second Ctrl-C during a turn
        print("\nexited; jobs still running go on. `ml-intern sessions` lists the session to --resume.",
              file=sys.stderr)
        return 130


def _run(args, config: AgentConfig, ledger, targets, budget) -> int:
    if args.resume:
        return _resume(args, config, ledger)

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
        _print_turn(session, DEMO_ITERATE_TASK if targets else DEMO_TASK, variables, args.on_stop)
        return _end(session, push=False)

    if args.task:
        task = " ".join(args.task)
        session = Session(config.with_(auto_approve=True), ledger=ledger, title=task[:80], targets=targets,
                          budget=budget)
        _print_turn(session, task, on_stop=args.on_stop)
        return _end(session, push=not args.no_push, repo_id=args.hub_repo)

    return _chat(Session(config, ledger=ledger, approve=_ask, title="terminal chat"), args.on_stop)


if __name__ == "__main__":
    sys.exit(main())
