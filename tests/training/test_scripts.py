"""The training script renderer and the write_training_script tool."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from evals.fixture_data import TRAIN_FILE
from tools.backends.jobs import LocalJobBackend
from tools.context import ToolContext
from tools.errors import ToolError
from tools.settings import Settings
from tools.training import scripts
from tools.training.scripts import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_LEARNING_RATE,
    DEFAULT_LORA_LEARNING_RATE,
    PINNED_DEPENDENCIES,
    QLORA_DEPENDENCY,
    TRACKIO_DEPENDENCY,
    TrainingConfig,
    WriteTrainingScriptTool,
    render_training_script,
    script_config,
    script_names,
    sha256_text,
)

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
    assert namespace["CONFIG"] == script_config(config)
    assert "beta" not in namespace["CONFIG"] and "reward_functions" not in namespace["CONFIG"]


def test_config_change_changes_only_the_config_block():
    a = render_training_script(TrainingConfig(model="m", dataset="d", output_dir="o", learning_rate=1e-3))
    b = render_training_script(TrainingConfig(model="m", dataset="d", output_dir="o", learning_rate=2e-3))
    diff = [(x, y) for x, y in zip(a.splitlines(), b.splitlines(), strict=True) if x != y]
    assert diff == [("    'learning_rate': 0.001,", "    'learning_rate': 0.002,")]


def test_write_training_script_records_a_run(ctx, tiny_model_dir):
    tool = WriteTrainingScriptTool(ctx)
    result = tool(model=str(tiny_model_dir), dataset=DATA, max_steps=20, lora=True, change="first try")
    run = ctx.ledger.get_run(result["run_id"], user="local")
    script = (ctx.settings.data_dir / "runs" / str(result["run_id"]) / "train.py").resolve()
    assert result["script_path"] == str(script) == run["script_path"]
    assert run["status"] == "created" and run["method"] == "sft" and run["change"] == "first try"
    assert run["experiment_id"] == ctx.experiment_id
    assert run["script_sha256"] == sha256_text(script.read_text())
    assert result["output_dir"] == str(script.parent / "checkpoint") == run["output_dir"]
    config = json.loads(run["config_json"])
    assert config["max_steps"] == 20 and config["lora"] is True
    assert config["learning_rate"] == DEFAULT_LORA_LEARNING_RATE["sft"]
    assert config["dataset"].endswith("sentiment_train.jsonl") and config["dataset"].startswith("/")

    child = tool(model=str(tiny_model_dir), dataset=DATA, learning_rate=1e-3, parent_run_id=result["run_id"],
                 change="lr 3e-3 -> 1e-3")
    assert ctx.ledger.get_run(child["run_id"], user="local")["parent_run_id"] == result["run_id"]


def test_defaults_are_trls_for_a_real_model_not_the_tiny_test_models():
    """TRL 1.16's learning rate per method (LoRA at 10x), batch size, lengths and GRPO group size."""
    from trl import DPOConfig, GRPOConfig, ModelConfig, SFTConfig

    trl_configs = {"sft": SFTConfig, "dpo": DPOConfig, "grpo": GRPOConfig}
    for method, trl_config in trl_configs.items():
        fields = trl_config.__dataclass_fields__
        config = TrainingConfig(model="m", dataset="d", output_dir="o", method=method)
        assert config.learning_rate == DEFAULT_LEARNING_RATE[method] == fields["learning_rate"].default
        lora = TrainingConfig(model="m", dataset="d", output_dir="o", method=method, lora=True)
        assert lora.learning_rate == DEFAULT_LORA_LEARNING_RATE[method]
        assert lora.learning_rate == pytest.approx(10 * fields["learning_rate"].default)
        assert config.per_device_train_batch_size == DEFAULT_BATCH_SIZE == fields["per_device_train_batch_size"].default
        if method in ("dpo", "grpo"):
            assert config.beta == fields["beta"].default
        if method in ("sft", "dpo"):
            assert config.max_length == fields["max_length"].default
    grpo = GRPOConfig.__dataclass_fields__
    config = TrainingConfig(model="m", dataset="d", output_dir="o", method="grpo")
    assert config.num_generations == grpo["num_generations"].default
    assert config.max_completion_length == grpo["max_completion_length"].default
    assert (config.lora_r, config.lora_alpha) == (ModelConfig.lora_r, ModelConfig.lora_alpha)
    assert TrainingConfig(model="m", dataset="d", output_dir="o", qlora=True).learning_rate == 2e-4
    assert TrainingConfig(model="m", dataset="d", output_dir="o", learning_rate=3e-3).learning_rate == 3e-3


