"""Why a training run failed, or whether it is healthy: a pure reading of its log and metrics.

`diagnose(log_text, series, run)` checks, in order: errors in the log (out of memory, dataset
format, chat template, Hub access, missing package), how the job ended (timeout, preemption), then
the metric curves (NaN loss, KL blow-up, GRPO reward collapse / zero reward / no reward signal,
divergence, flat loss). The first match wins; its evidence quotes the log lines or the numbers.
`DiagnoseRunTool` is the agent's door to it: `diagnose_run(run_id)`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field

from smolagents import Tool

from tools.context import ToolContext
from tools.errors import ToolError
from tools.redact import redact

MAX_LOG_LINES = 400
MAX_LINE_CHARS = 20_000  # long enough for a GRPO METRIC line; evidence quotes are cut to EVIDENCE_CHARS
EVIDENCE_CHARS = 300
FLAT_MIN_POINTS = 8  # logged points needed before calling a loss flat
FLAT_REL_CHANGE = 0.02  # |mean(first window) - mean(last window)| / mean(first window)
DIVERGE_MIN_POINTS = 6
DIVERGE_REL_RISE = 0.3  # mean of the last window this far above the run's minimum (relative)
DIVERGE_MIN_RISE = 0.05  # ... and absolute, so noise at a tiny loss is not divergence
LOSS_EXPLODED = 20.0  # above ln(vocab) of any vocabulary (ln 256k ≈ 12.5): worse than a uniform guess
REWARD_ZERO = 1e-6
COLLAPSE_FRACTION = 0.1  # reward's last window at or below this fraction of its earlier peak
KL_THRESHOLD = 1.0  # per-token KL (TRL's `kl`); healthy GRPO runs stay well below
DIVERGE_STEP = ("The loss is rising or blew up: lower learning_rate 3-10x (typical: 1e-5..5e-5 full, 1e-4..3e-4 "
                "LoRA), use warmup (warmup_ratio 0.05) and max_grad_norm=1.0, and keep the checkpoint from before "
                "the rise.")
METRIC_LINE = re.compile(r"^METRIC (\{.*\})\s*$")
NOT_FINITE = re.compile(r"""['"]?(loss|grad_norm|reward|kl)['"]?\s*[:=]\s*['"]?(nan|[-+]?inf(inity)?)\b""", re.I)
ERROR_LINE = re.compile(r"^[\w.]*(Error|Exception)\b")


@dataclass
class Diagnosis:
    failure: str  # a short class name, "healthy" or "unknown"
    evidence: list[str] = field(default_factory=list)
    next_step: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


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


def _log_rows(lines: list[str]) -> list[dict]:
    rows = []
    for line in lines:
        match = METRIC_LINE.match(line.strip())
        if match:
            try:
                rows.append(json.loads(match.group(1)))  # json accepts NaN/Infinity, as Python prints them
            except json.JSONDecodeError:
                continue
    return rows


def _merge_series(series: dict, rows: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """The ledger's finite series, completed with METRIC rows from the log for metrics it lacks."""
    merged = {name: [(s or 0, float(v)) for s, v in points if v is not None and math.isfinite(float(v))]
              for name, points in (series or {}).items()}
    from_log: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        for name, value in row.items():
            if name not in ("step", "max_steps") and isinstance(value, (int, float)) and math.isfinite(value):
                from_log.setdefault(name, []).append((int(row.get("step") or 0), float(value)))
    for name, points in from_log.items():
        if not merged.get(name):
            merged[name] = points
    return {name: sorted(points, key=lambda p: p[0]) for name, points in merged.items() if points}


