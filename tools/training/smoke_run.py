"""Smoke runs: train a run's own script for a few steps on a tiny local model, to catch script and
data-format errors in a minute before paying for a GPU.

The script honours ML_INTERN_SMOKE_MODEL (train this model instead, short sequences, no push),
ML_INTERN_MAX_STEPS, ML_INTERN_MAX_ROWS and ML_INTERN_OUTPUT_DIR (see tools/training/templates.py), so
the smoke run executes exactly the file a job would. The tiny model is built once under
`<data_dir>/smoke/tiny-model`, with a ChatML template so conversational datasets work.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from smolagents import Tool

from tools.confine import credential_free_env, yield_cpu
from tools.context import ToolContext
from tools.errors import ToolError
from tools.redact import redact
from tools.training.jobs import last_error_line
from tools.training.scripts import is_local_path
from tools.trl_formats import METHOD_COLUMNS

DEFAULT_STEPS = 3
MAX_STEPS = 20
SMOKE_ROWS = 64
TIMEOUT_S = 600
LOG_TAIL_LINES = 20
MAX_LINE_CHARS = 400
CHAT_TEMPLATE = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
                 "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
OFFLINE_MARKERS = ("Couldn't reach", "ConnectionError", "LocalEntryNotFoundError", "OfflineModeIsEnabled",
                   "Temporary failure in name resolution", "Name or service not known", "ConnectError")


def smoke_model(data_dir: str | Path) -> Path:
    """The tiny model smoke runs train: built on first use (a few seconds), then reused."""
    target = Path(data_dir).resolve() / "smoke" / "tiny-model"
    if (target / "config.json").is_file():
        return target
    from transformers import AutoTokenizer

    from evals.tiny_model import build_tiny_model

    building = target.with_name(f"tiny-model.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    build_tiny_model(building)
    tokenizer = AutoTokenizer.from_pretrained(building)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(building)
    try:
        building.rename(target)
    except OSError:  # another process built it meanwhile
        shutil.rmtree(building, ignore_errors=True)
    return target


def failing_line(log: str, script: Path) -> str | None:
    """The script's own line in the last traceback, as `train.py line N: code`."""
    frames = re.findall(rf'File "{re.escape(str(script))}", line (\d+), in \w+\n\s+(.+)', log)
    if not frames:
        return None
    number, code = frames[-1]
    return f"{script.name} line {number}: {code.strip()}"[:MAX_LINE_CHARS]


