"""Job tools: submit a written training run, watch it, read its logs, cancel it, wait for it.

Every tool returns promptly except `wait_for_job`, which polls up to a bound the agent chooses.
Our training scripts print `METRIC {json}` and `TRAINING_DONE {json}` lines (see tools/training/scripts.py);
any other TRL script prints the Trainer's log dicts under a tqdm bar (tools/training/trl_logs.py reads both).
`job_status` records them in the ledger, so the metrics survive the job and its logs.
"""

from __future__ import annotations

import ast
import json
import math
import re
import time
from pathlib import Path

from smolagents import Tool

from tools.context import ToolContext
from tools.errors import ToolError
from tools.redact import redact
from tools.spend import budget_spent, reserve_job, settle_job
from tools.stages import ACTIVE, TERMINAL
from tools.training.diagnosis import STALL_S, diagnose, run_config
from tools.training.preflight import preflight
from tools.training.scripts import sha256_text
from tools.training.throughput import measured_throughput
from tools.training.trl_logs import ANSI, TrainingLog, bar_label, is_metric_line, read_training_log

DEFAULT_TIMEOUT_MINUTES = 120
MAX_WAIT_MINUTES = 120
LOG_TAIL_LINES = 15
MAX_LINE_CHARS = 400
TAIL_SCAN_LINES = 2000  # the log tail is picked from this many last lines (tqdm redraws are lines too)


def parse_training_log(text: str, logging_steps: int | float | None = None) -> tuple[list[dict], dict | None]:
    """The metric rows (METRIC lines, else the Trainer's printed dicts) and the TRAINING_DONE payload (or None)."""
    parsed = read_training_log(text, logging_steps)
    return parsed.rows, parsed.done


def metric_points(rows: list[dict]) -> list[tuple[int | None, str, float]]:
    """(step, name, value) for every finite number in the rows; NaN/inf cannot be stored."""
    return TrainingLog(rows).points()


def _round(value):
    return float(f"{value:.5g}") if isinstance(value, float) and math.isfinite(value) else value


def _eta_minutes(status, step: int, max_steps: int | None) -> float | None:
    """Minutes left at the pace so far (start-up included, so it errs long); None until it can tell."""
    if status.stage != "running" or not (step and max_steps and status.started_at):
        return None
    elapsed = max(0.0, time.time() - status.started_at)
    return round(elapsed / step * max(0, int(max_steps) - step) / 60, 1)


def readable_lines(log: str, scan: int = TAIL_SCAN_LINES, metrics: bool = True) -> list[str]:
    """The last `scan` lines of a log, without blank lines and terminal codes, each run of progress-bar redraws cut
    to its last one (and without metric lines unless `metrics`), each cut to MAX_LINE_CHARS."""
    lines = [ANSI.sub("", line).rstrip() for line in log.splitlines()[-scan:]]
    lines = [line for line in lines if line.strip() and (metrics or not is_metric_line(line))]
    labels = [bar_label(line) for line in lines]
    return [line[:MAX_LINE_CHARS] for i, line in enumerate(lines)
            if labels[i] is None or i + 1 == len(lines) or labels[i + 1] != labels[i]]


def last_error_line(log: str) -> str | None:
    """The last `...Error: ...` line of a log (cut to MAX_LINE_CHARS), or None."""
    for line in reversed(log.splitlines()):
        if re.match(r"^[\w.]*(Error|Exception|Interrupt)\b.*", line.strip()):
            return line.strip()[:MAX_LINE_CHARS]
    return None