def _window(n: int) -> int:
    return max(2, n // 4)


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


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


def _not_finite(lines: list[str], series: dict) -> Diagnosis | None:
    hits = [line.strip()[:EVIDENCE_CHARS] for line in lines if NOT_FINITE.search(line)]
    raw = [f"{name} = {v} at step {s}" for name, points in series.items() for s, v in points
           if name in ("loss", "grad_norm", "reward", "kl") and v is not None and not math.isfinite(float(v))]
    evidence = (hits or raw)[:3]
    if not evidence:
        return None
    return Diagnosis("nan_loss", evidence,
                     "The loss became NaN/inf: lower learning_rate 3-10x, keep max_grad_norm=1.0 with warmup "
                     "(warmup_ratio 0.03-0.1), train in bf16 rather than fp16, and drop empty or very long rows.")


def _curve_failure(series: dict) -> Diagnosis | None:
    reward, kl = series.get("reward", []), series.get("kl", [])
    reward_std = series.get("reward_std", [])
    if len(kl) >= 3 and len(reward) >= 3:
        kl_end = kl[-1][1]
        peak_step, peak = max(reward[:-1], key=lambda p: p[1])
        reward_end = _mean(v for _, v in reward[-_window(len(reward)):])
        if kl_end > KL_THRESHOLD and kl_end > 5 * max(kl[0][1], 1e-6) and reward_end < peak - 0.2 * abs(peak):
            return Diagnosis("kl_blowup", [
                f"kl {_fmt(kl[0][1])} at step {kl[0][0]} -> {_fmt(kl_end)} at step {kl[-1][0]} (threshold "
                f"{KL_THRESHOLD})", f"reward peaked at {_fmt(peak)} (step {peak_step}), last logs mean "
                f"{_fmt(reward_end)}"],
                "The policy drifts from the reference while reward falls: lower learning_rate, raise beta (KL "
                "coefficient, e.g. 0.04), keep the best earlier checkpoint, and look at completions for reward "
                "hacking.")
    if len(reward) >= 3:
        values = [v for _, v in reward]
        clipped = series.get("completions/clipped_ratio", [])
        cut_off = ([f"completions/clipped_ratio {_fmt(clipped[-1][1])} at step {clipped[-1][0]}: completions hit "
                    "max_completion_length"] if clipped and clipped[-1][1] >= 0.5 else [])
        if all(abs(v) <= REWARD_ZERO for v in values):
            flat_std = ["reward_std is 0 too: no learning signal"] if reward_std and all(
                abs(v) <= REWARD_ZERO for _, v in reward_std) else []
            return Diagnosis("zero_reward", [
                f"reward mean is 0 at all {len(values)} logged steps ({reward[0][0]}-{reward[-1][0]})",
                *flat_std, *cut_off],
                "The reward never fires (the format never matches): print a few completions and run the reward "
                "function on them; check the answer column reaches it (GSM8K answers end with '#### N'); add a "
                "partial-credit format reward or SFT on the format first; raise max_completion_length if "
                "completions are cut off.")
        w = _window(len(values))
        peak_step, peak = max(reward[:-w], key=lambda p: p[1])
        end = _mean(values[-w:])
        if peak > REWARD_ZERO and end <= COLLAPSE_FRACTION * peak:
            return Diagnosis("reward_collapse", [
                f"reward peaked at {_fmt(peak)} (step {peak_step}), mean of the last {w} logs "
                f"({reward[-w][0]}-{reward[-1][0]}) is {_fmt(end)}", *cut_off],
                "The reward collapsed after learning: lower learning_rate, set beta (e.g. 0.04) to anchor to the "
                "reference, keep the checkpoint from the peak, and check completions for truncation "
                "(completions/clipped_ratio) or degenerate output.")
        if len(reward_std) >= 3 and all(abs(v) <= REWARD_ZERO for _, v in reward_std):
            return Diagnosis("no_reward_signal", [
                f"reward_std is 0 at all {len(reward_std)} logged steps while reward mean is {_fmt(end)}"],
                "Every completion in a group gets the same reward, so advantages are 0 and nothing is learned: "
                "raise num_generations and temperature, or make the reward graded (partial credit) instead of "
                "all-or-nothing.")
    if reward:
        return None  # GRPO's loss is not a learning curve; judge it by reward only
    loss = series.get("loss", [])
    exploded = [(s, v) for s, v in loss if v > LOSS_EXPLODED]
    if exploded:
        s, v = max(exploded, key=lambda p: p[1])
        return Diagnosis("divergence", [f"loss {_fmt(v)} at step {s}: above ln(vocab size) (at most ~12.5), worse "
                                        f"than a uniform guess; last loss {_fmt(loss[-1][1])} at step {loss[-1][0]}"],
                         DIVERGE_STEP)
    if len(loss) >= DIVERGE_MIN_POINTS:
        values = [v for _, v in loss]
        w = _window(len(values))
        low_index = min(range(len(values)), key=values.__getitem__)
        end = _mean(values[-w:])
        low = values[low_index]
        rise = end - low
        if low_index < len(values) - w and rise > DIVERGE_REL_RISE * max(abs(low), 1e-3) and rise > DIVERGE_MIN_RISE:
            evidence = [f"loss min {_fmt(low)} at step {loss[low_index][0]}, mean of the last {w} logs "
                        f"(steps {loss[-w][0]}-{loss[-1][0]}) is {_fmt(end)} (+{rise / max(abs(low), 1e-3):.0%})"]
            grad = series.get("grad_norm", [])
            if grad:
                gs, gv = max(grad, key=lambda p: p[1])
                evidence.append(f"grad_norm max {_fmt(gv)} at step {gs}")
            return Diagnosis("divergence", evidence, DIVERGE_STEP)
    if len(loss) >= FLAT_MIN_POINTS:
        values = [v for _, v in loss]
        w = _window(len(values))
        first, last = _mean(values[:w]), _mean(values[-w:])
        change = abs(first - last) / max(abs(first), 1e-8)
        if change < FLAT_REL_CHANGE:
            evidence = [f"loss {_fmt(first)} (first {w} logs) -> {_fmt(last)} (last {w} logs) over steps "
                        f"{loss[0][0]}-{loss[-1][0]}: {change:.2%} change"]
            lr = series.get("learning_rate", [])
            if lr:
                evidence.append(f"learning_rate max {_fmt(max(v for _, v in lr))}")
            return Diagnosis("no_learning", evidence,
                             "The loss is flat: raise learning_rate (e.g. 10x; typical 1e-5..5e-5 full, 2e-4 "
                             "LoRA), check the schedule does not hold it at 0, and check that labels are not all "
                             "masked (completion-only loss with empty completions) and rows are not truncated away.")
    return None


def _healthy_or_unknown(lines: list[str], series: dict, run: dict) -> Diagnosis:
    status = run.get("status")
    failed = status == "failed"
    evidence = []
    for name in ("reward", "kl") if series.get("reward") else ("loss", "eval_loss"):
        points = series.get(name, [])
        if len(points) >= 2:
            evidence.append(f"{name} {_fmt(points[0][1])} (step {points[0][0]}) -> {_fmt(points[-1][1])} "
                            f"(step {points[-1][0]})")
    if status == "canceled":
        return Diagnosis("canceled", evidence or ["the run was canceled"],
                         "The run was stopped on request; write a new run if it should train again.")
    if failed or not evidence:
        errors = [line.strip() for line in lines if ERROR_LINE.match(line.strip())]
        if run.get("error"):
            errors.append(str(run["error"]))
        found = [e[:EVIDENCE_CHARS] for e in errors[-3:] or [line for line in lines if line.strip()][-3:]]
        if not found and not evidence:
            found = ["no log lines and no metrics yet"]
        return Diagnosis("unknown", found + evidence,
                         "No known failure pattern: read job_logs(job_id, tail=200) for the full traceback."
                         if failed else "Nothing to judge yet: wait for metrics (job_status), then diagnose again.")
    if status == "completed":
        step = "Training finished normally: evaluate the checkpoint against the baseline."
    else:
        step = "Training looks normal: keep watching with job_status / wait_for_job."
    return Diagnosis("healthy", evidence, step)


def diagnose(log_text: str, series: dict[str, list[tuple[int, float]]] | None, run: dict | None) -> Diagnosis:
    """The failure class of a run from its log tail, its metric series and its ledger row.

    `series` maps metric names (loss, eval_loss, learning_rate, grad_norm, reward, reward_std, kl,
    epoch) to (step, value) points; METRIC lines in the log fill in metrics the series lacks.
    `run` is the ledger row (status, error, config_json) or None.
    """
    run = run or {}
    try:
        config = json.loads(run.get("config_json") or "{}") if isinstance(run.get("config_json"), str) \
            else dict(run.get("config") or {})
    except json.JSONDecodeError:
        config = {}
    lines = _tail(log_text)
    merged = _merge_series(series or {}, _log_rows(lines))
    diagnosis = _log_failure(lines, config, merged) or _not_finite(lines, series or {})
    if diagnosis is None and run.get("status") == "timeout":
        diagnosis = Diagnosis("timeout", [f"run status: timeout ({run.get('error') or 'job stage timeout'})"],
                              _timeout_step(config, merged))
    return diagnosis or _curve_failure(merged) or _healthy_or_unknown(lines, merged, run)


class DiagnoseRunTool(Tool):
    name = "diagnose_run"
    description = """Diagnose a submitted run from its log and metrics: the failure (out_of_memory, nan_loss,
divergence, no_learning, zero_reward, reward_collapse, no_reward_signal, kl_blowup, dataset_format,
chat_template, hub_access, missing_package, timeout, preempted, canceled) or healthy/unknown.
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
        log = ""
        if run.get("job_id"):
            try:
                log = ctx.jobs.logs(run["job_id"], tail=MAX_LOG_LINES)
            except ToolError as exc:
                log = f"[ml-intern] could not read the job log: {exc}"
            log = redact(log, ctx.settings.secrets)
        result = diagnose(log, ctx.ledger.metric_series(int(run_id), user=ctx.user), run)
        report = {"run_id": int(run_id), "job_id": run.get("job_id"), "status": run.get("status"), **result.to_dict()}
        ctx.emit("diagnosis", {k: report[k] for k in ("run_id", "job_id", "failure", "next_step")})
        return report
