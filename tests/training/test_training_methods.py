"""Real TRL training of the tiny model with each method (SFT, DPO, GRPO), full and LoRA, from
write_training_script through the local job backend; and smoke runs of good and broken runs.

The six runs start together (module fixture) so they share the CPU while the tests read their results.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from evals.fixture_data import TRAIN_FILE
from tools.backends.jobs import LocalJobBackend
from tools.context import ToolContext
from tools.ledger import Ledger
from tools.settings import Settings
from tools.training.jobs import parse_training_log
from tools.training.scripts import WriteTrainingScriptTool
from tools.training.smoke_run import SmokeRunTool

FIXTURES = Path(__file__).parents[1] / "fixtures"
DPO_DATA, GRPO_DATA = str(FIXTURES / "dpo_train.jsonl"), str(FIXTURES / "grpo_train.jsonl")
STEPS = 4
CUSTOM_REWARD = '''
def digit_count(completions, **kwargs):
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [float(sum(ch.isdigit() for ch in t)) for t in texts]
'''
RUNS = {
    "sft": dict(dataset=str(TRAIN_FILE), max_length=64, learning_rate=1e-3),
    "dpo": dict(dataset=DPO_DATA, max_length=64, learning_rate=1e-3),
    "grpo": dict(dataset=GRPO_DATA, num_generations=2, max_completion_length=8, beta=0.04, learning_rate=1e-3),
}
GRPO_REWARDS = {False: dict(reward_functions=["exact_answer", "length_reward"]),
                True: dict(reward_functions=["format_reward"], custom_reward_code=CUSTOM_REWARD)}
METRICS = {
    "sft": {"loss", "grad_norm", "learning_rate", "mean_token_accuracy"},
    "dpo": {"loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen",
            "logps/rejected"},
    "grpo": {"loss", "reward", "reward_std", "kl", "frac_reward_zero_std", "completions/mean_length"},
}
CASES = [(method, lora) for method in RUNS for lora in (False, True)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir, read_dirs):
    """Write the six runs with the tool, run them at once on the local backend, and collect the results."""
    data_dir = tmp_path_factory.mktemp("methods") / "data"
    ctx = ToolContext(settings=Settings(data_dir=data_dir, compute_backend="local", extra_read_dirs=read_dirs),
                      ledger=Ledger.in_dir(data_dir),
                      jobs=LocalJobBackend(data_dir))
    write = WriteTrainingScriptTool(ctx)
    started, jobs = time.monotonic(), {}
    for method, lora in CASES:
        extra = GRPO_REWARDS[lora] if method == "grpo" else {}
        run = write(model=str(tiny_model_dir), method=method, max_steps=STEPS, per_device_train_batch_size=4,
                    lora=lora, **RUNS[method], **extra)
        jobs[(method, lora)] = run, ctx.jobs.submit(run["script_path"], run_id=run["run_id"], timeout_s=480,
                                                   env={"OMP_NUM_THREADS": "1"})
    while not all(ctx.jobs.status(job).done for _, job in jobs.values()) and time.monotonic() - started < 500:
        time.sleep(0.5)
    results = {}
    for case, (run, job) in jobs.items():
        status = ctx.jobs.status(job)
        results[case] = run, status, ctx.jobs.logs(job)
        print(f"{case[0]}{'+lora' if case[1] else ''}: {status.stage} in "
              f"{(status.finished_at or time.time()) - status.started_at:.1f}s")
    print(f"six runs in parallel: {time.monotonic() - started:.1f}s")
    return results


@pytest.mark.parametrize("method, lora", CASES, ids=[f"{m}{'-lora' if lora else ''}" for m, lora in CASES])
def test_method_trains_saves_a_loadable_model_and_logs_its_metrics(trained, tiny_model_dir, method, lora):
    from transformers import AutoModelForCausalLM

    run, status, log = trained[(method, lora)]
    assert status.stage == "completed", log[-4000:]
    rows, done = parse_training_log(log)
    assert done == {"output_dir": run["output_dir"], "global_step": STEPS, "train_loss": done["train_loss"]}
    logged = [row for row in rows if "loss" in row]
    assert [row["step"] for row in logged] == [2, 4]
    rewards = GRPO_REWARDS[lora]["reward_functions"] + (["digit_count"] if lora else [])
    expected = METRICS[method] | ({f"rewards/{name}/mean" for name in rewards} if method == "grpo" else set())
    assert expected <= set(logged[-1]), sorted(set(logged[-1]))
    output = Path(run["output_dir"])
    assert not (output / "adapter_config.json").exists(), "LoRA adapters must be merged into the checkpoint"
    model = AutoModelForCausalLM.from_pretrained(output)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in base.parameters())
    assert (output / "tokenizer.json").is_file()


@pytest.fixture
def smoke(settings, ledger):
    ctx = ToolContext(settings=settings, ledger=ledger, jobs=LocalJobBackend(settings.data_dir))
    return WriteTrainingScriptTool(ctx), SmokeRunTool(ctx)


def test_smoke_run_passes_a_good_run_without_touching_its_output(smoke, tiny_model_dir):
    write, smoke_run = smoke
    run = write(model=str(tiny_model_dir), dataset=DPO_DATA, method="dpo", lora=True, learning_rate=1e-4,
                hub_model_id=None)
    result = smoke_run(run_id=run["run_id"], steps=2)
    assert result["ok"] is True, result["log_tail"]
    assert result["error"] is None and result["failing_line"] is None and "submit_job" in result["reason"]
    assert "TRAINING_DONE" in result["log_tail"] and result["seconds"] > 0
    assert not Path(run["output_dir"]).exists()


def test_smoke_run_reports_the_failing_line_for_a_wrong_dataset_format(smoke, tiny_model_dir):
    write, smoke_run = smoke
    run = write(model=str(tiny_model_dir), dataset=str(TRAIN_FILE), method="dpo")  # prompt/completion, no chosen
    result = smoke_run(run_id=run["run_id"])
    assert result["ok"] is False
    assert "chosen" in result["error"], result["log_tail"]
    assert result["failing_line"].startswith("train.py line ")
    assert result["reason"].startswith("A dataset row has no 'chosen' field: DPO needs the columns "
                                       "prompt+chosen+rejected or chosen+rejected")


def test_smoke_run_reports_a_missing_dataset_file(smoke, tiny_model_dir, tmp_path):
    write, smoke_run = smoke
    data = tmp_path / "grpo.jsonl"
    shutil.copy(GRPO_DATA, data)
    run = write(model=str(tiny_model_dir), dataset=str(data), method="grpo", reward_functions=["exact_answer"])
    data.unlink()
    result = smoke_run(run_id=run["run_id"])
    assert result["ok"] is False
    assert result["error"] == f"FileNotFoundError: the local dataset {data} does not exist"
    assert result["failing_line"].startswith("train.py line ") and "FileNotFoundError" in result["failing_line"]


def test_smoke_run_says_when_a_hub_dataset_is_out_of_reach(smoke, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    write, smoke_run = smoke
    run = write(model=str(tiny_model_dir), dataset="trl-lib/Capybara")
    result = smoke_run(run_id=run["run_id"])
    assert result["ok"] is False and "Couldn't reach 'trl-lib/Capybara'" in result["error"]
    assert "is a Hub id and could not be downloaded" in result["reason"]
