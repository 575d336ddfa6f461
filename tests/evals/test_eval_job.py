"""evals/eval_job.py: the uv script an evaluation job runs carries the runner and the data, and runs alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from evals.eval_job import render_eval_script
from evals.runner import RESULT_PREFIX, SAMPLES_PREFIX


def test_the_eval_job_script_carries_the_runner_and_the_data(tmp_path, tiny_model_dir):
    argv = ["--model", str(tiny_model_dir), "--task", "tiny_sentiment", "--output-dir", str(tmp_path / "out"),
            "--max-samples", "8"]
    cpu = render_eval_script(argv)
    assert cpu.startswith("# /// script") and '"lighteval==0.13.0"' in cpu and "vllm" not in cpu
    gpu = render_eval_script(argv, gpu=True)
    assert '"lighteval[vllm]==0.13.0"' in gpu and '"--backend", "vllm"' in gpu
    script = tmp_path / "eval_job.py"
    script.write_text(cpu)
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    samples = json.loads(lines[-2][len(SAMPLES_PREFIX):])
    assert lines[-1].startswith(RESULT_PREFIX), proc.stdout[-2000:]
    result = json.loads(lines[-1][len(RESULT_PREFIX):])
    assert lines[-2].startswith(SAMPLES_PREFIX) and len(set(samples["ids"])) == 8  # lighteval's seeded subset
    assert result["n_samples"] == 8 and sum(samples["scores"]) / 8 == pytest.approx(result["value"])