class _JobTool(Tool):
    output_type = "object"

    def __init__(self, ctx: ToolContext):
        self.ctx = ctx
        super().__init__()

    def report(self, job_id: str) -> dict:
        """Status, progress, metrics and log tail of one of the user's jobs; records metrics and the outcome in
        the ledger."""
        ctx = self.ctx
        job_id = str(job_id).strip()
        run = ctx.job_run(job_id)
        status = ctx.jobs.status(job_id)
        log = "" if status.stage == "queued" else redact(ctx.jobs.logs(job_id), ctx.settings.secrets)
        evaluation = run["kind"] == "eval"
        run_id = run["id"]
        config = run_config(run)
        parsed = TrainingLog() if evaluation else read_training_log(log, config.get("logging_steps"))
        done = parsed.done
        if parsed.rows:
            ctx.ledger.record_metrics(run_id, parsed.points())
        latest = {k: _round(v) for k, v in parsed.latest_training().items()}
        step = int(latest.pop("step", 0) or 0)
        latest.pop("max_steps", None)
        step = max(step, parsed.bar_step or 0)
        max_steps = parsed.max_steps or config.get("max_steps")
        tail = readable_lines(log, metrics=False)
        result = {
            "job_id": job_id, "run_id": run_id, "backend": ctx.jobs.name, "stage": status.stage,
            "progress": {"step": step, "max_steps": max_steps, "eta_minutes": _eta_minutes(status, step, max_steps)},
            "latest_metrics": latest,
            "log_tail": "\n".join(tail[-LOG_TAIL_LINES:]),
            "message": (self._eval_message(status, job_id, log, bool(config.get("result"))) if evaluation
                        else self._message(status, latest, done, log, run, parsed)),
        }
        if evaluation and status.stage == "completed" and not config.get("result"):
            result["next"] = f"collect_evaluation(job_id={job_id!r})"
        if done:
            result["output_dir"] = done.get("output_dir")
        if status.done and run["status"] not in TERMINAL:
            fields = {"status": status.stage, "finished_at": status.finished_at or time.time()}
            if status.stage != "completed":
                fields["error"] = last_error_line(log) or status.message
            if done and done.get("output_dir"):
                fields["output_dir"] = done["output_dir"]
            cost = ctx.jobs.cost(run.get("hardware"), status.started_at, fields["finished_at"])
            if cost is not None:
                fields["cost_usd"] = cost
            ctx.ledger.update_run(run_id, **fields)
            settle_job(ctx, run, cost)
        ctx.emit("job_update", {k: result[k] for k in ("job_id", "run_id", "backend", "stage", "progress",
                                                        "latest_metrics", "message")})
        return result

    @staticmethod
    def _eval_message(status, job_id: str, log: str, collected: bool) -> str:
        """What an evaluation job's stage means: its score is recorded only by collect_evaluation."""
        collect = f"collect_evaluation(job_id={job_id!r})"
        if status.stage in ACTIVE:
            return f"The evaluation is {status.stage}; {collect} waits for it and records its score."
        if status.stage == "completed":
            return ("The evaluation finished and its score is recorded." if collected
                    else f"The evaluation finished; call {collect} to record its score.")
        error = last_error_line(log)
        last = f" Last error: {error}." if error else ""
        return f"The evaluation job ended {status.stage} ({status.message}).{last} Fix the cause and evaluate again."

    def _message(self, status, latest: dict, done: dict | None, log: str, run: dict, parsed: TrainingLog) -> str:
        stage = status.stage
        if stage == "queued":
            return "Waiting for hardware. Check again with job_status or wait_for_job."
        if stage == "running":
            last = self.ctx.jobs.last_output_at(status.job_id)
            if last is not None and time.time() - last >= STALL_S:
                return (f"No log output for {(time.time() - last) / 60:.0f} minutes: the job may be stalled. "
                        f"diagnose_run(run_id={run['id']}) says what to do.")
            loss = latest.get("loss")
            if isinstance(loss, float) and not math.isfinite(loss):
                return ("Training loss is not finite: cancel_job this job and write a new run with a lower "
                        "learning_rate.")
            if loss is None:
                return "Running; no training metrics yet (loading the model and data)."
            reward = latest.get("reward")
            return f"Training; latest loss {loss:.4g}" + (f", reward {reward:.4g}." if reward is not None else ".")
        if stage == "completed":
            if not done and parsed.summary:
                return (f"Training finished (train_loss {parsed.summary.get('train_loss', float('nan')):.4g}); the "
                        "script printed no TRAINING_DONE line, so the checkpoint is wherever it saved or pushed it "
                        "(its output_dir / hub_model_id): check it exists, then evaluate it.")
            if not done:
                return "The job exited cleanly but printed no TRAINING_DONE line: the checkpoint may be missing."
            return f"Training finished; checkpoint saved to {done.get('output_dir')}. Evaluate it next."
        if stage == "canceled":
            return "The job was canceled."
        if stage == "timeout":
            return ("The job hit its time limit. Submit again with a larger timeout_minutes, or write a run with "
                    "fewer max_steps.")
        parts = [f"The job failed ({status.message})."]
        if error := last_error_line(log):
            parts.append(f"Last error: {error}.")
        diagnosis = diagnose(log, self.ctx.ledger.metric_series(run["id"], user=self.ctx.user), run)
        if diagnosis.failure not in ("unknown", "healthy"):
            parts.append(f"Likely cause: {diagnosis.failure}. Next step: {diagnosis.next_step}")
        parts.append(f"Read log_tail, fix the cause, then write a new run with write_training_script"
                     f"(parent_run_id={run['id']}, change=...).")
        return " ".join(parts)


