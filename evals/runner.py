"""Score one model on one task with lighteval; the same entry point runs locally and inside jobs.

    python -m evals.runner --model PATH --task tiny_sentiment --output-dir DIR [--max-samples N]

The last line of stdout is `EVAL_RESULT {json}` with task, task_spec, metric, value, stderr,
n_samples, fewshot, seed, lighteval_version, model, command (to reproduce), results_path and
details_path (one JSON line per sample: id, gold, per-choice log-likelihoods, metric value,
sorted by id, for paired comparisons between two models).

Only `evals/tasks.py` is loaded as a task source: lighteval's own registry imports every built-in
task module and one of them downloads a file at import, which breaks offline runs. Importing
lighteval's transformers backend turns autograd off for the whole process; `run_lighteval` turns
it back on when done, but the app runs evaluations in a subprocess anyway (tools/evaluation.py).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

from evals.tasks import TASKS, task_spec

RESULT_PREFIX = "EVAL_RESULT "


def check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; available tasks: {', '.join(sorted(TASKS))}")


def reproduce_command(model: str, task: str, output_dir: str, max_samples: int | None,
                      batch_size: int, seed: int, device: str) -> str:
    args = ["python", "-m", "evals.runner", "--model", model, "--task", task,
            "--output-dir", output_dir, "--batch-size", str(batch_size), "--seed", str(seed),
            "--device", device]
    if max_samples:
        args += ["--max-samples", str(max_samples)]
    return shlex.join(args)


@contextmanager
def _only_our_tasks():
    """Make lighteval's Registry read `evals/tasks.py` alone instead of importing its built-ins."""
    from lighteval.tasks.registry import Registry

    def load_custom_only(custom_tasks=None, load_multilingual=False):
        return Registry._extract_configs(Registry.create_custom_tasks_module(custom_tasks))

    original = Registry.__dict__["load_all_task_configs"]
    Registry.load_all_task_configs = staticmethod(load_custom_only)
    try:
        yield
    finally:
        Registry.load_all_task_configs = original


def _write_details(details: list, path: Path) -> None:
    rows = [{"id": d.doc.id, "gold": d.doc.gold_index, "choices": d.doc.choices,
             "logprobs": [float(x) for x in d.model_response.logprobs], "metrics": d.metric}
            for d in details]
    rows.sort(key=lambda r: int(r["id"]) if str(r["id"]).isdigit() else r["id"])
    path.write_text("".join(json.dumps(r, default=float) + "\n" for r in rows))


def _evaluate(model_path: str, spec: str, out: Path, max_samples: int | None, batch_size: int,
              seed: int, device: str) -> tuple[dict, list]:
    """Run lighteval's Pipeline; return its aggregated metrics and per-sample details for `spec`."""
    import torch

    grad_enabled = torch.is_grad_enabled()  # lighteval's transformers backend disables autograd at import
    from lighteval.logging.evaluation_tracker import EvaluationTracker
    from lighteval.models.transformers.transformers_model import TransformersModelConfig
    from lighteval.pipeline import ParallelismManager, Pipeline, PipelineParameters
    from transformers import set_seed

    set_seed(seed)
    # lighteval caches per-sample outputs keyed by the model *path*: a fresh cache per run keeps a
    # checkpoint retrained in place from being scored with its predecessor's outputs.
    try:
        with tempfile.TemporaryDirectory(prefix="lighteval-cache-") as cache_dir, _only_our_tasks():
            pipeline = Pipeline(
                tasks=spec,
                pipeline_parameters=PipelineParameters(
                    launcher_type=ParallelismManager.ACCELERATE, max_samples=max_samples,
                    custom_tasks_directory=str(Path(__file__).with_name("tasks.py"))),
                evaluation_tracker=EvaluationTracker(output_dir=str(out), save_details=False),
                model_config=TransformersModelConfig(model_name=model_path, device=device, dtype="float32",
                                                     batch_size=batch_size, cache_dir=cache_dir),
            )
            pipeline.evaluate()
            pipeline.save_and_push_results()
            tracker = pipeline.evaluation_tracker
            return tracker.metrics_logger.metric_aggregated[spec], tracker.details_logger.details[spec]
    finally:
        torch.set_grad_enabled(grad_enabled)


def run_lighteval(model_path: str, task: str = "tiny_sentiment", *, output_dir: str,
                  max_samples: int | None = None, batch_size: int = 16, seed: int = 0,
                  device: str = "cpu") -> dict:
    """Evaluate `model_path` (a local checkpoint dir or a Hub id) on `task`; return the result dict."""
    check_task(task)
    local = Path(model_path).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise ValueError(f"{model_path} is not a model directory (no config.json)")
        model_path = str(local.resolve())
    elif model_path.startswith(("/", ".", "~")):
        raise ValueError(f"model path {model_path} does not exist")
    out = Path(output_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    spec = task_spec(task)
    results, details = _evaluate(model_path, spec, out, max_samples, batch_size, seed, device)

    metric = TASKS[task]["metric"]
    details_path = out / f"details_{task}.jsonl"
    _write_details(details, details_path)
    results_files = sorted(out.glob("results/**/results_*.json"), key=lambda p: p.stat().st_mtime)
    return {
        "task": task, "task_spec": spec, "metric": metric, "value": float(results[metric]),
        "stderr": float(results.get(f"{metric}_stderr", float("nan"))), "n_samples": len(details),
        "fewshot": TASKS[task]["fewshot"], "seed": seed, "lighteval_version": version("lighteval"),
        "model": model_path,
        "command": reproduce_command(model_path, task, str(out), max_samples, batch_size, seed, device),
        "results_path": str(results_files[-1]) if results_files else None,
        "details_path": str(details_path),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate a model on a task with lighteval.")
    parser.add_argument("--model", required=True, help="local checkpoint dir or Hub model id")
    parser.add_argument("--task", default="tiny_sentiment", help=f"one of: {', '.join(sorted(TASKS))}")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--max-samples", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    args = parser.parse_args(argv)
    try:
        result = run_lighteval(args.model, args.task, output_dir=args.output_dir,
                               max_samples=args.max_samples, batch_size=args.batch_size,
                               seed=args.seed, device=args.device)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
