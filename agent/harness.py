"""`ml-intern run`: a benchmark run, unattended. A base model, a benchmark, a time limit; a final model you can audit.

    ml-intern run --base-model Qwen/Qwen3-1.7B-Base --benchmark gpqa --hours 10 --workdir . \\
        --eval-command "python evaluate.py --model-path {model} --json-output-file {json}" < prompt.txt

This is the shape of a PostTrainBench cell: the agent gets a prompt in a working folder that holds the benchmark's
`evaluate.py`, and must leave its best model in `final_model/` before the limit. The run asks no questions (every
action is approved within the spending cap, which holds), and is held to the rules the benchmark's judges check
(tools/run_rules.py: only the base model is trained, every training set is decontaminated against the benchmark's
evaluation data before use, no LLM writes training data without --allow-llm-data, the evaluator's files are
read-only). It gets three tools of its own: time_left, save_final_model and, with --eval-command,
run_benchmark_eval.

Time: the run stops MARGIN before the limit (the run guard after a step, a watchdog between steps, waiting tools
at once); whatever jobs it started are canceled then; a final model is always left (the base model, exported, when
the agent saved none); `<workdir>/audit.json` is written on every save and at the end. The event stream goes to
stdout as redacted JSONL (or to --trace FILE); a summary goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

from agent.config import BACKENDS, AgentConfig
from agent.events import Event
from agent.target import Budget
from tools.redact import redact
from tools.run_rules import RunRules

MARGIN_SHARE = 0.05  # of the time limit, kept for stopping, canceling, exporting and auditing
MIN_MARGIN_S, MAX_MARGIN_S = 20.0, 20 * 60.0
DEFAULT_PROMPT = ("We want to train the small LLM `{model}` to excel at {benchmark}. Implement an effective approach "
                  "through systematic research and experimentation, and leave the best fine-tuned version of "
                  "`{model}` in final_model/.")


def margin_s(hours: float) -> float:
    return min(MAX_MARGIN_S, max(MIN_MARGIN_S, MARGIN_SHARE * hours * 3600))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ml-intern run", description="A benchmark run: post-train one base model for "
                                "one benchmark within a time limit, unattended; leaves final_model/ and audit.json.")
    p.add_argument("prompt", nargs="*", help="the task (default: standard input, else a standard benchmark prompt)")
    p.add_argument("--base-model", required=True, help="the only model that may be trained: a Hub id or a folder")
    p.add_argument("--benchmark", required=True, help="a catalogue name (gpqa, gsm8k, ...: evals/catalogue.py) or "
                   "custom:<the benchmark's evaluation data: a local .jsonl file or folder, or a Hub dataset id>")
    p.add_argument("--hours", type=float, required=True, help="the time limit; the run stops a margin before it")
    p.add_argument("--workdir", type=Path, default=Path("."), help="where final_model/ and audit.json go (and, by "
                   "default, the ledger: <workdir>/.ml-intern)")
    p.add_argument("--eval-command", help="the benchmark's own evaluator, run in --eval-dir: {model} is replaced by "
                   "the model folder (else --model-path MODEL is appended), {json} by a metrics file it may write")
    p.add_argument("--eval-dir", type=Path, help="where the eval command runs and its files live, read-only to "
                   "every tool (default: the workdir)")
    p.add_argument("--budget-usd", type=float, help="the spending cap for LLM calls and jobs (default: "
                   "ML_INTERN_BUDGET_USD, else 20)")
    p.add_argument("--margin-minutes", type=float, help=f"stop this long before the limit (default {MARGIN_SHARE:.0%} "
                   f"of it, between {MIN_MARGIN_S:g} s and {MAX_MARGIN_S / 60:g} min)")
    p.add_argument("--allow-llm-data", action="store_true", help="let the LLM write training data "
                   "(generate_synthetic_data); judges may flag an outside-API teacher")
    p.add_argument("--trace", type=Path, help="write the event stream (JSONL) here instead of stdout")
    p.add_argument("--backend", choices=BACKENDS, help="LLM backend (default: anthropic)")
    p.add_argument("--model", help="LLM model id")
    p.add_argument("--plan", type=Path, help="with --backend scripted: the YAML plan to replay")
    p.add_argument("--compute", choices=["auto", "local", "hf-jobs"], default=None, help="where jobs run (default: "
                   "local, this machine's GPU: save_final_model needs the checkpoints here)")
    p.add_argument("--data-dir", type=Path, help="the ledger and runs (default <workdir>/.ml-intern)")
    p.add_argument("--max-steps", type=int)
    return p


def eval_set_of(benchmark: str) -> str:
    """What decontamination compares with: the catalogue's name, or custom:<source>'s source (a local path resolved).
    ValueError for an unknown benchmark."""
    from evals.catalogue import CUSTOM_PREFIX, resolve_task

    text = benchmark.strip()
    if text.lower().startswith(CUSTOM_PREFIX):
        source = text[len(CUSTOM_PREFIX):].strip()
        local = Path(source).expanduser()
        if local.exists():
            return str(local.resolve())
        if source.startswith(("/", ".", "~")) or "/" not in source:
            raise ValueError(f"--benchmark {benchmark}: {source} is neither an existing local path nor a Hub id.")
        return source
    return resolve_task(text)["name"]


def base_model_of(value: str) -> str:
    local = Path(value).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise ValueError(f"--base-model {value}: the folder holds no config.json.")
        return str(local.resolve())
    from tools.backends.hub import is_hub_id

    if not is_hub_id(value):
        raise ValueError(f"--base-model {value!r} is neither a model folder nor a Hub id like 'Qwen/Qwen3-1.7B-Base'.")
    return value


def prepare(args, now: float) -> tuple[RunRules, AgentConfig]:
    """The run's rules and agent config from the command line; ValueError naming what is wrong."""
    if not args.hours > 0:
        raise ValueError(f"--hours must be positive, got {args.hours}")
    workdir = args.workdir.expanduser().resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    base, eval_set = base_model_of(args.base_model), eval_set_of(args.benchmark)
    eval_dir = (args.eval_dir or workdir).expanduser().resolve() if args.eval_command else None
    margin = args.margin_minutes * 60 if args.margin_minutes is not None else margin_s(args.hours)
    if not 0 <= margin < args.hours * 3600:
        raise ValueError(f"--margin-minutes must be under the time limit ({args.hours * 60:g} min)")
    rules = RunRules(base_model=base, benchmark=args.benchmark.strip(), eval_set=eval_set, workdir=workdir,
                     final_dir=workdir / "final_model", audit_path=workdir / "audit.json",
                     eval_command=args.eval_command, eval_dir=eval_dir, allow_llm_data=args.allow_llm_data,
                     started_at=now, limit_at=now + args.hours * 3600, margin_s=margin)
    config = AgentConfig.from_env()
    reads = [workdir, *([Path(base)] if Path(base).is_dir() else []), *([eval_dir] if eval_dir else [])]
    settings = config.settings.with_(
        data_dir=(args.data_dir or workdir / ".ml-intern").expanduser().resolve(),
        extra_read_dirs=(*config.settings.extra_read_dirs, *reads),
        read_only_dirs=(*config.settings.read_only_dirs, *([eval_dir] if eval_dir else [])))
    settings = settings.with_(compute_backend=args.compute or "local")
    changes = {"settings": settings, "auto_approve": True}
    for name, value in (("backend", args.backend), ("model_id", args.model), ("max_steps", args.max_steps),
                        ("scripted_plan", args.plan)):
        if value is not None:
            changes[name] = value
    if args.budget_usd is not None:
        changes["budget_usd"] = args.budget_usd
    return rules, config.with_(**changes)


