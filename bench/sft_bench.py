"""Benchmark the local SFT path on the tiny model: tokens/s padded vs packed; prints the numbers.

    python -m bench.sft_bench [--steps 60]

Each variant is the real training script from `tools.training.scripts.render_training_script`, run as a
subprocess the way the local job backend runs it. Throughput is TRL's own `num_tokens` (tokens
seen, padding excluded) divided by the trainer's `train_runtime`. Padding-free batching without
packing needs FlashAttention (GPU); on CPU it is measured only through packing's BFD strategy.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from evals.fixture_data import TRAIN_FILE
from evals.tiny_model import build_tiny_model

ROOT = Path(__file__).resolve().parents[1]
METRIC = re.compile(r"^METRIC (\{.*\})$", re.M)


def run_variant(model: Path, work: Path, name: str, steps: int, **options) -> dict:
    from tools.training.scripts import TrainingConfig, render_training_script

    config = TrainingConfig(model=str(model), dataset=str(TRAIN_FILE), output_dir=str(work / name / "ckpt"),
                            max_steps=steps, logging_steps=max(1, steps // 4), max_length=64, **options)
    script = work / name / "train.py"
    script.parent.mkdir(parents=True)
    script.write_text(render_training_script(config))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"{name} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    rows = [json.loads(m) for m in METRIC.findall(done.stdout)]
    tokens = max(r.get("num_tokens", 0) for r in rows)
    runtime = next((r["train_runtime"] for r in reversed(rows) if "train_runtime" in r), None)
    final_loss = next((r["loss"] for r in reversed(rows) if "loss" in r), None)
    return {"variant": name, "steps": steps, "tokens": int(tokens), "train_runtime_s": runtime,
            "tokens_per_s": round(tokens / runtime, 1) if runtime else None, "process_wall_s": round(wall, 1),
            "final_loss": final_loss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = build_tiny_model(work / "tiny-model")
        results = [run_variant(model, work, "padded", args.steps),
                   run_variant(model, work, "packed", args.steps, packing=True)]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
