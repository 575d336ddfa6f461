"""run_benchmark_eval: score a model with the benchmark's own evaluator, the `--eval-command` of a benchmark run.

The command is the user's (a PostTrainBench task's `python evaluate.py`); it runs in its own folder, which is
read-only to every tool (tools/paths.py), with the LLM keys left out of its environment. `{model}` in it is replaced
by the model folder (without it, `--model-path MODEL` is appended), `{json}` by a file it writes its metrics to
(PostTrainBench's `--json-output-file`); a `limit` is appended as `--limit N`. The score is read from that file,
else from the last JSON object or `name: number` line it prints.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import tempfile
import time
from pathlib import Path

from smolagents import Tool

from tools.confine import credential_free_env
from tools.context import ToolContext
from tools.errors import ToolError
from tools.paths import resolve_inside
from tools.redact import redact

PREFERRED_METRICS = ("accuracy", "score", "acc", "exact_match", "em", "pass@1", "mean")
SCORE_LINE = re.compile(r"([A-Za-z][\w@.:/-]*)\s*[:=]\s*(-?\d+(?:\.\d+)?(?:[eE]-?\d+)?)\s*$")
MAX_EVAL_S = 4 * 3600
TAIL_CHARS = 2000


def numbers_of(value) -> dict[str, float]:
    return {k: float(v) for k, v in (value or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def parse_metrics(stdout: str) -> dict[str, float]:
    """The metrics an evaluator printed: its last JSON object with numbers, else its `name: number` lines."""
    lines = stdout.splitlines()
    for line in reversed(lines):
        text = line.strip()
        if text.startswith("{") and text.endswith("}"):
            try:
                found = numbers_of(json.loads(text))
            except (ValueError, AttributeError):
                continue
            if found:
                return found
    found = {}
    for line in lines:
        if match := SCORE_LINE.search(line.strip()):
            found[match.group(1)] = float(match.group(2))
    return found


def pick_metric(metrics: dict[str, float], wanted: str | None) -> str:
    if wanted:
        if wanted not in metrics:
            raise ToolError(f"the evaluator reported no metric {wanted!r}; it reported {sorted(metrics)}.")
        return wanted
    return next((m for m in PREFERRED_METRICS if m in metrics), next(iter(metrics)))


class RunBenchmarkEvalTool(Tool):
    name = "run_benchmark_eval"
    description = """Score a model with the benchmark's own evaluator (the run's eval command; its files are read-only).
Use it to compare the base model with final_model; choose between your checkpoints on your own held-out split
(save_final_model), not on this test set. `limit` evaluates fewer items, faster.
Returns {"score", "metric", "metrics", "model", "seconds", "output_tail"}.
Example: r = run_benchmark_eval(model="final_model", limit=50)"""
    inputs = {
        "model": {"type": "string", "description": "\"final_model\", the base model, or a checkpoint folder."},
        "limit": {"type": "integer", "description": "Evaluate at most this many items.", "nullable": True},
        "metric": {"type": "string", "description": "Which reported metric is the score (default: accuracy, "
                   "score, ... whichever it reports).", "nullable": True},
    }
    output_type = "object"

    def __init__(self, ctx: ToolContext):
        super().__init__()
        self.ctx = ctx

    def forward(self, model: str, limit: int | None = None, metric: str | None = None) -> dict:
        ctx, rules = self.ctx, self.ctx.rules
        target = self._model(model)
        secrets = ctx.settings.secrets
        with tempfile.TemporaryDirectory(prefix="eval-") as scratch:
            metrics_file = Path(scratch) / "metrics.json"
            argv = self._argv(str(target), metrics_file, limit)
            shown = redact(shlex.join(argv), secrets)
            timeout = min(MAX_EVAL_S, max(1.0, rules.stop_at - time.time()))
            started = time.monotonic()
            try:
                done = subprocess.run(argv, cwd=rules.eval_dir, env=credential_free_env(), capture_output=True,
                                      text=True, timeout=timeout)
            except subprocess.TimeoutExpired as err:
                raise ToolError(f"the evaluator ran past the time left ({timeout / 60:.1f} min) and was stopped: "
                                f"{shown}. Pass a smaller limit.") from err
            except OSError as err:
                raise ToolError(f"the eval command could not start: {err} ({shown}).") from err
            seconds = round(time.monotonic() - started, 1)
            output = redact((done.stdout or "") + (done.stderr or ""), secrets)
            if done.returncode != 0:
                raise ToolError(f"the evaluator exited with code {done.returncode} ({shown}); its output ends:\n"
                                f"{output[-TAIL_CHARS:]}")
            metrics = self._metrics(metrics_file, done.stdout or "")
        if not metrics:
            raise ToolError(f"the evaluator printed no score ({shown}); its output ends:\n{output[-TAIL_CHARS:]}")
        name = pick_metric(metrics, metric)
        is_base = str(target) == rules.base_model
        ctx.ledger.record_eval(str(target), rules.benchmark, name, metrics[name], is_baseline=is_base,
                               experiment_id=ctx.current_experiment(), command=shown,
                               details={"evaluator": "eval_command", "metrics": metrics, "limit": limit},
                               user=ctx.user)
        ctx.emit("eval_result", {"text": f"{target}: {name} {metrics[name]:.4g} (the benchmark's evaluator)",
                                 "task": rules.benchmark, "metric": name, "value": metrics[name],
                                 "is_baseline": is_base, "model": str(target), "evaluator": "eval_command"})
        return {"score": metrics[name], "metric": name, "metrics": metrics, "model": str(target), "seconds": seconds,
                "output_tail": output[-600:]}

    def _model(self, model: str) -> Path | str:
        rules, text = self.ctx.rules, (model or "").strip()
        if text in ("final_model", str(rules.final_dir)):
            if not (rules.final_dir / "config.json").exists():
                raise ToolError("there is no final_model yet: save one with save_final_model first.")
            return rules.final_dir
        if text == rules.base_model:
            return rules.base_model
        path = resolve_inside(self.ctx, text, "model")
        if not (path / "config.json").is_file():
            raise ToolError(f"{path} is not a model folder (no config.json): pass \"final_model\", the base model "
                            f"{rules.base_model!r} or a checkpoint folder a run wrote.")
        return path

    def _argv(self, model: str, metrics_file: Path, limit: int | None) -> list[str]:
        template = shlex.split(self.ctx.rules.eval_command or "")
        if not template:
            raise ToolError("this run has no eval command (--eval-command); evaluate with run_evaluation instead.")
        argv = [part.replace("{model}", model).replace("{json}", str(metrics_file)) for part in template]
        if not any("{model}" in part for part in template):
            argv += ["--model-path", model]
        if limit is not None:
            if int(limit) < 1:
                raise ToolError(f"limit must be a positive number of items, got {limit}.")
            argv += ["--limit", str(int(limit))]
        return argv

    @staticmethod
    def _metrics(metrics_file: Path, stdout: str) -> dict[str, float]:
        if metrics_file.is_file():
            try:
                found = numbers_of(json.loads(metrics_file.read_text()))
            except (ValueError, AttributeError):
                found = {}
            if found:
                return found
        return parse_metrics(stdout)