class SmokeRunTool(Tool):
    name = "smoke_run"
    description = f"""Run a written run's script here for a few steps on a tiny model and {SMOKE_ROWS} rows of its
dataset: catches script, column and reward errors in a minute, before paying for a GPU.
Returns {{"ok", "seconds", "log_tail", "error", "failing_line", "reason"}}; reason says what a failure means
and what to do.
Example: smoke_run(run_id=run["run_id"])["ok"]"""
    inputs = {
        "run_id": {"type": "integer", "description": "The run to check, from write_training_script."},
        "steps": {"type": "integer", "description": f"Steps to run (default {DEFAULT_STEPS}, at most {MAX_STEPS}).",
                  "nullable": True},
    }
    output_type = "object"

    def __init__(self, ctx: ToolContext, timeout_s: float = TIMEOUT_S):
        self.ctx = ctx
        self.timeout_s = timeout_s
        super().__init__()

    def forward(self, run_id: int, steps: int | None = None) -> dict:
        ctx = self.ctx
        run = ctx.ledger.get_run(int(run_id), user=ctx.user)
        if run is None:
            raise ToolError(f"there is no run {run_id}; create one with write_training_script and pass its run_id.")
        script = Path(run["script_path"] or "")
        if not script.is_file():
            raise ToolError(f"run {run_id} has no script at {script}; write it again with write_training_script.")
        steps = DEFAULT_STEPS if steps is None else int(steps)
        if not 1 <= steps <= MAX_STEPS:
            raise ToolError(f"steps must be between 1 and {MAX_STEPS}, got {steps}: a smoke run only checks that "
                            "training starts and saves.")
        config = json.loads(run["config_json"]) if run.get("config_json") else {"dataset": run["dataset"],
                                                                                 "method": run["method"]}
        work = ctx.data_area("smoke").resolve() / f"run-{int(run_id)}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        env = credential_free_env({
            "PYTHONUNBUFFERED": "1", "ML_INTERN_SMOKE_MODEL": str(smoke_model(ctx.settings.data_dir)),
            "ML_INTERN_MAX_STEPS": str(steps), "ML_INTERN_MAX_ROWS": str(SMOKE_ROWS),
            "ML_INTERN_OUTPUT_DIR": str(work / "checkpoint")})
        if ctx.settings.hf_token:  # a private Hub dataset needs it; it never reaches the log or the result
            env["HF_TOKEN"] = ctx.settings.hf_token
        log, code, seconds = self._run(script, work, env)
        log = redact(log, ctx.settings.secrets)
        ok = code == 0 and "TRAINING_DONE " in log
        tail = [line[:MAX_LINE_CHARS] for line in log.splitlines() if not line.startswith(("METRIC ", "{'"))]
        result = {"ok": ok, "seconds": round(seconds, 1), "log_tail": "\n".join(tail[-LOG_TAIL_LINES:]),
                  "error": None if ok else (last_error_line(log) or f"exit code {code}"),
                  "failing_line": None if ok else failing_line(log, script),
                  "reason": self._reason(ok, code, log, config, steps)}
        shutil.rmtree(work / "checkpoint", ignore_errors=True)
        ctx.emit("smoke_run", {"run_id": int(run_id), "ok": ok, "seconds": result["seconds"],
                               "error": result["error"]})
        return result

    def _run(self, script: Path, work: Path, env: dict) -> tuple[str, int | None, float]:
        started = time.monotonic()
        with open(work / "log.txt", "w+b") as log:
            proc = subprocess.Popen([sys.executable, str(script)], cwd=work, env=env, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=yield_cpu)
            try:
                code = proc.wait(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                code = None
            log.seek(0)
            text = log.read().decode(errors="replace")
        return text, code, time.monotonic() - started

    def _reason(self, ok: bool, code: int | None, log: str, config: dict, steps: int) -> str:
        dataset, method = config.get("dataset", ""), config.get("method", "sft")
        if ok:
            return (f"The script trained the tiny model for {steps} steps and saved it: the script and the data "
                    "format work. Submit it with submit_job.")
        if code is None:
            return (f"The smoke run did not finish within {self.timeout_s:.0f}s; read log_tail for where it "
                    "stalled (a Hub download, a slow reward function).")
        if dataset and not is_local_path(dataset) and any(marker in log for marker in OFFLINE_MARKERS):
            return (f"The dataset {dataset!r} is a Hub id and could not be downloaded from this machine (no network "
                    "to the Hub), so the smoke run could not check it. Check its columns with the dataset tools "
                    "instead, or test on a local .jsonl copy of a few rows.")
        if "DatasetNotFoundError" in log:
            return f"The dataset {dataset!r} was not found on the Hub: check the id, or pass a token for a private one."
        missing = re.findall(r"^KeyError: '([^']+)'", log, re.M)
        if missing and method in METHOD_COLUMNS:
            needs = " or ".join("+".join(columns) for columns in METHOD_COLUMNS[method])
            return (f"A dataset row has no {missing[-1]!r} field: {method.upper()} needs the columns {needs} (and "
                    "each reward function the columns it reads). Convert the dataset (reformat_dataset), then write "
                    "a new run with write_training_script and smoke_run it again.")
        if "QLoRA needs a CUDA GPU" in log:
            return "QLoRA needs a CUDA GPU: use lora=True for runs on this machine, or a GPU flavor on HF Jobs."
        return ("The script failed before saving a model: read error and failing_line, fix the cause (often a "
                "dataset column the method needs, or a reward function error), write a new run with "
                "write_training_script and smoke_run it again.")