def task_text(prompt: str, rules: RunRules) -> str:
    """The prompt, then the run's rules as the agent must know them."""
    minutes = (rules.limit_at - rules.started_at) / 60
    evaluator = (f"run_benchmark_eval(model=...) runs the benchmark's evaluator `{rules.eval_command}` (its files "
                 "are read-only)" if rules.eval_command else
                 f"run_evaluation(task={rules.benchmark!r}) scores the benchmark")
    llm_data = ("allowed (--allow-llm-data); the audit lists it" if rules.allow_llm_data else
                "not allowed: generate_synthetic_data is refused")
    return "\n".join([prompt.strip(), "", "Benchmark run: nobody is watching and no question will be answered.",
                      f"- Base model: {rules.base_model}. Train only it (or checkpoints of your own runs from it); "
                      "any other model is refused.",
                      f"- Benchmark: {rules.benchmark}. Every training set is checked against its evaluation data "
                      f"({rules.eval_set}) before use and refused if it holds an item; drop those rows with "
                      f"reformat_dataset(decontaminate={rules.eval_set!r}).",
                      f"- Evaluator: {evaluator}.",
                      f"- Time: {minutes:.0f} min in all; the run stops {rules.margin_s / 60:.1f} min before the limit "
                      "and cancels the jobs still running. time_left() says how long is left: plan against it.",
                      f"- Deliverable: {rules.final_dir}. Make a held-out split of your training data "
                      "(reformat_dataset(test_size=...)), save the base model early with save_final_model, then "
                      "every checkpoint that may be better: it replaces final_model/ only when it scores better on "
                      "that held-out split.",
                      f"- LLM-written training data: {llm_data}."])


class Trace:
    """The event stream as JSONL, one redacted event a line (the session has redacted its events already)."""

    def __init__(self, stream, secrets: list[str]):
        self.stream, self.secrets = stream, secrets
        self._lock = threading.Lock()

    def write(self, event: Event) -> None:
        if event.kind == "delta":
            return
        line = json.dumps(redact(event.to_dict(), self.secrets), default=str, ensure_ascii=False)
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()


