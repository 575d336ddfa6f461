"""Why a training run failed, or whether it is healthy: a pure reading of its log and metrics.

`diagnose(log_text, series, run, idle_s)` checks, in order: errors in the log (out of memory, dataset
format, chat template, Hub access, missing package), how the job ended (timeout, preemption), a running
job that stopped printing (stalled), then the metric curves (NaN loss, KL blow-up, GRPO reward collapse /
zero reward / zero-std groups, DPO margins that do not grow, divergence, flat loss). The first match
wins; its evidence quotes the log lines or the numbers. Metrics come from the ledger's series and from
the log itself: our `METRIC {json}` lines or the dicts any TRL/transformers Trainer prints
(tools/training/trl_logs.py). "healthy" needs the curves to show learning (loss falling, reward or DPO
margins rising); short of that the verdict is "unknown". `DiagnoseRunTool` is the agent's door to it.
"""

from __future__ import annotations

import json
import math
import re
import time

from smolagents import Tool

from tools.context import ToolContext
from tools.errors import ToolError
from tools.redact import redact
from tools.training.curves import Diagnosis, curve_failure, fmt, learning
from tools.training.trl_logs import TrainingLog, read_training_log

MAX_LOG_LINES = 400
MAX_LINE_CHARS = 20_000  # long enough for a GRPO METRIC line; evidence quotes are cut to EVIDENCE_CHARS
EVIDENCE_CHARS = 300
STALL_S = 1800.0  # a running job silent this long (and for 20 steps' time) is stalled
NOT_FINITE = re.compile(r"""['"]?(loss|grad_norm|reward|kl)['"]?\s*[:=]\s*['"]?(nan|[-+]?inf(inity)?)\b""", re.I)
ERROR_LINE = re.compile(r"^[\w.]*(Error|Exception)\b")


# (failure, line pattern, next step); the first pattern found in the log names the failure.
LOG_RULES = tuple((name, re.compile(pattern, re.I), step) for name, pattern, step in (
    ("out_of_memory",
     r"CUDA out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED|DefaultCPUAllocator: can't allocate memory"
     r"|^MemoryError\b",
     ""),  # next step depends on the config: _oom_step
    ("chat_template",
     r"chat_template is not set|Cannot use chat template|no chat template|jinja2\.exceptions\.\w+"
     r"|Conversation roles must alternate",
     "The tokenizer has no usable chat template for `messages` data: use the instruct variant of the model "
     "(it ships a template), set tokenizer.chat_template explicitly (keeping EOS consistent with it), or convert "
     "the rows to prompt/completion or text. Evaluate with the same template."),
    ("dataset_format",
     r"KeyError: ['\"](prompt|completion|messages|text|chosen|rejected|answer|question|conversations|label"
     r"|input|output|instruction|solution)['\"]|Unexpected input keys in examples|does not have the columns?"
     r"|Column .{0,80} not in the dataset|must contain either 'messages'|Invalid role in message"
     r"|DatasetGenerationError|ArrowInvalid"
     # a row missing a field the others have: the loader fills None and tokenization trips on it
     r"|'NoneType' object has no attribute '(endswith|startswith|strip|split|lower|replace)'"
     r"|can only concatenate str \(not \"NoneType\"\)",
     "Make the rows fit the method: SFT needs `messages` (list of {role, content}), `prompt`+`completion` or "
     "`text`; DPO needs `prompt`/`chosen`/`rejected`; GRPO needs `prompt`. Rows with a missing or null field "
     "(check_dataset_quality counts them) must be dropped. Check with inspect_dataset, convert or filter the "
     "rows, then write a new run."),
    ("hub_access",
     r"RepositoryNotFoundError|GatedRepoError|is not a valid model identifier|401 Client Error|403 Client Error",
     "The Hub refused access: the model or dataset id is wrong, private or gated (accept the gate on its page "
     "with the token's account), or the token cannot write to hub_model_id for push_to_hub. Check the ids and "
     "the HF token's permissions, then write a new run."),
    ("missing_package",
     r"^(ModuleNotFoundError|ImportError)\b",
     "A package is missing in the job environment: add it (pinned) to the script's dependencies, or use a "
     "method/option that does not need it."),
    ("timeout",
     r"Job timed out|exceeded its timeout|DeadlineExceeded|job (has )?timed out",
     ""),  # next step depends on progress: _timeout_step
    ("preempted",
     r"preempt|spot instance.*(reclaim|interrupt)|Received Signals?\.SIGTERM|got signal: 15|received SIGTERM"
     r"|Terminated by signal 15",
     "The machine was taken away (preemption/SIGTERM), not a bug in the run: submit the same run again. For "
     "long runs save checkpoints (save_steps) and push them to the Hub so a rerun can resume from the last one."),
))


