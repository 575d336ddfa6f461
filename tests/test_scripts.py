"""The training script renderer and the write_training_script tool."""

from __future__ import annotations

import ast
import json

import pytest

from evals.fixture_data import TRAIN_FILE
from tools.context import ToolContext
from tools.errors import ToolError
from tools.job_backends import LocalJobBackend
from tools.scripts import (
    DEFAULT_LEARNING_RATE,
    PINNED_DEPENDENCIES,
    TrainingConfig,
    WriteTrainingScriptTool,
    render_training_script,
    sha256_text,
)
from tools.settings import Settings

DATA = str(TRAIN_FILE)


@pytest.fixture
def ctx(settings, ledger):
    events = []
    return ToolContext(settings=settings, ledger=ledger, jobs=LocalJobBackend(settings.data_dir),
                       emit=lambda kind, payload: events.append((kind, payload)))


def test_rendered_script_is_a_pinned_uv_script_that_parses():
    config = TrainingConfig(model="Qwen/Qwen3-0.6B", dataset="trl-lib/Capybara", output_dir="out", lora=True,
                            push_to_hub=True, hub_model_id="me/model")
    script = render_training_script(config)
    ast.parse(script)
    assert script.startswith("# /// script\n")
    header = script.split("# ///\n", 2)[0] + "# ///"
    for dep in PINNED_DEPENDENCIES:
        assert f'"{dep}"' in header
    assert "SFTTrainer" in script and "LoraConfig" in script and "merge_and_unload" in script
    assert "METRIC " in script and "TRAINING_DONE " in script
    assert 'os.environ.get("HF_TOKEN")' in script
    namespace: dict = {}
    exec(script.split("CONFIG = ", 1)[1].split("\n\n\n", 1)[0].join(["CONFIG = ", ""]), namespace)
    assert namespace["CONFIG"] == config.to_dict()


def test_config_change_changes_only_the_config_block():
    a = render_training_script(TrainingConfig(model="m", dataset="d", output_dir="o", learning_rate=1e-3))
    b = render_training_script(TrainingConfig(model="m", dataset="d", output_dir="o", learning_rate=2e-3))
    diff = [(x, y) for x, y in zip(a.splitlines(), b.splitlines(), strict=True) if x != y]
    assert diff == [("    'learning_rate': 0.001,", "    'learning_rate': 0.002,")]


def test_write_training_script_records_a_run(ctx, tiny_model_dir):
    tool = WriteTrainingScriptTool(ctx)
    result = tool(model=str(tiny_model_dir), dataset=DATA, max_steps=20, lora=True, change="first try")
    run = ctx.ledger.get_run(result["run_id"])
    script = (ctx.settings.data_dir / "runs" / str(result["run_id"]) / "train.py").resolve()
    assert result["script_path"] == str(script) == run["script_path"]
    assert run["status"] == "created" and run["method"] == "sft" and run["change"] == "first try"
    assert run["experiment_id"] == ctx.experiment_id
    assert run["script_sha256"] == sha256_text(script.read_text())
    assert result["output_dir"] == str(script.parent / "checkpoint") == run["output_dir"]
    config = json.loads(run["config_json"])
    assert config["max_steps"] == 20 and config["lora"] is True and config["learning_rate"] == DEFAULT_LEARNING_RATE
    assert config["dataset"].endswith("sentiment_train.jsonl") and config["dataset"].startswith("/")

    child = tool(model=str(tiny_model_dir), dataset=DATA, learning_rate=1e-3, parent_run_id=result["run_id"],
                 change="lr 3e-3 -> 1e-3")
    assert ctx.ledger.get_run(child["run_id"])["parent_run_id"] == result["run_id"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(method="dpo"), "supported methods: sft"),
    (dict(dataset="data/missing.jsonl"), "does not exist"),
    (dict(learning_rate=5.0), "outside the sane range"),
    (dict(max_steps=0), "positive integer"),
    (dict(parent_run_id=999), "not a run"),
    (dict(model="not a model id!"), "neither an existing local path nor a Hub id"),
])
def test_write_training_script_rejects_bad_input(ctx, kwargs, message):
    args = {"model": "Qwen/Qwen3-0.6B", "dataset": DATA, **kwargs}
    with pytest.raises(ToolError, match=message):
        WriteTrainingScriptTool(ctx)(**args)
    assert ctx.ledger.list_runs() == []


def test_hf_jobs_runs_need_hub_sources_and_warn_without_a_hub_repo(ledger, data_dir):
    settings = Settings(data_dir=data_dir, compute_backend="hf-jobs", hf_token="hf_x")
    ctx = ToolContext(settings=settings, ledger=ledger, jobs=LocalJobBackend(data_dir))
    tool = WriteTrainingScriptTool(ctx)
    with pytest.raises(ToolError, match="push it to the Hub"):
        tool(model="Qwen/Qwen3-0.6B", dataset=DATA)
    result = tool(model="Qwen/Qwen3-0.6B", dataset="trl-lib/Capybara")
    assert result["output_dir"] == f"outputs/run-{result['run_id']}"
    assert "hub_model_id" in result["warning"]
    pushed = tool(model="Qwen/Qwen3-0.6B", dataset="trl-lib/Capybara", hub_model_id="me/sft-1")
    assert pushed["config"]["push_to_hub"] is True and "warning" not in pushed
    assert "hf_x" not in open(pushed["script_path"]).read()