class SubmitJobTool(_JobTool):
    name = "submit_job"
    description = """Start training a written run in the background (here or on HF Jobs); returns at once. Refuses
what preflight_check refuses; paid hardware needs the user's approval.
Returns {"job_id", "run_id", "backend", "stage", "flavor", "timeout_minutes", "preflight"}.
Example: job = submit_job(run_id=run["run_id"], flavor="a10g-small", timeout_minutes=60)"""
    inputs = {
        "run_id": {"type": "integer", "description": "The run to train, from write_training_script."},
        "flavor": {"type": "string", "description": "HF Jobs hardware, e.g. t4-small, a10g-small, a100-large "
                   "(default cpu-basic; ignored locally).", "nullable": True},
        "timeout_minutes": {"type": "number", "description": f"Kill the job after this long (default "
                                                             f"{DEFAULT_TIMEOUT_MINUTES}).", "nullable": True},
    }
    def forward(self, run_id: int, flavor: str | None = None, timeout_minutes: float | None = None) -> dict:
        ctx = self.ctx
        run = ctx.ledger.get_run(int(run_id), user=ctx.user)
        if run is None:
            raise ToolError(f"there is no run {run_id}; create one with write_training_script and pass its run_id.")
        if run["kind"] == "eval":
            raise ToolError(f"run {run_id} is an evaluation job ({run['job_id']}), not a training run; pass the "
                            "run_id that write_training_script returned.")
        if run["status"] == "running":
            raise ToolError(f"run {run_id} is already running as job {run['job_id']}; watch it with "
                            "job_status or cancel it with cancel_job.")
        if run["status"] == "completed":
            raise ToolError(f"run {run_id} already completed (job {run['job_id']}); to train again, write a new "
                            f"run with write_training_script(parent_run_id={run_id}, change=...).")
        script = Path(run["script_path"] or "")
        if not script.is_file():
            raise ToolError(f"run {run_id} has no script at {script}; write it again with write_training_script.")
        text = script.read_text()
        try:
            ast.parse(text)
        except SyntaxError as exc:
            raise ToolError(f"the script of run {run_id} does not parse (line {exc.lineno}: {exc.msg}); "
                            "write it again with write_training_script.") from exc
        minutes = DEFAULT_TIMEOUT_MINUTES if timeout_minutes is None else float(timeout_minutes)
        if minutes <= 0:
            raise ToolError(f"timeout_minutes must be positive, got {timeout_minutes}.")
        flavor = self._check_flavor(flavor)
        checked = self._preflight(run, flavor, minutes, script)
        secrets = {"HF_TOKEN": ctx.settings.hf_token} if ctx.settings.hf_token else None
        with reserve_job(ctx, "train", flavor, minutes * 60, run_id=int(run_id)) as held:
            self._approve(run, flavor, minutes, checked, held.usd)
            launch = self._launch(checked)
            job_id = ctx.jobs.submit(script, run_id=int(run_id), secrets=secrets, flavor=flavor,
                                     env={"ML_INTERN_LAUNCH": json.dumps(launch)} if launch else None,
                                     timeout_s=minutes * 60, labels={"ml-intern-run": str(run_id)})
            held.attach(job_id)
        hardware = flavor or ("local" if ctx.jobs.name == "local" else "cpu-basic")
        ctx.ledger.update_run(int(run_id), job_id=job_id, backend=ctx.jobs.name, status="running",
                              started_at=time.time(), finished_at=None, error=None, hardware=hardware,
                              script_sha256=sha256_text(text))
        if launch and run.get("config_json"):  # the run's config records how it was launched
            ctx.ledger.update_run(int(run_id), config_json=json.dumps({**json.loads(run["config_json"]),
                                                                       "launch": launch}))
        stage = ctx.jobs.status(job_id).stage
        result = {"job_id": job_id, "run_id": int(run_id), "backend": ctx.jobs.name, "stage": stage,
                  "flavor": hardware, "timeout_minutes": minutes}
        result["preflight"] = checked
        if flavor and ctx.jobs.name == "local":
            result["note"] = f"flavor {flavor!r} is ignored: the local backend uses this machine's hardware."
        ctx.emit("job_update", {k: result[k] for k in ("job_id", "run_id", "backend", "stage")})
        return result

    def _preflight(self, run: dict, flavor: str | None, minutes: float, script: Path) -> dict:
        """Refuse a run that cannot work."""
        ctx = self.ctx
        config = json.loads(run["config_json"]) if run.get("config_json") else {
            "method": run["method"], "model": run["model"], "dataset": run["dataset"]}
        report = preflight(config, backend=ctx.jobs.name, flavor=flavor, timeout_minutes=minutes,
                           settings=ctx.settings, script_path=script,
                           measured_throughput=measured_throughput(ctx.ledger, user=ctx.user))
        if not report.ok:
            problems = " ".join(f"({i}) {p}" for i, p in enumerate(report.problems, 1))
            raise ToolError(f"preflight refused run {run['id']}, nothing was submitted: {problems}")
        return {"warnings": report.warnings, "estimate": report.estimate}

    @staticmethod
    def _launch(checked: dict) -> dict:
        """Preflight's plan for the script (ML_INTERN_LAUNCH: DDP/FSDP, processes, gradient checkpointing), with
        what tools/training/throughput.py needs later (GPU model, parameters, full/LoRA)."""
        estimate = checked["estimate"]
        if not estimate.get("launch"):
            return {}
        return {**estimate["launch"], "gpu_model": estimate.get("gpu_model"), "n_params": estimate.get("n_params"),
                "train": estimate.get("method")}

    def _approve(self, run: dict, flavor: str | None, minutes: float, checked: dict, held_usd: float) -> None:
        """On paid hardware, ask for approval showing the most it can cost (already held against the budget)."""
        ctx = self.ctx
        if ctx.jobs.name == "local":
            return
        details = {"run_id": run["id"], "flavor": flavor or "cpu-basic", "timeout_minutes": minutes,
                   "max_cost_usd": checked["estimate"].get("cost_usd") or held_usd}
        if ctx.budget_usd is not None:
            details["budget_left_after_usd"] = round(max(0.0, ctx.budget_usd - ctx.spent_usd()), 2)
        if not ctx.ask_approval("submit_job", details):
            raise ToolError(f"the user did not approve submitting run {run['id']} ({details}); nothing was "
                            "submitted. Ask the user, or propose a cheaper flavor or a shorter timeout.")

    def _check_flavor(self, flavor: str | None) -> str | None:
        flavor = (flavor or "").strip() or None
        if flavor is None:
            return None
        available = self.ctx.jobs.flavors()
        if available and flavor not in {f.name for f in available}:
            listing = ", ".join(f.summary() for f in available[:20])
            raise ToolError(f"unknown flavor {flavor!r}. Available: {listing}.")
        return flavor


