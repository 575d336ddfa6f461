"""The offline demo: a scripted model drives the real tools on a tiny model built on the spot.

Nothing here is an LLM: the plan in `demo_plan.yaml` is replayed step by step, and the app and
CLI label it as scripted. The tools, the training job and lighteval all run for real.
"""

from __future__ import annotations

from pathlib import Path

from evals.fixture_data import TRAIN_FILE
from tools.ledger import Ledger

DEMO_TASK = ("Scripted offline demo: improve the tiny model `base_model` on the tiny_sentiment "
             "task using the training data at `train_data`. Measure a baseline, train with SFT "
             "on the local backend, evaluate the checkpoint and compare.")


def prepare_demo(data_dir: Path) -> dict:
    """Build the demo's tiny model once under `data_dir`; return the plan's variables."""
    model_dir = Path(data_dir) / "demo" / "tiny-model"
    if not (model_dir / "config.json").exists():
        from evals.tiny_model import build_tiny_model

        build_tiny_model(model_dir)
    return {"base_model": str(model_dir.resolve()), "train_data": str(TRAIN_FILE.resolve())}


def score_summary(ledger: Ledger, experiment_id: int) -> str:
    """Baseline and trained scores of an experiment, read back from the ledger."""
    lines = []
    for row in ledger.evals_for(experiment_id):
        label = "baseline" if row["is_baseline"] else f"trained (run {row['run_id']})"
        stderr = f" ± {row['stderr']:.3f}" if row["stderr"] is not None else ""
        lines.append(f"{label:>18}: {row['task']} {row['metric']} = {row['value']:.3f}{stderr}"
                     f" (n={row['n_samples']})")
    return "\n".join(lines) or "no evaluations recorded"