def _tail(log_text: str) -> list[str]:
    """The last MAX_LOG_LINES lines, each cut to MAX_LINE_CHARS: reading stays bounded."""
    return [line.rstrip()[:MAX_LINE_CHARS] for line in (log_text or "").splitlines()[-MAX_LOG_LINES:]]


def _merge_series(series: dict, parsed: TrainingLog) -> dict[str, list[tuple[int, float]]]:
    """The ledger's finite series, completed with the log's metrics for the names it lacks."""
    merged = {name: [(s or 0, float(v)) for s, v in points if v is not None and math.isfinite(float(v))]
              for name, points in (series or {}).items()}
    from_log: dict[str, list[tuple[int, float]]] = {}
    for step, name, value in parsed.points():
        from_log.setdefault(name, []).append((int(step or 0), value))
    for name, points in from_log.items():
        if not merged.get(name):
            merged[name] = points
    return {name: sorted(points, key=lambda p: p[0]) for name, points in merged.items() if points}


def _oom_step(config: dict) -> str:
    batch = int(config.get("per_device_train_batch_size") or 8)
    accum = int(config.get("gradient_accumulation_steps") or 1)
    steps = []
    if batch > 1:
        steps.append(f"halve per_device_train_batch_size ({batch} -> {batch // 2}) and double "
                     f"gradient_accumulation_steps ({accum} -> {accum * 2}) to keep the effective batch")
    length = config.get("max_length")
    if length and int(length) > 512:
        steps.append(f"lower max_length ({length} -> {int(length) // 2})")
    if config.get("qlora"):
        steps.append("pick a flavor with more GPU memory (preflight_check suggests one)")
    elif config.get("lora"):
        steps.append("switch to QLoRA (4-bit frozen weights) or a flavor with more GPU memory")
    else:
        steps.append("enable LoRA (lora=True) / gradient checkpointing, or a flavor with more GPU memory")
    return "Out of memory: " + "; or ".join(steps) + ". Run preflight_check on the new run before submitting."


def _timeout_step(config: dict, series: dict) -> str:
    steps = [s for points in series.values() for s, _ in points]
    max_steps = config.get("max_steps")
    if steps and max_steps and int(max_steps) > 0:
        reached = max(steps)
        share = reached / int(max_steps)
        factor = (1 / share) * 1.3 if share > 0 else None
        progress = (f"It reached step {reached} of {max_steps} ({share:.0%}): give it about {factor:.1f}x the "
                    "timeout, " if factor else "")
    else:
        progress = "Give it a larger timeout_minutes, "
    return (f"The job hit its time limit. {progress}or cut max_steps / the dataset (20-30k rows is often enough). "
            "Save and push checkpoints so a timeout keeps progress.")


def _log_failure(lines: list[str], config: dict, series: dict) -> Diagnosis | None:
    for name, pattern, step in LOG_RULES:
        hits = [line.strip()[:EVIDENCE_CHARS] for line in lines if pattern.search(line)]
        if not hits:
            continue
        if name == "preempted" and any(ERROR_LINE.match(line.strip()) and "Signal" not in line for line in lines):
            continue  # a SIGTERM after a real error is not a preemption
        if name == "out_of_memory":
            step = _oom_step(config)
        elif name == "timeout":
            step = _timeout_step(config, series)
        return Diagnosis(name, hits[-3:], step)
    return None


