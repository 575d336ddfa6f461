"""Measured training throughput: tokens per second per GPU model, from the user's finished runs.

submit_job records each run's launch in its config ("launch": GPU model, processes, parameters, method);
the Trainer logs `train_runtime` at the end and TRL `num_tokens` (tokens seen) as it goes. A completed
run with all three gives one figure, normalized like hardware.SEEDED_TOKENS_PER_S (full SFT of a
1B-parameter model, per GPU); the median of a GPU model's last MAX_RUNS runs replaces the seeded estimate
in preflight's time and cost.
"""

from __future__ import annotations

import json
import statistics

from tools.backends import hardware
from tools.ledger import Ledger

MAX_RUNS = 10
MIN_RUNTIME_S = 30  # shorter runs are mostly warm-up


def run_tokens_per_s(config: dict, series: dict[str, list[tuple[int, float]]]) -> tuple[str, float] | None:
    """(GPU model, tokens/s per GPU normalized to full SFT at 1B parameters) of one finished run, or None when
    the run lacks its launch record or the metrics."""
    launch = config.get("launch") or {}
    model, n_params = launch.get("gpu_model"), launch.get("n_params")
    runtime = max((v for _, v in series.get("train_runtime", [])), default=0.0)
    tokens = max((v for _, v in series.get("num_tokens", [])), default=0.0)
    if not (model and n_params and tokens > 0 and runtime >= MIN_RUNTIME_S):
        return None
    train = launch.get("train") or ("lora" if config.get("lora") else "full")
    processes = int(launch.get("num_processes") or 1)
    efficiency = hardware.MULTI_GPU_EFFICIENCY.get(launch.get("strategy"), 1.0) if processes > 1 else 1.0
    # num_tokens counts every process's tokens (TRL gathers it); undo the size, method and multi-GPU scaling
    # that hardware.tokens_per_second applies.
    flops = hardware.FLOPS_PER_PARAM_TOKEN.get(train, 6.0) / 6.0 * hardware.METHOD_COST.get(config.get("method"), 1.0)
    per_gpu = tokens / runtime / processes / efficiency * float(n_params) / 1e9 * flops
    return model, per_gpu


def measured_throughput(ledger: Ledger, *, user: str) -> dict[str, float]:
    """GPU model -> median normalized tokens/s per GPU over the user's last MAX_RUNS completed runs on it."""
    figures: dict[str, list[float]] = {}
    for run in sorted(ledger.list_runs("completed", user=user), key=lambda r: r.get("finished_at") or 0,
                      reverse=True):
        if run.get("kind") == "eval" or not run.get("config_json"):
            continue
        config = json.loads(run["config_json"])
        if not (config.get("launch") or {}).get("gpu_model"):
            continue
        found = run_tokens_per_s(config, ledger.metric_series(run["id"], user=user))
        if found and len(figures.setdefault(found[0], [])) < MAX_RUNS:
            figures[found[0]].append(found[1])
    return {model: round(statistics.median(values)) for model, values in figures.items() if values}