class JobStatusTool(_JobTool):
    name = "job_status"
    description = """A job's stage (queued, running, completed, failed, canceled, timeout), progress, metrics and
log tail; message says what a failure means and what to do (for an evaluation job: collect_evaluation).
Returns {"job_id", "run_id", "stage", "progress": {"step", "max_steps", "eta_minutes"}, "latest_metrics":
{"loss"...}, "log_tail", "message", "output_dir"}.
Example: job_status(job_id=job["job_id"])["stage"]"""
    inputs = {"job_id": {"type": "string", "description": "The job id from submit_job."}}
    def forward(self, job_id: str) -> dict:
        return self.report(job_id)


class JobLogsTool(_JobTool):
    name = "job_logs"
    description = """Read the last lines of a job's output (stdout and stderr; progress-bar redraws shown once).
Returns {"job_id", "run_id", "lines", "log"}.
Example: print(job_logs(job_id=job["job_id"], tail=100)["log"])"""
    inputs = {
        "job_id": {"type": "string", "description": "The job id from submit_job."},
        "tail": {"type": "integer", "description": "Lines from the end (default 50).", "nullable": True},
    }
    def forward(self, job_id: str, tail: int | None = None) -> dict:
        job_id = str(job_id).strip()
        run = self.ctx.job_run(job_id)
        tail = 50 if tail is None else max(0, int(tail))
        log = redact(self.ctx.jobs.logs(job_id), self.ctx.settings.secrets)
        lines = readable_lines(log, scan=max(TAIL_SCAN_LINES, 20 * tail))[-tail:] if tail else []
        return {"job_id": job_id, "run_id": run["id"], "lines": len(lines), "log": "\n".join(lines)}


