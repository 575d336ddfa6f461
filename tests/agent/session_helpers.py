"""What the stop, resume and export tests share: scripted configs, and a session with a real local job running."""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from agent.config import AgentConfig
from evals.fixture_data import TRAIN_FILE
from tools.training.jobs import SubmitJobTool
from tools.training.scripts import WriteTrainingScriptTool

# Stands in for a training script: prints METRIC lines as the real ones do, then holds on.
SLOW_JOB = "import time\nprint('METRIC {\"step\": 1, \"max_steps\": 10, \"loss\": 3.0}', flush=True)\ntime.sleep(120)\n"


def write_plan(path: Path, steps: list[dict]) -> Path:
    path.write_text(yaml.safe_dump(steps, sort_keys=False))
    return path


def scripted_config(tmp_path: Path, settings, steps: list[dict] | None = None) -> AgentConfig:
    """A scripted config whose plan file (tmp_path/plan.yaml) may be written later, before the first turn."""
    plan = tmp_path / "plan.yaml"
    if steps is not None:
        write_plan(plan, steps)
    return AgentConfig(backend="scripted", model_id="scripted", scripted_plan=plan, settings=settings,
                       auto_approve=True)


def submit_job(ctx, model_dir: Path, body: str | None = SLOW_JOB) -> dict:
    """A run written by write_training_script and submitted by submit_job in the session's experiment; with
    `body`, its script is replaced first (as tests/training/test_jobs.py does) so the job is quick to start."""
    run = WriteTrainingScriptTool(ctx)(model=str(model_dir), dataset=str(TRAIN_FILE), max_steps=10,
                                       learning_rate=3e-3, per_device_train_batch_size=16)
    if body is not None:
        Path(ctx.ledger.get_run(run["run_id"], user=ctx.user)["script_path"]).write_text(body)
    return SubmitJobTool(ctx)(run_id=run["run_id"])


def wait_until(condition, timeout_s: float = 120.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
