"""AgentConfig: what the environment sets, what overrides win, the demo preset, and the secrets it holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import BACKENDS, DEMO_PLAN, AgentConfig
from agent.models import DEFAULT_MODEL_ID
from tools.settings import Settings

ENV = ("ML_INTERN_LLM_BACKEND", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "ML_INTERN_HF_PROVIDER",
       "ML_INTERN_OPENAI_BASE_URL", "OPENAI_API_KEY", "ML_INTERN_MODEL", "ML_INTERN_SCRIPTED_PLAN",
       "ML_INTERN_MAX_STEPS", "ML_INTERN_MAX_OBSERVATION_CHARS", "ML_INTERN_MAX_EVENT_CHARS", "HF_TOKEN",
       "GITHUB_TOKEN", "ML_INTERN_COMPUTE")


@pytest.fixture
def env(monkeypatch, tmp_path):
    """An environment with none of the variables AgentConfig reads, and the data directory in tmp_path."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ML_INTERN_DATA_DIR", str(tmp_path / "data"))
    return monkeypatch


def test_an_empty_environment_gives_the_defaults(env, tmp_path):
    config = AgentConfig.from_env()
    assert config.settings.data_dir == tmp_path / "data"
    assert (config.backend, config.model_id, config.max_steps) == ("anthropic", DEFAULT_MODEL_ID, 300)
    assert config.anthropic_api_key is None and config.openai_api_key is None and config.scripted_plan is None
    assert config.auto_approve is False and config.hf_token is None and config.secrets == []
    assert config.settings.resolved_compute_backend == "local"


def test_environment_variables_set_the_config(env):
    values = {"ML_INTERN_LLM_BACKEND": "openai-compatible", "ML_INTERN_MODEL": "qwen3:8b",
              "ML_INTERN_OPENAI_BASE_URL": "http://127.0.0.1:11434/v1", "OPENAI_API_KEY": "sk-local-1",
              "ANTHROPIC_API_KEY": "sk-ant-2", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9/anthropic",
              "ML_INTERN_HF_PROVIDER": "together", "ML_INTERN_SCRIPTED_PLAN": "plans/p.yaml",
              "ML_INTERN_MAX_STEPS": "40", "HF_TOKEN": "hf_env_3", "GITHUB_TOKEN": "ghp_env_4"}
    for name, value in values.items():
        env.setenv(name, value)
    config = AgentConfig.from_env()
    assert (config.backend, config.model_id, config.max_steps) == ("openai-compatible", "qwen3:8b", 40)
    assert (config.openai_base_url, config.openai_api_key) == ("http://127.0.0.1:11434/v1", "sk-local-1")
    assert (config.anthropic_api_key, config.anthropic_base_url) == ("sk-ant-2", "http://127.0.0.1:9/anthropic")
    assert config.hf_provider == "together" and config.scripted_plan == Path("plans/p.yaml")
    assert config.hf_token == "hf_env_3" and config.settings.resolved_compute_backend == "hf-jobs"
    assert sorted(config.secrets) == sorted(["sk-ant-2", "sk-local-1", "hf_env_3", "ghp_env_4"])
    assert not any(secret in repr(config) for secret in ("sk-ant-2", "sk-local-1"))


def test_empty_variables_count_as_unset_and_overrides_win(env):
    env.setenv("ANTHROPIC_API_KEY", "")
    env.setenv("ML_INTERN_MODEL", "")
    env.setenv("ML_INTERN_MAX_STEPS", "40")
    config = AgentConfig.from_env(max_steps=5, backend="scripted")
    assert config.anthropic_api_key is None and config.model_id == DEFAULT_MODEL_ID
    assert (config.max_steps, config.backend) == (5, "scripted")


def test_a_bad_backend_is_refused_naming_the_choices(env):
    env.setenv("ML_INTERN_LLM_BACKEND", "gpt-in-a-box")
    with pytest.raises(ValueError, match="unknown LLM backend 'gpt-in-a-box': choose one of anthropic, "
                                         "hf-inference, openai-compatible, scripted"):
        AgentConfig.from_env()
    assert BACKENDS == ("anthropic", "hf-inference", "openai-compatible", "scripted")
    with pytest.raises(ValueError, match="unknown LLM backend"):
        AgentConfig().with_(backend="claude")


def test_the_demo_is_scripted_auto_approved_and_local(tmp_path):
    hf = Settings(data_dir=tmp_path, hf_token="hf_x", compute_backend="hf-jobs")
    demo = AgentConfig.demo(hf)
    assert (demo.backend, demo.scripted_plan, demo.auto_approve) == ("scripted", DEMO_PLAN, True)
    assert DEMO_PLAN.is_file() and demo.settings.resolved_compute_backend == "local"
    assert demo.settings.data_dir == tmp_path and demo.hf_token == "hf_x"
    other = AgentConfig.demo(hf, plan=tmp_path / "plan.yaml")
    assert other.scripted_plan == tmp_path / "plan.yaml"
