"""The evaluation tool: score a local checkpoint with lighteval and record the result in the ledger.

The evaluation runs as `python -m evals.runner ...` in a subprocess, so the app process never
imports lighteval or torch, and the recorded command is exactly what reproduces the number.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from smolagents import Tool

from evals.runner import RESULT_PREFIX
from evals.tasks import TASKS
from tools.context import ToolContext
from tools.errors import ToolError

REPO_ROOT = Path(__file__).resolve().parent.parent
EVAL_TIMEOUT_S = 3600
STDERR_TAIL_LINES = 20


def _tail(text: str, n: int = STDERR_TAIL_LINES) -> str:
    """The last `n` lines, keeping only the final state of progress bars redrawn with '\\r'."""
    lines = [line.rsplit("\r", 1)[-1][:300] for line in text.splitlines()]
    return "\n".join([line for line in lines if line.strip()][-n:])


class RunEvaluationTool(Tool):
    name = "run_evaluation"
    description = f"""Evaluate a local model checkpoint on a lighteval task and record the score in the
experiment ledger. Run it once on the starting model with is_baseline=True, then on every trained
checkpoint with the same task and the run_id of the training run: the result then includes the
baseline score and the delta. Takes from seconds (tiny models) to many minutes (large models on CPU).

Inputs:
- model: path of a local checkpoint directory (it must contain config.json), e.g. the output_dir
  of a finished training run.
- task: one of {sorted(TASKS)} (default "tiny_sentiment").
- is_baseline: true when this is the untrained starting point to compare against (default false).
- run_id: the ledger run that produced this checkpoint (from write_training_script), if any.
- max_samples: evaluate a fixed subset of N samples (quick smoke checks; scores are not
  comparable with full evaluations).

Returns a dict: {{"eval_id", "task", "metric", "value", "stderr", "n_samples", "is_baseline",
"model", "command"}}, plus "baseline" and "delta" (value - baseline) when a baseline for this task
exists in the current experiment. "command" reproduces the number exactly.

Example:
    base = run_evaluation(model="/data/models/base", task="tiny_sentiment", is_baseline=True)
    after = run_evaluation(model=run["output_dir"], task="tiny_sentiment", run_id=run["run_id"])
    print(after["value"], after["delta"])"""
    inputs = {
        "model": {"type": "string", "description": "Local checkpoint directory (contains config.json)."},
        "task": {"type": "string", "description": f"Task name, one of {sorted(TASKS)}.", "nullable": True},
        "is_baseline": {"type": "boolean", "description": "True for the starting model's baseline score.",
                        "nullable": True},
        "run_id": {"type": "integer", "description": "Ledger run that produced this checkpoint.",
                   "nullable": True},
        "max_samples": {"type": "integer", "description": "Evaluate only N samples (smoke checks).",
                        "nullable": True},
    }
    output_type = "object"

    def __init__(self, ctx: ToolContext):
        self.ctx = ctx
        super().__init__()

    def forward(self, model: str, task: str | None = "tiny_sentiment", is_baseline: bool | None = False,
                run_id: int | None = None, max_samples: int | None = None) -> dict:
        ctx = self.ctx
        task = task or "tiny_sentiment"
        is_baseline = bool(is_baseline)
        model_dir = self._check_model(model)
        if task not in TASKS:
            raise ToolError(f"unknown task {task!r}; known tasks: {', '.join(sorted(TASKS))}. "
                            "Pass one of these as task=.")
        if run_id is not None and ctx.ledger.get_run(int(run_id)) is None:
            raise ToolError(f"there is no run {run_id} in the ledger; pass the run_id that "
                            "write_training_script returned, or leave run_id out.")
        if max_samples is not None and int(max_samples) < 1:
            raise ToolError(f"max_samples must be a positive integer, got {max_samples}; "
                            "leave it out to evaluate the whole task.")

        result = self._run(model_dir, task, max_samples)
        experiment_id = ctx.current_experiment()
        if is_baseline:
            experiment = ctx.ledger.get_experiment(experiment_id) or {}
            missing = {"base_model": str(model_dir), "task": task}
            ctx.ledger.update_experiment(experiment_id, **{k: v for k, v in missing.items() if not experiment.get(k)})
        stderr = result["stderr"] if result["stderr"] is not None and math.isfinite(result["stderr"]) else None
        details = {k: result.get(k) for k in ("task_spec", "fewshot", "seed", "lighteval_version",
                                              "details_path", "results_path")}
        details["max_samples"] = max_samples
        eval_id = ctx.ledger.record_eval(
            model=result["model"], task=task, metric=result["metric"], value=result["value"],
            stderr=stderr, is_baseline=is_baseline, experiment_id=experiment_id,
            run_id=int(run_id) if run_id is not None else None, checkpoint=str(model_dir),
            n_samples=result["n_samples"], command=result["command"], details=details)
        out = {"eval_id": eval_id, "task": task, "metric": result["metric"], "value": result["value"],
               "stderr": stderr, "n_samples": result["n_samples"], "is_baseline": is_baseline,
               "model": result["model"], "command": result["command"]}
        if not is_baseline:
            base = ctx.ledger.baseline_for(experiment_id, task, result["metric"])
            if base is not None:
                out["baseline"] = base["value"]
                out["delta"] = result["value"] - base["value"]
                if base["n_samples"] != result["n_samples"]:
                    out["note"] = (f"the baseline used {base['n_samples']} samples and this evaluation "
                                   f"{result['n_samples']}: the delta is not a fair comparison.")
        ctx.emit("eval_result", {**out, "experiment_id": experiment_id, "run_id": run_id})
        return out

    @staticmethod
    def _check_model(model: str) -> Path:
        path = Path(str(model)).expanduser()
        if not path.is_dir():
            raise ToolError(f"model path {model!r} does not exist or is not a directory; pass a local "
                            "checkpoint directory, e.g. the output_dir of a finished training run.")
        if not (path / "config.json").is_file():
            hint = (" It holds a LoRA adapter (adapter_config.json): merge it into the base model and save "
                    "that." if (path / "adapter_config.json").is_file() else "")
            raise ToolError(f"{model!r} is not a model directory: it has no config.json.{hint} Pass the "
                            "directory a model was saved to with save_pretrained.")
        return path.resolve()

    def _run(self, model_dir: Path, task: str, max_samples: int | None) -> dict:
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{task}-{uuid.uuid4().hex[:6]}"
        out_dir = (Path(self.ctx.settings.data_dir) / "evals" / name).resolve()
        cmd = [sys.executable, "-m", "evals.runner", "--model", str(model_dir), "--task", task,
               "--output-dir", str(out_dir)]
        if max_samples is not None:
            cmd += ["--max-samples", str(int(max_samples))]
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
        try:
            proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                                  timeout=EVAL_TIMEOUT_S)
        except subprocess.TimeoutExpired as err:
            raise ToolError(f"evaluation of {model_dir} on {task} did not finish within {EVAL_TIMEOUT_S} s; "
                            "try max_samples for a quick check, or a smaller model.") from err
        lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
        if proc.returncode != 0 or not lines:
            raise ToolError(f"evaluation of {model_dir} on {task} failed (exit code {proc.returncode}). "
                            f"Last lines of its output:\n{_tail(proc.stderr or proc.stdout)}\n"
                            "Check that the checkpoint loads with transformers' AutoModelForCausalLM and "
                            "has its tokenizer saved next to it.")
        return json.loads(lines[-1][len(RESULT_PREFIX):])
