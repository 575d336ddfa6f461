"""Shared fixtures: a tiny model built once per test session, an isolated data directory, the loopback Hub fakes."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
for _var in ("HF_TOKEN", "ANTHROPIC_API_KEY", "GITHUB_TOKEN", "HF_HUB_OFFLINE"):
    os.environ.pop(_var, None)

import pytest  # noqa: E402

from evals.tiny_model import build_tiny_model  # noqa: E402
from tests.fakes.hub_api import serve_hub  # noqa: E402
from tests.fakes.hub_models_api import serve_models_hub  # noqa: E402
from tools.ledger import LOCAL_USER, Ledger  # noqa: E402
from tools.settings import Settings  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A freshly initialised (untrained) tiny Qwen2 model with a tokenizer trained on the fixture text."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture(scope="session")
def read_dirs(tmp_path_factory) -> tuple[Path, ...]:
    """The folders tests read local datasets and models from, as an owner would list them in ML_INTERN_READ_DIRS:
    tests/fixtures and the temporary folders (the tiny model, files a test writes)."""
    return Path(__file__).parent / "fixtures", tmp_path_factory.getbasetemp()


@pytest.fixture
def settings(data_dir, read_dirs):
    return Settings(data_dir=data_dir, compute_backend="local", extra_read_dirs=read_dirs)


@pytest.fixture
def ledger(data_dir):
    return Ledger.in_dir(data_dir)


@pytest.fixture
def hub():
    """The fake Hub + dataset viewer on loopback (tests/fakes/hub_api.py)."""
    server = serve_hub()
    yield server
    server.close()


@pytest.fixture
def models_hub():
    """The fake Hub with its model info and Jobs hardware routes (tests/fakes/hub_models_api.py)."""
    server = serve_models_hub()
    yield server
    server.close()


EXPERIMENT_CONFIG = {"model": "m", "dataset": "d", "output_dir": "x", "method": "sft", "learning_rate": 0.003,
          "max_steps": 15, "per_device_train_batch_size": 16, "lora": False, "lora_r": 16}


def _build_experiment(ledger: Ledger, checkpoint: str = "/ckpt/2", user: str = LOCAL_USER) -> dict:
    """An experiment as the tools record it: a reformatted dataset, a baseline, a short first run, a child
    run that changed one thing, a sibling that failed, and their evals (one a max_samples smoke check), all
    owned by `user`."""
    exp = ledger.create_experiment("improve tiny on tiny_sentiment", base_model="tiny", target="tiny_sentiment>=0.6",
                                    user=user)
    data = ledger.record_dataset("raw/reviews", "/data/ds1", format="prompt-completion", rows=360,
                                 transform={"from": "alpaca", "to": "prompt-completion"}, experiment_id=exp, user=user)
    ledger.record_eval("tiny", "tiny_sentiment", "acc", 0.5, stderr=0.046, n_samples=120, is_baseline=True,
                       experiment_id=exp, command="python -m evals.runner --model tiny --task tiny_sentiment",
                       user=user)
    first = ledger.create_run("sft", "tiny", "/data/ds1", experiment_id=exp, config=EXPERIMENT_CONFIG,
                              status="completed",
                              started_at=100.0, finished_at=114.0, job_id="local-1", backend="local",
                              script_path="/runs/1/train.py", script_sha256="a" * 64, output_dir="/ckpt/1",
                              user=user)
    ledger.record_eval("/ckpt/1", "tiny_sentiment", "acc", 0.5, stderr=0.046, n_samples=120,
                       experiment_id=exp, run_id=first, user=user)
    child = ledger.create_run("sft", "tiny", "/data/ds1", experiment_id=exp, parent_run_id=first,
                              change="max_steps 15 → 150", config={**EXPERIMENT_CONFIG, "max_steps": 150},
                              status="completed", started_at=200.0, finished_at=260.0, job_id="local-2",
                              backend="local", script_path="/runs/2/train.py", script_sha256="b" * 64,
                              output_dir=checkpoint, cost_usd=0.25, user=user)
    ledger.record_eval(checkpoint, "tiny_sentiment", "acc", 0.71, stderr=0.042, n_samples=120, experiment_id=exp,
                       run_id=child, command=f"python -m evals.runner --model {checkpoint} --task tiny_sentiment",
                       user=user)
    ledger.record_eval(checkpoint, "tiny_sentiment", "acc", 1.0, n_samples=5, experiment_id=exp, run_id=child,
                       details={"max_samples": 5}, user=user)
    failed = ledger.create_run("sft", "tiny", "/data/ds1", experiment_id=exp, parent_run_id=first,
                               config={**EXPERIMENT_CONFIG, "learning_rate": 0.1}, status="failed", error="loss is nan",
                               user=user)
    return {"experiment": exp, "dataset": data, "first": first, "child": child, "failed": failed}


@pytest.fixture
def build_experiment():
    """`build_experiment(ledger, checkpoint=..., user=...)`: record a small, complete experiment; returns its ids."""
    return _build_experiment