class CancelJobTool(_JobTool):
    name = "cancel_job"
    description = """Stop a job (e.g. when its loss diverges or it was misconfigured).
Returns {"job_id", "run_id", "stage", "message"}; stage is "canceled" unless the job had already ended.
Example: cancel_job(job_id=job["job_id"])"""
    inputs = {"job_id": {"type": "string", "description": "The job id from submit_job."}}
    def forward(self, job_id: str) -> dict:
        job_id = str(job_id).strip()
        self.ctx.job_run(job_id)
        self.ctx.jobs.cancel(job_id)
        report = self.report(job_id)
        return {k: report[k] for k in ("job_id", "run_id", "stage", "message")}


class WaitForJobTool(_JobTool):
    name = "wait_for_job"
    description = """Wait for a job to end (completed, failed, canceled or timeout), at most max_minutes.
Returns job_status's dict plus "waited_minutes" and "still_running" (the bound, or "budget_spent", came first).
Example: s = wait_for_job(job_id=job["job_id"], max_minutes=20)"""
    inputs = {
        "job_id": {"type": "string", "description": "The job id from submit_job."},
        "max_minutes": {"type": "number", "description": f"Longest wait (default 10, at most {MAX_WAIT_MINUTES}).",
                        "nullable": True},
    }
    poll_interval_s: float | None = None  # None: 2 s locally, 15 s on HF Jobs

    def forward(self, job_id: str, max_minutes: float | None = None) -> dict:
        minutes = 10.0 if max_minutes is None else float(max_minutes)
        if not 0 < minutes <= MAX_WAIT_MINUTES:
            raise ToolError(f"max_minutes must be between 0 and {MAX_WAIT_MINUTES}, got {max_minutes}.")
        interval = self.poll_interval_s or (2.0 if self.ctx.jobs.name == "local" else 15.0)
        start = time.monotonic()
        deadline = start + minutes * 60
        while True:
            report = self.report(job_id)
            if report["stage"] in TERMINAL:
                break
            if spent := budget_spent(self.ctx):
                report["budget_spent"] = spent
                report["message"] = (f"Stopped waiting: {spent}. The job is still {report['stage']}; report what "
                                     "you have, or cancel_job it.")
                break
            if time.monotonic() + interval > deadline or self.ctx.stop_requested.wait(interval):
                break  # the bound came first, or the user stopped the turn
        report["waited_minutes"] = round((time.monotonic() - start) / 60, 2)
        report["still_running"] = report["stage"] in ACTIVE
        return report


def job_tools(ctx: ToolContext) -> list[Tool]:
    """The job tools, bound to one session's context."""
    return [SubmitJobTool(ctx), JobStatusTool(ctx), JobLogsTool(ctx), CancelJobTool(ctx), WaitForJobTool(ctx)]
