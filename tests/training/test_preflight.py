"""preflight(): columns, model size, memory fit, push requirement, timeout and cost, against the fake Hub;
and the preflight_check tool on a run written by write_training_script."""

from __future__ import annotations

import json

import pytest

from evals.fixture_data import TRAIN_FILE
from tests.fakes.hub_api import GRANTED_TOKEN, PREFERENCE, SENTIMENT, SHAREGPT, hub_settings
from tests.fakes.hub_models_api import MODELS
from tools.backends.hardware import Flavor
from tools.backends.jobs import LocalJobBackend
from tools.context import ToolContext
from tools.errors import ToolError
from tools.settings import Settings
from tools.training import preflight as preflight_module
from tools.training.preflight import PreflightTool, column_problem, local_machine, preflight, read_dataset_columns
from tools.training.scripts import WriteTrainingScriptTool

QWEN = "Qwen/Qwen3-1.7B"


@pytest.fixture
def remote(models_hub, tmp_path):
    return hub_settings(models_hub, Settings(data_dir=tmp_path, compute_backend="hf-jobs"), token=GRANTED_TOKEN)


def config(**overrides) -> dict:
    base = dict(method="sft", model=QWEN, dataset=SENTIMENT, dataset_split="train", output_dir="outputs/run-1",
                max_steps=200, num_train_epochs=1.0, learning_rate=2e-5, per_device_train_batch_size=4,
                max_length=1024, lora=False, lora_r=16, lora_alpha=32, push_to_hub=True, hub_model_id="me/qwen-sft")
    return {**base, **overrides}


def check(settings, cfg=None, backend="hf-jobs", flavor="a100-large", timeout_minutes=120, **kw):
    return preflight(cfg or config(), backend=backend, flavor=flavor, timeout_minutes=timeout_minutes,
                     settings=settings, **kw)


def test_a_good_remote_run_passes_with_estimates(remote, models_hub):
    report = check(remote)
    assert report.ok, report.problems
    est = report.estimate
    assert est["n_params"] == MODELS[QWEN]["safetensors"]["total"]
    assert est["fits"] and 30 < est["memory_gb"] < 72 and est["suggested_flavor"] == "a100-large"
    assert est["cost_usd"] == pytest.approx(2.5 * 2, abs=0.01)  # hourly price x timeout
    assert 0 < est["est_minutes"] < 60 and est["expected_cost_usd"] < est["cost_usd"]
    assert est["price_source"] == "hub"
    model_call = next(r for r in models_hub.requests if r.path == f"/api/models/{QWEN}")
    assert model_call.query["expand"] == ["safetensors"]
    assert any(r.path == "/first-rows" for r in models_hub.requests)


def test_full_fine_tuning_that_does_not_fit_names_a_flavor_and_lora(remote):
    report = check(remote, flavor="a10g-small")
    assert not report.ok
    [problem] = [p for p in report.problems if "needs ~" in p]
    assert "Qwen/Qwen3-1.7B (2.03B params, full)" in problem and "24 GB per GPU" in problem
    assert "flavor='a100-large' (~$2.50/h)" in problem and "lora=True" in problem and "qlora=True" in problem
    assert report.estimate["fits"] is False and report.estimate["suggested_flavor"] == "a100-large"
    assert check(remote, config(lora=True, learning_rate=2e-4), flavor="a10g-small").ok


def test_remote_run_must_push_its_model(remote):
    report = check(remote, config(push_to_hub=False, hub_model_id=None))
    assert any("filesystem disappears" in p and "hub_model_id" in p for p in report.problems)
    no_token = check(remote.with_(hf_token=None))
    assert any("HF token" in p for p in no_token.problems)


def test_unknown_model_flavor_and_local_paths(remote, tmp_path):
    report = check(remote, config(model="Qwen/Qwen3-1.7b-typo"))
    assert any("unknown model id 'Qwen/Qwen3-1.7b-typo'" in p and "spelling" in p for p in report.problems)
    report = check(remote, flavor="a100-huge")
    [problem] = report.problems
    assert "unknown flavor 'a100-huge'" in problem and "a100-large (80 GB" in problem
    report = check(remote, config(dataset=str(TRAIN_FILE)))
    assert any("local path, which a remote job cannot see" in p for p in report.problems)
    no_count = check(remote, config(model="someone/pytorch-bin-only"))
    assert no_count.ok and any("no safetensors parameter count" in w for w in no_count.warnings)


def test_missing_flavor_defaults_like_submit_job(remote):
    report = check(remote, flavor=None)
    assert any("cpu-basic" in w for w in report.warnings)
    assert any("16 GB RAM" in p for p in report.problems)  # 1.7B full fine-tuning does not fit a CPU box


def test_timeout_must_cover_the_estimate(remote):
    report = check(remote, config(max_steps=20000), timeout_minutes=30)
    [problem] = report.problems
    assert "timeout 30 min is below the estimated" in problem and "set timeout_minutes >=" in problem
    assert "cut max_steps to ~" in problem
    est = check(remote).estimate["est_minutes"]
    tight = check(remote, timeout_minutes=est * 1.2)
    assert tight.ok and any("little margin" in w for w in tight.warnings)
    no_steps = check(remote, config(max_steps=-1))
    assert any("max_steps is not set" in w for w in no_steps.warnings)
    assert any("timeout_minutes must be positive" in p for p in check(remote, timeout_minutes=0).problems)