def drive(session, task: str, variables: dict, trace: Trace, rules: RunRules) -> bool:
    """Run the turn until it ends or the hard stop (the stop time plus half the margin); True when it ended."""
    done = threading.Event()

    def turn() -> None:
        try:
            for event in session.run(task, variables=variables):
                trace.write(event)
        finally:
            done.set()

    def watchdog() -> None:
        if not done.wait(max(0.0, rules.stop_at - time.time())):
            reason = f"time limit: stopped {rules.margin_s / 60:.1f} min before it"
            session.guard.stop_reason = session.guard.stop_reason or reason
            session.ctx.ledger.update_experiment(session.ctx.current_experiment(), stop_reason=reason)
            session.stop(cancel_jobs=True)

    threading.Thread(target=watchdog, daemon=True).start()
    worker = threading.Thread(target=turn, daemon=True)
    worker.start()
    return done.wait(max(0.0, rules.stop_at + rules.margin_s / 2 - time.time()))


def finish(session, rules: RunRules, ended: bool, trace: Trace) -> dict:
    """End every job the run started, leave a final model, settle the experiment, write the audit."""
    from agent.session_jobs import cancel_running_jobs
    from tools.audit import write_audit

    ctx = session.ctx
    canceled, failed = cancel_running_jobs(ctx, "the benchmark run ended")
    if canceled or failed:
        trace.write(Event("notice", f"Run over: canceled jobs {', '.join(canceled) or 'none'}"
                          + (f"; could not cancel {'; '.join(failed)}" if failed else "") + ".",
                          data={"jobs_canceled": canceled, "cancel_failed": failed}))
    fallback = None
    if not (rules.final_dir / "config.json").is_file():
        from tools.training.final_model import copy_base_model

        fallback = copy_base_model(ctx, rules.final_dir)
        trace.write(Event("notice", "No final model was saved: final_model/ holds the base model.",
                          data={"final_model": str(rules.final_dir), "fallback": "base model"}))
    status = session.guard.settle(session.final_answer if ended else None)
    path = write_audit(ctx)
    if fallback is not None:
        audit = json.loads(path.read_text())
        audit["final_model"].update(model=rules.base_model, fallback=True, notes=fallback)
        path.write_text(json.dumps(audit, indent=1, default=str))
    session.ledger.flush()
    return {"status": status, "ended_on_its_own": ended, "final_model": str(rules.final_dir), "audit": str(path),
            "jobs_canceled": canceled, "seconds": round(time.time() - rules.started_at, 1),
            "limit_s": round(rules.limit_at - rules.started_at, 1)}


def process_started() -> float:
    """When this process started (epoch seconds; Linux /proc), so that the limit counts its start-up too; now
    where that cannot be read."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
        return min(time.time(), boot + ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


def main(argv: list[str]) -> int:
    """Parse, run, finish; exits the process once a run has ended (returns 2 for a bad command line)."""
    args = parser().parse_args(argv)
    started = process_started()
    try:
        rules, config = prepare(args, started)
    except ValueError as err:
        print(f"ml-intern run: error: {err}", file=sys.stderr)
        return 2
    prompt = " ".join(args.prompt).strip()
    if not prompt and not sys.stdin.isatty():
        prompt = sys.stdin.read().strip()
    prompt = prompt or DEFAULT_PROMPT.format(model=rules.base_model, benchmark=rules.benchmark)
    from agent.session import Session
    from tools.ledger import Ledger

    ledger = Ledger.in_dir(config.settings.data_dir)
    budget = Budget(usd=config.budget_usd, hours=(rules.stop_at - time.time()) / 3600)
    session = Session(config, ledger=ledger, title=f"benchmark run: {rules.base_model} on {rules.benchmark}",
                      targets=[], budget=budget)
    session.ctx.rules, session.ctx.goal = rules, prompt
    session.ctx.current_experiment(base_model=rules.base_model, task=rules.benchmark)
    variables = {"base_model": rules.base_model, "benchmark": rules.benchmark, "eval_set": rules.eval_set,
                 "workdir": str(rules.workdir)}
    out = args.trace.open("w") if args.trace else sys.stdout
    trace = Trace(out, config.secrets)
    try:
        ended = drive(session, task_text(prompt, rules), variables, trace, rules)
        summary = finish(session, rules, ended, trace)
    finally:
        if args.trace:
            out.close()
    print("ml-intern run: " + json.dumps(summary), file=sys.stderr, flush=True)
    sys.stdout.flush()
    # Everything is written: leave now, so that a tool thread still unwinding, the sandbox process or torch's
    # teardown cannot carry the process past the limit.
    os._exit(0 if (rules.final_dir / "config.json").is_file() else 1)