def test_write_training_script_defaults_the_learning_rate_per_method_and_adapter(ctx):
    tool = WriteTrainingScriptTool(ctx)
    dpo = tool(model="Qwen/Qwen3-0.6B", dataset=DATA, method="dpo")["config"]
    lora = tool(model="Qwen/Qwen3-0.6B", dataset=DATA, lora=True, per_device_train_batch_size=4)["config"]
    assert (dpo["learning_rate"], dpo["per_device_train_batch_size"]) == (1e-6, 8)
    assert (lora["learning_rate"], lora["per_device_train_batch_size"]) == (2e-4, 4)


@pytest.mark.parametrize("kwargs, message", [
    (dict(method="ppo"), "unknown method 'ppo'; supported methods: sft, dpo, grpo"),
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
    assert ctx.ledger.list_runs(user="local") == []


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


def config_of(script: str) -> dict:
    namespace: dict = {}
    exec(script.split("CONFIG = ", 1)[1].split("\n\n\n", 1)[0].join(["CONFIG = ", ""]), namespace)
    return namespace["CONFIG"]


def test_each_method_renders_its_own_trainer_and_settings():
    dpo = render_training_script(TrainingConfig(model="m", dataset="d", output_dir="o", method="dpo"))
    ast.parse(dpo)
    assert "from trl import DPOConfig, DPOTrainer" in dpo and "SFTTrainer" not in dpo and "REWARD_FUNCTIONS" not in dpo
    assert config_of(dpo)["beta"] == 0.1 and "num_generations" not in config_of(dpo)

    grpo = render_training_script(TrainingConfig(model="m", dataset="d", output_dir="o", method="grpo",
                                                 reward_functions=["exact_answer", "length_reward"]))
    ast.parse(grpo)
    assert "from trl import GRPOConfig, GRPOTrainer" in grpo
    assert "REWARD_FUNCTIONS = [exact_answer, length_reward]" in grpo and "def answers_match(" in grpo
    assert "def format_reward(" not in grpo
    cfg = config_of(grpo)
    assert cfg["beta"] == 0.0 and cfg["num_generations"] == 8 and "max_length" not in cfg
    for script in (dpo, grpo):  # one shared body: loading, saving, metrics, push
        assert script.count("def save_model(") == 1 and "METRIC " in script and "TRAINING_DONE " in script
        assert "ML_INTERN_SMOKE_MODEL" in script and "merge_and_unload" in script
    with pytest.raises(ValueError, match="at least one reward"):
        render_training_script(TrainingConfig(model="m", dataset="d", output_dir="o", method="grpo"))


def test_qlora_and_trackio_add_their_dependencies():
    config = TrainingConfig(model="m", dataset="d", output_dir="o", qlora=True, report_to="trackio")
    assert config.lora is True
    script = render_training_script(config)
    header = script.split("# ///\n", 2)[0]
    assert f'"{QLORA_DEPENDENCY}"' in header and f'"{TRACKIO_DEPENDENCY}"' in header
    assert 'bnb_4bit_quant_type="nf4"' in script and "QLoRA needs a CUDA GPU" in script
    assert config_of(script)["report_to"] == "trackio"
    plain = render_training_script(TrainingConfig(model="m", dataset="d", output_dir="o"))
    assert "bitsandbytes" not in plain.split("# ///\n", 2)[0] and "trackio" not in plain


CUSTOM = ("def has_digit(completions, **kwargs):\n"
          "    return [float(any(ch.isdigit() for ch in str(c))) for c in completions]\n")


def test_grpo_run_embeds_library_and_custom_rewards(ctx, tiny_model_dir):
    result = WriteTrainingScriptTool(ctx)(model=str(tiny_model_dir), dataset=DATA, method="grpo",
                                          reward_functions=["format_reward"], custom_reward_code=CUSTOM,
                                          per_device_train_batch_size=4, num_generations=4, beta=0.04,
                                          max_completion_length=32, learning_rate=1e-5)
    script = open(result["script_path"]).read()
    ast.parse(script)
    assert "REWARD_FUNCTIONS = [format_reward, has_digit]" in script and CUSTOM.strip() in script
    assert "custom_reward_code" not in config_of(script)
    config = result["config"]
    assert config["custom_reward_code"] == CUSTOM and config["reward_functions"] == ["format_reward"]
    assert config["num_generations"] == 4 and config["beta"] == 0.04 and config["max_completion_length"] == 32
    assert json.loads(ctx.ledger.get_run(result["run_id"], user="local")["config_json"])["method"] == "grpo"


@pytest.mark.parametrize("kwargs, message", [
    (dict(method="grpo"), "GRPO needs at least one reward function"),
    (dict(method="grpo", reward_functions=["accuracy"]), "unknown reward functions ['accuracy']"),
    (dict(method="grpo", reward_functions=["exact_answer"], num_generations=3), "must be a multiple of it"),
    (dict(method="grpo", reward_functions=["exact_answer"], num_generations=1), "at least 2"),
    (dict(method="grpo", reward_functions=["exact_answer"], max_length=256), "GRPO bounds completions"),
    (dict(method="grpo", custom_reward_code="import os\ndef r(completions, **kwargs):\n    return []\n"),
     "custom_reward_code was refused:\n(1) line 1: `import os` is not allowed"),
    (dict(method="grpo", custom_reward_code="def main(completions, **kwargs):\n    return [0.0] * len(completions)\n"),
     "`main` is already used by the training script"),
    (dict(method="sft", beta=0.1), "beta applies only to DPO/GRPO, not SFT"),
    (dict(method="dpo", reward_functions=["exact_answer"]), "reward_functions applies only to GRPO"),
    (dict(method="dpo", beta=0), "DPO needs beta > 0"),
    (dict(report_to="wandb"), "report_to must be one of none, trackio"),
    (dict(gradient_accumulation_steps=0), "positive integer"),
])
def test_method_inputs_are_validated(ctx, kwargs, message):
    with pytest.raises(ToolError) as error:
        WriteTrainingScriptTool(ctx)(model="Qwen/Qwen3-0.6B", dataset=DATA, **kwargs)
    assert message in str(error.value)
    if "reward function" in message:  # the error lists the library
        assert "exact_answer:" in str(error.value) and "length_reward:" in str(error.value)
    assert ctx.ledger.list_runs(user="local") == []


def test_qlora_is_refused_locally_without_cuda(ctx, monkeypatch, ledger, data_dir):
    monkeypatch.setattr(scripts, "cuda_available", lambda: False)
    with pytest.raises(ToolError, match="use lora=True here, or switch the compute backend to HF Jobs"):
        WriteTrainingScriptTool(ctx)(model="Qwen/Qwen3-0.6B", dataset=DATA, qlora=True)
    monkeypatch.setattr(scripts, "cuda_available", lambda: True)
    local = WriteTrainingScriptTool(ctx)(model="Qwen/Qwen3-0.6B", dataset=DATA, qlora=True)
    assert local["config"]["qlora"] is True and local["config"]["lora"] is True
    monkeypatch.setattr(scripts, "cuda_available", lambda: False)
    remote = ToolContext(settings=Settings(data_dir=data_dir, compute_backend="hf-jobs", hf_token="hf_x"),
                         ledger=ledger, jobs=LocalJobBackend(data_dir))
    run = WriteTrainingScriptTool(remote)(model="Qwen/Qwen3-8B", dataset="trl-lib/Capybara", qlora=True,
                                          hub_model_id="me/qlora")
    assert f'"{QLORA_DEPENDENCY}"' in open(run["script_path"]).read()


def test_script_names_cover_the_template():
    assert {"CONFIG", "REWARD_FUNCTIONS", "main", "build_trainer", "save_model", "torch", "PrintMetrics",
            "exact_answer", "GRPOTrainer"} <= script_names()


def test_hub_dataset_split_and_config_reach_the_script(ctx):
    run = WriteTrainingScriptTool(ctx)(model="Qwen/Qwen3-0.6B", dataset="openai/gsm8k", dataset_config="main",
                                       dataset_split="train")
    cfg = config_of(open(run["script_path"]).read())
    assert (cfg["dataset"], cfg["dataset_config"], cfg["dataset_split"]) == ("openai/gsm8k", "main", "train")
    assert "eval_split_override" not in run["config"]
    assert 'load_dataset(cfg["dataset"], cfg["dataset_config"], split=cfg["dataset_split"])' in \
        open(run["script_path"]).read()


def test_an_evaluation_split_is_refused_unless_overridden_and_the_override_is_recorded(ctx, tmp_path):
    tool = WriteTrainingScriptTool(ctx)
    with pytest.raises(ToolError, match="evaluation data of the benchmark 'gsm8k'.*allow_eval_split=True"):
        tool(model="Qwen/Qwen3-0.6B", dataset="openai/gsm8k", dataset_config="main", dataset_split="test")
    local = tmp_path / "mine"
    local.mkdir()
    (local / "test.jsonl").write_text('{"prompt": "2+2?", "completion": "4"}\n')
    with pytest.raises(ToolError, match="named as held-out test data"):
        tool(model="Qwen/Qwen3-0.6B", dataset=str(local), dataset_split="test")
    assert ctx.ledger.list_runs(user="local") == []
    run = tool(model="Qwen/Qwen3-0.6B", dataset="openai/gsm8k", dataset_config="main", dataset_split="test",
               allow_eval_split=True)
    recorded = json.loads(ctx.ledger.get_run(run["run_id"], user="local")["config_json"])["eval_split_override"]
    assert recorded["allow_eval_split"] is True and "gsm8k" in recorded["reason"]
    assert run["config"]["eval_split_override"] == recorded
    assert config_of(open(run["script_path"]).read())["dataset_split"] == "test"


def test_packing_is_an_sft_option_that_reaches_the_trainer(ctx, tiny_model_dir):
    result = WriteTrainingScriptTool(ctx)(model=str(tiny_model_dir), dataset=DATA, packing=True)
    assert result["config"]["packing"] is True
    script = Path(result["script_path"]).read_text()
    assert "'packing': True" in script and 'packing=cfg.get("packing", False)' in script
    with pytest.raises(ToolError, match="packing applies only to SFT"):
        WriteTrainingScriptTool(ctx)(model=str(tiny_model_dir), dataset=DATA, method="dpo", packing=True)


def test_the_tool_inputs_come_from_the_config_fields_with_their_defaults():
    inputs = WriteTrainingScriptTool.inputs
    assert list(inputs)[:3] == ["model", "dataset", "dataset_split"]
    assert list(inputs)[-2:] == ["parent_run_id", "change"]
    assert "nullable" not in inputs["model"] and "nullable" not in inputs["dataset"]
    assert all(spec.get("nullable") for name, spec in inputs.items() if name not in ("model", "dataset"))
    assert inputs["max_steps"] == {"type": "integer", "nullable": True,
                                   "description": f"Optimizer steps (default {scripts.DEFAULT_MAX_STEPS})."}
    assert f"(default {DEFAULT_BATCH_SIZE})" in inputs["per_device_train_batch_size"]["description"]
    assert (inputs["learning_rate"]["type"], inputs["lora"]["type"], inputs["reward_functions"]["type"]) == \
        ("number", "boolean", "array")
    assert f"sft {DEFAULT_LEARNING_RATE['sft']:g}" in inputs["learning_rate"]["description"]
    assert f"sft {DEFAULT_LORA_LEARNING_RATE['sft']:g}" in inputs["learning_rate"]["description"]
    assert all(f"{name} (" in inputs["reward_functions"]["description"] for name in scripts.LIBRARY)
    assert inputs["allow_eval_split"]["type"] == "boolean"
    assert not inputs["lora"]["description"].endswith("(default False).")