def test_dataset_columns_must_fit_the_method(remote):
    sharegpt = check(remote, config(dataset=SHAREGPT))
    [problem] = sharegpt.problems
    assert "SFT needs messages | prompt+completion | text" in problem and "ShareGPT" in problem
    dpo = check(remote, config(method="dpo"))
    assert any("DPO needs prompt+chosen+rejected" in p for p in dpo.problems)
    assert check(remote, config(method="dpo", dataset=PREFERENCE)).ok
    assert check(remote, config(method="grpo", lora=True)).ok
    missing_split = check(remote, config(dataset_split="validation"))
    assert any("no split 'validation'" in p for p in missing_split.problems)
    assert check(remote, dataset_columns=["text"]).ok
    unknown = check(remote, config(dataset="ml-intern-fixtures/does-not-exist"))
    assert unknown.ok and any("could not check the dataset's columns" in w for w in unknown.warnings)


def test_column_rules():
    assert column_problem("sft", ["messages"], {"messages": [{"role": "user", "content": "hi"}]}) is None
    assert "role, content" in column_problem("sft", ["messages"], {"messages": [{"from": "human", "value": "x"}]})
    assert column_problem("sft", ["text", "label"], None) is None
    assert "question/answer" in column_problem("grpo", ["question", "answer"], None)
    assert column_problem("dpo", ["chosen", "rejected"], None) is None


def test_local_dataset_and_model(tiny_model_dir, tmp_path, settings):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    n_params = sum(p.numel() for p in model.parameters())
    cfg = config(model=str(tiny_model_dir), dataset=str(TRAIN_FILE), push_to_hub=False, hub_model_id=None,
                 learning_rate=3e-3, max_length=256, per_device_train_batch_size=16, max_steps=40)
    report = check(settings, cfg, backend="local", flavor=None, timeout_minutes=10)
    assert report.ok, report.problems
    assert report.estimate["n_params"] == n_params  # counted from the safetensors header
    assert report.estimate["cost_usd"] == 0 and report.estimate["price_source"] == "local"
    assert report.estimate["est_minutes"] < 10

    messages = tmp_path / "chat.jsonl"
    messages.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                                 {"role": "assistant", "content": "hello"}]}) + "\n")
    report = check(settings, {**cfg, "dataset": str(messages)}, backend="local", flavor=None)
    assert any("no chat template" in p for p in report.problems)
    qa = tmp_path / "data"
    qa.mkdir()
    (qa / "train.jsonl").write_text(json.dumps({"question": "2+2?", "answer": "#### 4"}) + "\n")
    (qa / "test.jsonl").write_text(json.dumps({"text": "unused"}) + "\n")
    assert read_dataset_columns(str(qa), "train", settings)[0] == ["answer", "question"]
    report = check(settings, {**cfg, "dataset": str(qa)}, backend="local", flavor="a100-large")
    assert any("question/answer" in p for p in report.problems)
    assert any("flavor 'a100-large' is ignored" in w for w in report.warnings)
    missing = check(settings, {**cfg, "model": str(tmp_path / "nope")}, backend="local", flavor=None)
    assert any("has no config.json" in p for p in missing.problems)


def test_local_memory_is_this_machine(monkeypatch, settings):
    small = Flavor("local", "this machine (CPU, 2 cores)", 0, 0.0, 8.0, 0.0, 0.05, "local")
    monkeypatch.setattr(preflight_module, "local_machine", lambda: small)
    report = check(settings, config(push_to_hub=False), backend="local", flavor=None, n_params=2e9,
                   dataset_columns=["prompt", "completion"])
    [memory] = report.problems
    assert "this machine (CPU, 2 cores) has 8 GB RAM" in memory and "lora=True" in memory
    # locally a short timeout only ends the run early: a warning, not a refusal
    assert any("timeout 120 min is below the estimated" in w and "on local" in w for w in report.warnings)
    qlora = check(settings, config(qlora=True), backend="local", flavor=None, n_params=1e8,
                  dataset_columns=["text"])
    assert any("QLoRA needs a CUDA GPU" in p for p in qlora.problems)


def test_this_machine_is_described_without_torch():
    machine = local_machine()
    assert machine.name == "local" and machine.ram_gb > 0 and machine.price_per_hour == 0.0
    assert machine.is_gpu == (machine.gpu_memory_gb > 0)


def test_script_must_parse(remote, tmp_path):
    bad = tmp_path / "train.py"
    bad.write_text("def main(:\n    pass\n")
    report = check(remote, script_path=bad)
    assert any("does not parse (line 1" in p for p in report.problems)
    assert any("does not exist" in p for p in check(remote, script_path=tmp_path / "gone.py").problems)


def test_preflight_check_tool_on_a_written_run(settings, ledger, tiny_model_dir):
    events = []
    ctx = ToolContext(settings=settings, ledger=ledger, jobs=LocalJobBackend(settings.data_dir),
                      emit=lambda kind, payload: events.append((kind, payload)))
    run = WriteTrainingScriptTool(ctx)(model=str(tiny_model_dir), dataset=str(TRAIN_FILE), max_steps=20)
    result = PreflightTool(ctx)(run_id=run["run_id"], timeout_minutes=15)
    assert result["ok"], result["problems"]
    assert result["run_id"] == run["run_id"] and result["estimate"]["n_params"] > 0
    assert events[-1][0] == "preflight" and events[-1][1]["ok"] is True
    with pytest.raises(ToolError, match="no run 404"):
        PreflightTool(ctx)(run_id=404)
