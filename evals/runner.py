"""Score one model on one task with lighteval; the same entry point runs locally and inside jobs.

    python -m evals.runner --model PATH --task tiny_sentiment --output-dir DIR [--max-samples N]
    python -m evals.runner --model HUB_ID --task gsm8k --output-dir DIR --backend vllm --device cuda
    python -m evals.runner --model PATH --task custom:/data/qa.jsonl \
        --task-options '{"kind": "generative", "match": "number"}' --output-dir DIR

`--task` is anything `evals.catalogue.resolve_task` accepts: a shipped fixture (offline), a
catalogue benchmark (downloads its data from the Hub) or `custom:<source>`. The last line of
stdout is `EVAL_RESULT {json}` with task (the ledger key), task_spec, source, metric, value,
stderr, n_samples, fewshot, seed, lighteval_version, backend, device, model, command (to
reproduce), results_path, details_path (one JSON line per sample: id, gold, choices, logprobs or
prediction, metrics; sorted by id, for paired comparisons), data_sha256 (local data only) and
timings (load_s: model and data loading, eval_s: lighteval's scoring).
With `--print-samples` (jobs), an `EVAL_SAMPLES {json}` line carries each sample's id and score,
because a remote job's details file disappears with the job.

Shipped fixture data is verified against evals/data/MANIFEST.sha256 first (evals.integrity).
lighteval's Registry is given only the configs this task needs: its own registry imports every
built-in task module and one of them downloads a file at import, which breaks offline runs.
Importing lighteval's transformers backend turns autograd off for the whole process; `run_lighteval`
turns it back on when done, but the app runs evaluations in a subprocess anyway.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

from evals.catalogue import resolve_task
from evals.integrity import data_digest, verify_data
from evals.tasks import lighteval_config

RESULT_PREFIX = "EVAL_RESULT "
SAMPLES_PREFIX = "EVAL_SAMPLES "
BACKENDS = ("transformers", "vllm")
FIXTURE_HINT = ("Offline, evaluate a shipped fixture (tiny_sentiment, tiny_sentiment_gen) or your own local data "
                "with task='custom:<file>'.")


def check_task(task: str, options: dict | None = None) -> dict:
    """The resolved task (see evals.catalogue.resolve_task); ValueError listing the known ones."""
    return resolve_task(task, options)


def reproduce_command(model: str, task: str, output_dir: str, max_samples: int | None, batch_size: int, seed: int,
                      device: str, backend: str = "transformers", task_options: dict | None = None) -> str:
    args = ["python", "-m", "evals.runner", "--model", model, "--task", task, "--output-dir", output_dir,
            "--batch-size", str(batch_size), "--seed", str(seed), "--device", device]
    if backend != "transformers":
        args += ["--backend", backend]
    if task_options:
        args += ["--task-options", json.dumps(task_options, sort_keys=True)]
    if max_samples:
        args += ["--max-samples", str(max_samples)]
    return shlex.join(args)


@contextmanager
def _isolated_lighteval(configs: dict, cache_dir: str):
    """Make lighteval's Registry see `configs` alone instead of importing all its built-in task modules, and
    keep its sample cache in `cache_dir`: lighteval puts it at cache_dir/model_name/..., which for an absolute
    model path is inside the checkpoint folder itself."""
    from lighteval.tasks.registry import Registry
    from lighteval.utils.cache_management import SampleCache

    original_load, original_init = Registry.__dict__["load_all_task_configs"], SampleCache.__init__

    def init_cache(self, model_config):
        original_init(self, model_config.model_copy(update={"model_name": "model", "cache_dir": cache_dir}))
        self.model_config = model_config

    Registry.load_all_task_configs = staticmethod(lambda custom_tasks=None, load_multilingual=False: dict(configs))
    SampleCache.__init__ = init_cache
    try:
        yield
    finally:
        Registry.load_all_task_configs, SampleCache.__init__ = original_load, original_init


def _configs(ref: dict, staged: Path | None) -> dict:
    if ref["source"] == "catalogue":
        import importlib

        from lighteval.tasks.registry import Registry

        return Registry._extract_configs(importlib.import_module(f"lighteval.tasks.tasks.{ref['module']}"))
    config = lighteval_config(ref["key"], data_dir=staged)
    return {config.name: config}


def _stage(ref: dict, out: Path) -> Path | None:
    """A single local data file is copied to <out>/data/<split><suffix>: lighteval reads folders of split files."""
    path = Path(ref.get("data_path") or "")
    if not path.is_file():
        return None
    staged = out / "data"
    staged.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, staged / f"{ref['split']}{path.suffix}")
    return staged


def _row(detail, subtask: str | None) -> dict:
    doc, response = detail.doc, detail.model_response
    row = {"id": f"{subtask}/{doc.id}" if subtask else doc.id, "gold": doc.gold_index, "choices": doc.choices,
           "logprobs": [float(x) for x in (response.logprobs or [])], "metrics": detail.metric}
    if response.text:
        row["prediction"] = str(response.final_text[0])[:2000]
    return row


def _sort_key(row: dict):
    prefix, _, rest = str(row["id"]).rpartition("/")
    return (prefix, int(rest) if rest.isdigit() else 0, rest)


def _scores(ref: dict, aggregated: dict, details: dict) -> tuple[float, float, list[dict]]:
    """Value, stderr and per-sample rows of the primary metric; a superset (MMLU) is the mean over subtasks."""
    metric, spec = ref["metric"], ref["spec"]
    if ref.get("superset"):
        subtasks = sorted(k for k in details if k.split("|")[0].startswith(f"{ref['name']}:"))
        keys = [(k, k.split("|")[0]) for k in subtasks]
        value = sum(aggregated[k][metric] for k, _ in keys) / len(keys)
        stderr = math.sqrt(sum(aggregated[k].get(f"{metric}_stderr", math.nan) ** 2 for k, _ in keys)) / len(keys)
    else:
        keys = [(spec, None)]
        if metric not in aggregated.get(spec, {}):
            raise ValueError(f"lighteval reported no {metric!r} for {spec}; it reported "
                             f"{sorted(aggregated.get(spec, {}))}.")
        value, stderr = aggregated[spec][metric], aggregated[spec].get(f"{metric}_stderr", math.nan)
    rows = sorted((_row(d, sub) for k, sub in keys for d in details[k]), key=_sort_key)
    return float(value), float(stderr) if stderr is not None else math.nan, rows


def _hub_error(ref: dict, err: Exception) -> ValueError | None:
    """A readable error when a Hub-backed task could not get its data (offline, gated, missing)."""
    chain, seen = [], err
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    text = " ".join(f"{type(e).__name__}: {e}" for e in chain)
    if not any(word in text for word in ("Connection", "offline", "Offline", "resolve", "Gated", "gated", "401",
                                         "403", "DatasetNotFound", "Couldn't reach", "NameResolution")):
        return None
    where = ref.get("hf_repo") or ref["key"]
    return ValueError(f"{ref['key']} needs the Hugging Face Hub to download {where} and could not get it "
                      f"({type(chain[-1]).__name__}: {str(chain[-1])[:200]}). Check network access and, for gated "
                      f"datasets, HF_TOKEN. {FIXTURE_HINT}")


def _evaluate(model_path: str, ref: dict, configs: dict, out: Path, max_samples: int | None, batch_size: int,
              seed: int, device: str, backend: str) -> tuple[dict, dict, dict]:
    """Run lighteval's Pipeline; return its aggregated metrics, per-sample details (by task name) and timings."""
    import torch

    grad_enabled = torch.is_grad_enabled()  # lighteval's transformers backend disables autograd at import
    from lighteval.logging.evaluation_tracker import EvaluationTracker
    from lighteval.pipeline import ParallelismManager, Pipeline, PipelineParameters
    from transformers import set_seed

    set_seed(seed)
    # lighteval caches per-sample outputs keyed by the model path and config: a fresh cache per run keeps a
    # checkpoint retrained in place from being scored with its predecessor's outputs.
    try:
        with tempfile.TemporaryDirectory(prefix="lighteval-cache-") as cache_dir, \
                _isolated_lighteval(configs, cache_dir):
            if backend == "vllm":
                from lighteval.models.vllm.vllm_model import VLLMModelConfig

                model_config = VLLMModelConfig(model_name=model_path, seed=seed, cache_dir=cache_dir)
                launcher = ParallelismManager.VLLM
            else:
                from lighteval.models.transformers.transformers_model import TransformersModelConfig

                model_config = TransformersModelConfig(model_name=model_path, device=device, dtype="float32"
                                                       if device == "cpu" else "bfloat16", batch_size=batch_size,
                                                       cache_dir=cache_dir)
                launcher = ParallelismManager.ACCELERATE
            start = time.perf_counter()
            try:
                pipeline = Pipeline(
                    tasks=ref["spec"],
                    pipeline_parameters=PipelineParameters(launcher_type=launcher, max_samples=max_samples),
                    evaluation_tracker=EvaluationTracker(output_dir=str(out), save_details=False),
                    model_config=model_config)
            except Exception as err:
                hub = _hub_error(ref, err) if ref["needs_hub"] else None
                if hub:
                    raise hub from err
                raise
            loaded = time.perf_counter()
            pipeline.evaluate()
            timings = {"load_s": round(loaded - start, 2), "eval_s": round(time.perf_counter() - loaded, 2)}
            pipeline.save_and_push_results()
            tracker = pipeline.evaluation_tracker
            return tracker.metrics_logger.metric_aggregated, tracker.details_logger.details, timings
    finally:
        torch.set_grad_enabled(grad_enabled)


