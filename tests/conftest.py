"""Shared fixtures: a tiny model built once per test session, an isolated data directory."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
for _var in ("HF_TOKEN", "ANTHROPIC_API_KEY", "GITHUB_TOKEN", "HF_HUB_OFFLINE"):
    os.environ.pop(_var, None)

import pytest  # noqa: E402

from evals.tiny_model import build_tiny_model  # noqa: E402
from tools.ledger import Ledger  # noqa: E402
from tools.settings import Settings  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A freshly initialised (untrained) tiny Qwen2 model with a tokenizer trained on the fixture text."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def settings(data_dir):
    return Settings(data_dir=data_dir, compute_backend="local")


@pytest.fixture
def ledger(data_dir):
    return Ledger.in_dir(data_dir)