def _quote(line: str) -> str:
    """A log line for evidence: from its dict when tqdm bars precede it, cut to EVIDENCE_CHARS."""
    line = line.strip()
    if "%|" in line and "{" in line:
        line = line[line.index("{"):]
    return line[:EVIDENCE_CHARS]


def _not_finite(lines: list[str], series: dict, parsed: TrainingLog) -> Diagnosis | None:
    names = ("loss", "grad_norm", "reward", "kl")
    hits = [_quote(line) for line in lines if NOT_FINITE.search(line)]
    points = [(s, name, v) for name, values in series.items() for s, v in values] + [
        (row.get("step"), name, row[name]) for row in parsed.rows for name in names if name in row]
    raw = [f"{name} = {v} at step {s}" for s, name, v in points
           if name in names and v is not None and not math.isfinite(float(v))]
    evidence = raw[:1] + hits[:2] if raw and hits else (hits or raw)[:3]  # where it started, then the log lines
    if not evidence:
        return None
    return Diagnosis("nan_loss", evidence,
                     "The loss became NaN/inf: lower learning_rate 3-10x, keep max_grad_norm=1.0 with warmup "
                     "(warmup_ratio 0.03-0.1), train in bf16 rather than fp16, and drop empty or very long rows.")


STALL_STEP = ("The job is alive but silent: a hang, not slow training. Read job_logs(job_id, tail=50) for the last "
              "thing it did, then cancel_job it and submit again. On several GPUs a stuck collective (NCCL) is the "
              "usual cause: set NCCL_DEBUG=INFO and ddp_timeout; with dataloader workers try "
              "dataloader_num_workers=0; for GRPO with vLLM check the generation server. Save checkpoints "
              "(save_steps) so a rerun resumes.")


def _stalled(idle_s: float, parsed: TrainingLog, series: dict) -> Diagnosis | None:
    """A running job that has printed nothing for STALL_S (or 20 steps at its own pace, if slower)."""
    pace = parsed.seconds_per_step or 0.0
    if idle_s < max(STALL_S, 20 * pace):
        return None
    evidence = [f"no log output for {idle_s / 60:.0f} minutes while the job is running"]
    steps = [s for points in series.values() for s, _ in points]
    step = parsed.bar_step if parsed.bar_step is not None else (max(steps) if steps else None)
    if step is not None:
        where = f"step {step}" + (f" of {parsed.max_steps}" if parsed.max_steps else "")
        evidence.append(f"the last progress was {where}" + (f", at {pace:.3g} s/step" if pace else ""))
    return Diagnosis("stalled", evidence, STALL_STEP)


def _healthy_or_unknown(lines: list[str], series: dict, run: dict) -> Diagnosis:
    status = run.get("status")
    failed = status == "failed"
    learned, evidence = learning(series)
    for name in ("kl",) if series.get("reward") else ("eval_loss",):
        points = series.get(name, [])
        if len(points) >= 2:
            evidence.append(f"{name} {fmt(points[0][1])} (step {points[0][0]}) -> {fmt(points[-1][1])} "
                            f"(step {points[-1][0]})")
    if status == "canceled":
        return Diagnosis("canceled", evidence or ["the run was canceled"],
                         "The run was stopped on request; write a new run if it should train again.")
    if failed or not evidence:
        errors = [line.strip() for line in lines if ERROR_LINE.match(line.strip())]
        if run.get("error"):
            errors.append(str(run["error"]))
        found = [_quote(e) for e in errors[-3:] or [line for line in lines if line.strip()][-3:]]
        if not found and not evidence:
            found = ["no log lines and no metrics yet"]
        return Diagnosis("unknown", found + evidence,
                         "No known failure pattern: read job_logs(job_id, tail=200) for the full traceback."
                         if failed else "Nothing to judge yet: wait for metrics (job_status), then diagnose again.")
    if not learned:
        return Diagnosis("unknown", evidence,
                         "The curves do not show learning yet. If the run is young, wait for more logs (job_status) "
                         "and diagnose again; if it has run a while, it is not improving: check learning_rate, the "
                         "data (check_dataset_quality) and, for GRPO, that the reward can be earned.")
    if status == "completed":
        step = "Training finished normally: evaluate the checkpoint against the baseline."
    else:
        step = "Training looks normal: keep watching with job_status / wait_for_job."
    return Diagnosis("healthy", evidence, step)