def _check_model(model_path: str) -> str:
    local = Path(model_path).expanduser()
    if local.exists():
        if not (local / "config.json").is_file():
            raise ValueError(f"{model_path} is not a model directory (no config.json)")
        return str(local.resolve())
    if model_path.startswith(("/", ".", "~")):
        raise ValueError(f"model path {model_path} does not exist")
    return model_path


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run_lighteval(model_path: str, task: str = "tiny_sentiment", *, output_dir: str, max_samples: int | None = None,
                  batch_size: int = 16, seed: int = 0, device: str = "cpu", backend: str = "transformers",
                  task_options: dict | None = None) -> dict:
    """Evaluate `model_path` (a local checkpoint dir or a Hub id) on `task`; return the result dict."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; use one of {BACKENDS}")
    ref = check_task(task, task_options)
    if ref["source"] == "fixture":
        data_sha256 = verify_data(ref["data_path"])["data_sha256"]
    else:
        data_sha256 = data_digest(ref["data_path"]) if ref.get("data_path") else None
    model_path = _check_model(model_path)
    if ref["needs_hub"] and os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ValueError(f"{ref['key']} downloads {ref.get('hf_repo')} from the Hugging Face Hub, and HF_HUB_OFFLINE=1 "
                         f"is set. {FIXTURE_HINT}")
    device = _resolve_device(device)
    out = Path(output_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    configs = _configs(ref, _stage(ref, out))
    aggregated, details, timings = _evaluate(model_path, ref, configs, out, max_samples, batch_size, seed, device,
                                             backend)
    value, stderr, rows = _scores(ref, aggregated, details)

    details_path = out / f"details_{ref['name'].replace(':', '_')}.jsonl"
    details_path.write_text("".join(json.dumps(r, default=float) + "\n" for r in rows))
    results_files = sorted(out.glob("results/**/results_*.json"), key=lambda p: p.stat().st_mtime)
    return {
        "task": ref["key"], "task_spec": ref["spec"], "source": ref["source"], "metric": ref["metric"], "value": value,
        "stderr": stderr, "n_samples": len(rows), "fewshot": ref["fewshot"], "seed": seed,
        "lighteval_version": version("lighteval"), "backend": backend, "device": device, "model": model_path,
        "command": reproduce_command(model_path, ref["key"], str(out), max_samples, batch_size, seed, device, backend,
                                     task_options),
        "results_path": str(results_files[-1]) if results_files else None, "details_path": str(details_path),
        "data_sha256": data_sha256, "timings": timings,
        **({"task_options": ref["custom"]} if ref["source"] == "custom" else {}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate a model on a task with lighteval.")
    parser.add_argument("--model", required=True, help="local checkpoint dir or Hub model id")
    parser.add_argument("--task", default="tiny_sentiment", help="a fixture, a catalogue benchmark or custom:<source>")
    parser.add_argument("--task-options", default=None, help="JSON options of a custom: task")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--max-samples", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ... or auto")
    parser.add_argument("--backend", default="transformers", choices=BACKENDS)
    parser.add_argument("--print-samples", action="store_true", help="also print an EVAL_SAMPLES line (jobs)")
    args = parser.parse_args(argv)
    try:
        options = json.loads(args.task_options) if args.task_options else None
        result = run_lighteval(args.model, args.task, output_dir=args.output_dir, max_samples=args.max_samples,
                               batch_size=args.batch_size, seed=args.seed, device=args.device, backend=args.backend,
                               task_options=options)
    except ValueError as err:  # includes TamperedEvalData and bad --task-options JSON
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.print_samples:
        rows = [json.loads(line) for line in Path(result["details_path"]).read_text().splitlines()]
        print(SAMPLES_PREFIX + json.dumps({"metric": result["metric"], "ids": [r["id"] for r in rows],
                                           "scores": [r["metrics"].get(result["metric"]) for r in rows]},
                                          default=float), flush=True)
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