def run_config(run: dict) -> dict:
    """The run's config from its ledger row (config_json) or a plain dict (config); {} when unreadable."""
    try:
        if isinstance(run.get("config_json"), str):
            return json.loads(run["config_json"] or "{}")
        return dict(run.get("config") or {})
    except (json.JSONDecodeError, TypeError, ValueError):
        return {}


def diagnose(log_text: str, series: dict[str, list[tuple[int, float]]] | None, run: dict | None,
             idle_s: float | None = None) -> Diagnosis:
    """The failure class of a run from its log tail, its metric series and its ledger row.

    `series` maps metric names (loss, eval_loss, learning_rate, grad_norm, reward, reward_std, kl,
    rewards/margins, epoch...) to (step, value) points; metrics in the log (METRIC lines or a Trainer's
    printed dicts) fill in those the series lacks. `run` is the ledger row (status, error, config_json)
    or None; `idle_s` is how long a running job has printed nothing, when the backend knows.
    """
    run = run or {}
    config = run_config(run)
    lines = _tail(log_text)
    parsed = read_training_log("\n".join(lines), logging_steps=config.get("logging_steps"))
    merged = _merge_series(series or {}, parsed)
    diagnosis = _log_failure(lines, config, merged) or _not_finite(lines, series or {}, parsed)
    if diagnosis is None and run.get("status") == "timeout":
        diagnosis = Diagnosis("timeout", [f"run status: timeout ({run.get('error') or 'job stage timeout'})"],
                              _timeout_step(config, merged))
    if diagnosis is None and run.get("status") == "running" and idle_s is not None:
        diagnosis = _stalled(idle_s, parsed, merged)
    return diagnosis or curve_failure(merged) or _healthy_or_unknown(lines, merged, run)


class DiagnoseRunTool(Tool):
    name = "diagnose_run"
    description = """Diagnose a run from its log (any TRL script's) and metrics: the failure (e.g. out_of_memory,
nan_loss, divergence, no_learning, reward_collapse, dataset_format, timeout), healthy or unknown.
Returns {"run_id", "job_id", "status", "failure", "evidence": [log lines or numbers], "next_step"}.
Example: diagnose_run(run_id=run["run_id"])["next_step"]"""
    inputs = {"run_id": {"type": "integer", "description": "The run to diagnose, from write_training_script."}}
    output_type = "object"

    def __init__(self, ctx: ToolContext):
        self.ctx = ctx
        super().__init__()

    def forward(self, run_id: int) -> dict:
        ctx = self.ctx
        run = ctx.ledger.get_run(int(run_id), user=ctx.user)
        if run is None:
            raise ToolError(f"there is no run {run_id}; pass a run_id from write_training_script.")
        log, idle_s = "", None
        if run.get("job_id"):
            try:
                log = ctx.jobs.logs(run["job_id"])
                last = ctx.jobs.last_output_at(run["job_id"]) if run.get("status") == "running" else None
                idle_s = None if last is None else max(0.0, time.time() - last)
                if idle_s is not None and idle_s >= STALL_S and ctx.jobs.status(run["job_id"]).stage != "running":
                    idle_s = None  # it ended since the ledger last heard: silence is not a stall
            except ToolError as exc:
                log = f"[ml-intern] could not read the job log: {exc}"
            log = redact(log, ctx.settings.secrets)
        if run.get("kind") != "eval":
            parsed = read_training_log(log, logging_steps=run_config(run).get("logging_steps"))
            ctx.ledger.record_metrics(int(run_id), parsed.points())
        result = diagnose(log, ctx.ledger.metric_series(int(run_id), user=ctx.user), run, idle_s)
        report = {"run_id": int(run_id), "job_id": run.get("job_id"), "status": run.get("status"), **result.to_dict()}
        ctx.emit("diagnosis", {k: report[k] for k in ("run_id", "job_id", "failure", "next_step")})
        return report
