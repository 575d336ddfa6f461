"""diagnose() on recorded and synthesized training logs, and the diagnose_run tool.

Fixtures in tests/fixtures/logs/:
- recorded from real runs of this project's SFT template (tools/training/scripts.py) on the tiny model:
  sft_healthy, sft_flat_loss (lr 1e-7), sft_loss_exploded (lr 1e3), sft_nan_grad (lr 1e30),
  sft_no_chat_template (messages data, tokenizer without template), sft_missing_text_column
  (question/answer data), local_timeout (LocalJobBackend killing the job at its timeout);
- recorded from TRL GRPO runs on the tiny model: grpo_healthy (graded reward), grpo_zero_reward
  (exact-match reward that never fires), grpo_constant_reward (every completion scores 1);
- synthesized in the shape of real logs: cuda_oom (torch's OOM message), sft_divergence,
  grpo_reward_collapse, grpo_kl_blowup, grpo_missing_prompt, preempted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.backends.jobs import JobBackend, JobStatus
from tools.context import ToolContext
from tools.errors import ToolError
from tools.training.diagnosis import MAX_LOG_LINES, DiagnoseRunTool, diagnose

LOGS = Path(__file__).parents[1] / "fixtures" / "logs"


def log(name: str) -> str:
    return (LOGS / f"{name}.txt").read_text()


@pytest.mark.parametrize("name, status, failure", [
    ("cuda_oom", "failed", "out_of_memory"),
    ("sft_no_chat_template", "failed", "chat_template"),
    ("sft_missing_text_column", "failed", "dataset_format"),
    ("grpo_missing_prompt", "failed", "dataset_format"),
    ("local_timeout", "timeout", "timeout"),
    ("preempted", "failed", "preempted"),
    ("sft_nan_grad", "completed", "nan_loss"),
    ("sft_loss_exploded", "completed", "divergence"),
    ("sft_divergence", "running", "divergence"),
    ("sft_flat_loss", "completed", "no_learning"),
    ("grpo_zero_reward", "completed", "zero_reward"),
    ("grpo_constant_reward", "completed", "no_reward_signal"),
    ("grpo_reward_collapse", "completed", "reward_collapse"),
    ("grpo_kl_blowup", "running", "kl_blowup"),
    ("sft_healthy", "completed", "healthy"),
    ("grpo_healthy", "completed", "healthy"),
])
def test_each_fixture_gets_its_failure_class(name, status, failure):
    text = log(name)
    result = diagnose(text, {}, {"status": status})
    assert result.failure == failure, result
    assert result.evidence and result.next_step
    assert result.to_dict()["failure"] == failure


def test_log_failures_quote_the_log_lines():
    for name, needle in [("cuda_oom", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 4.64 GiB"),
                         ("sft_no_chat_template", "tokenizer.chat_template is not set"),
                         ("sft_missing_text_column", "KeyError: 'text'"),
                         ("local_timeout", "exceeded its timeout of 40s"),
                         ("preempted", "Received Signals.SIGTERM death signal")]:
        text = log(name)
        evidence = diagnose(text, {}, {"status": "failed"}).evidence
        assert any(needle in line for line in evidence), (name, evidence)
        assert all(line in text for line in evidence)  # quoted, not paraphrased


def test_curve_failures_cite_the_numbers():
    assert diagnose(log("sft_divergence"), {}, None).evidence[0] == (
        "loss min 1.22 at step 70, mean of the last 4 logs (steps 130-160) is 2.945 (+141%)")
    assert "grad_norm max 65.7 at step 160" in diagnose(log("sft_divergence"), {}, None).evidence
    assert diagnose(log("grpo_reward_collapse"), {}, None).evidence[0] == (
        "reward peaked at 0.52 (step 60), mean of the last 3 logs (100-120) is 0.01333")
    zero = diagnose(log("grpo_zero_reward"), {}, None)
    assert zero.evidence[:2] == ["reward mean is 0 at all 8 logged steps (2-16)",
                                 "reward_std is 0 too: no learning signal"]
    assert "max_completion_length" in zero.evidence[2] and "format never matches" in zero.next_step
    kl = diagnose(log("grpo_kl_blowup"), {}, None)
    assert kl.evidence[0] == "kl 0.002 at step 10 -> 4.8 at step 110 (threshold 1.0)"
    assert "beta" in kl.next_step
    flat = diagnose(log("sft_flat_loss"), {}, {"status": "completed"})
    assert "0.08% change" in flat.evidence[0] and "learning_rate max 9.333e-08" in flat.evidence
    assert "raise learning_rate" in flat.next_step
    nan = diagnose(log("sft_nan_grad"), {}, None)
    assert nan.evidence[0] == "grad_norm = nan at step 5" and '"grad_norm": NaN' in nan.evidence[1]
    assert "lower learning_rate" in nan.next_step


def test_series_from_the_ledger_without_a_log():
    falling = {"loss": [(s, 3.0 - s / 100) for s in range(10, 210, 10)]}
    assert diagnose("", falling, {"status": "running"}).failure == "healthy"
    flat = {"loss": [(s, 2.0 + (0.001 if s % 20 else -0.001)) for s in range(10, 210, 10)]}
    assert diagnose("", flat, {"status": "running"}).failure == "no_learning"
    rising = {"loss": [(s, v) for s, v in zip(range(10, 130, 10), [2, 1.6, 1.3, 1.1, 1.0, 1.05, 1.2, 1.4,
                                                                    1.7, 2.0, 2.4, 2.8], strict=True)]}
    assert diagnose("", rising, {"status": "running"}).failure == "divergence"
    nan = {"loss": [(10, 2.0), (20, float("nan"))]}
    assert diagnose("", nan, None).evidence == ["loss = nan at step 20"]


def test_noise_at_a_small_loss_is_not_divergence():
    noisy = {"loss": [(s, v) for s, v in zip(range(10, 130, 10), [2.0, 0.9, 0.4, 0.12, 0.05, 0.03, 0.02, 0.03,
                                                                   0.04, 0.04, 0.05, 0.04], strict=True)]}
    assert diagnose("", noisy, {"status": "completed"}).failure == "healthy"


def test_grpo_loss_is_not_judged_as_a_learning_curve():
    series = {"loss": [(s, 0.0) for s in range(1, 21)], "reward": [(s, 0.2 + s / 50) for s in range(1, 21)],
              "reward_std": [(s, 0.3) for s in range(1, 21)]}
    assert diagnose("", series, {"status": "running"}).failure == "healthy"


def test_oom_next_step_uses_the_run_config():
    run = {"status": "failed", "config_json": json.dumps({"per_device_train_batch_size": 8, "max_length": 2048,
                                                          "lora": False})}
    step = diagnose(log("cuda_oom"), {}, run).next_step
    assert "halve per_device_train_batch_size (8 -> 4)" in step
    assert "gradient_accumulation_steps (1 -> 2)" in step
    assert "max_length (2048 -> 1024)" in step and "LoRA" in step
    lora = {"status": "failed", "config_json": json.dumps({"per_device_train_batch_size": 1, "lora": True})}
    step = diagnose(log("cuda_oom"), {}, lora).next_step
    assert "halve" not in step and "QLoRA" in step


def test_timeout_from_the_run_status_and_progress():
    run = {"status": "timeout", "error": None, "config_json": json.dumps({"max_steps": 1000})}
    series = {"loss": [(s, 2.0 - s / 1000) for s in range(50, 300, 50)]}
    result = diagnose("", series, run)
    assert result.failure == "timeout"
    assert "It reached step 250 of 1000 (25%)" in result.next_step and "5.2x" in result.next_step
    assert diagnose("INFO Job timed out after 2h", {}, {"status": "failed"}).failure == "timeout"


def test_hub_access_and_missing_package():
    gated = ("huggingface_hub.errors.GatedRepoError: 401 Client Error. (Request ID: Root=1-6)\n"
             "Cannot access gated repo for url https://huggingface.co/meta-llama/Llama-3.1-8B/resolve/main/config.json.")
    assert diagnose(gated, {}, {"status": "failed"}).failure == "hub_access"
    missing = "Traceback (most recent call last):\nModuleNotFoundError: No module named 'bitsandbytes'"
    result = diagnose(missing, {}, {"status": "failed"})
    assert result.failure == "missing_package"
    assert result.evidence == ["ModuleNotFoundError: No module named 'bitsandbytes'"]


def test_sigterm_after_a_real_error_is_not_preemption():
    text = "Traceback (most recent call last):\nValueError: bad config\nReceived SIGTERM, exiting"
    assert diagnose(text, {}, {"status": "failed"}).failure == "unknown"


def test_unknown_failure_and_nothing_yet():
    text = "Traceback (most recent call last):\n  File 'x.py'\nRuntimeError: something odd happened"
    result = diagnose(text, {}, {"status": "failed", "error": "RuntimeError: something odd happened"})
    assert result.failure == "unknown"
    assert "RuntimeError: something odd happened" in result.evidence and "job_logs" in result.next_step
    waiting = diagnose("", {}, {"status": "running"})
    assert waiting.failure == "unknown" and waiting.evidence == ["no log lines and no metrics yet"]
    assert diagnose("", {"loss": [(5, 2.0), (10, 1.8)]}, {"status": "canceled"}).failure == "canceled"


def test_log_reading_is_bounded():
    noise = "\n".join(f"step {i} ok" for i in range(MAX_LOG_LINES + 50))
    early_oom = "torch.OutOfMemoryError: CUDA out of memory.\n" + noise
    assert diagnose(early_oom, {}, {"status": "failed"}).failure != "out_of_memory"
    huge_line = "x" * 5_000_000 + "\nCUDA out of memory"
    result = diagnose(huge_line, {}, {"status": "failed"})
    assert result.failure == "out_of_memory" and all(len(e) <= 300 for e in result.evidence)


class StubJobs(JobBackend):
    """A backend whose job logs are fixture text; records the tail it was asked for."""

    name = "local"

    def __init__(self, logs: dict[str, str]):
        self._logs, self.tails = logs, []

    def submit(self, script_path, **kw):
        raise NotImplementedError

    def status(self, job_id):
        return JobStatus(job_id, "failed")

    def logs(self, job_id, tail=None):
        self.tails.append(tail)
        if job_id not in self._logs:
            raise ToolError(f"unknown job id {job_id!r}")
        return self._logs[job_id]

    def cancel(self, job_id):
        pass


def test_diagnose_run_tool_reads_ledger_metrics_and_log(settings, ledger):
    settings = settings.with_(hf_token="hf_canary_secret_42")
    jobs = StubJobs({"local-000000000001": log("cuda_oom") + "\nHF_TOKEN=hf_canary_secret_42",
                     "local-000000000002": ""})
    events = []
    ctx = ToolContext(settings=settings, ledger=ledger, jobs=jobs, emit=lambda k, p: events.append((k, p)))
    tool = DiagnoseRunTool(ctx)
    oom = ledger.create_run("sft", "m", "d", config={"per_device_train_batch_size": 4}, job_id="local-000000000001",
                            status="failed", user="local")
    result = tool(run_id=oom)
    assert result["failure"] == "out_of_memory" and result["run_id"] == oom
    assert result["job_id"] == "local-000000000001" and "(4 -> 2)" in result["next_step"]
    assert jobs.tails == [None]  # the whole log: its metrics are recorded; the rules read its last MAX_LOG_LINES
    assert "hf_canary_secret_42" not in json.dumps(result)
    assert events[-1][0] == "diagnosis" and events[-1][1]["failure"] == "out_of_memory"

    flat = ledger.create_run("sft", "m", "d", job_id="local-000000000002", status="completed", user="local")
    ledger.record_metrics(flat, [(s, "loss", 2.5) for s in range(10, 110, 10)])
    assert tool(run_id=flat)["failure"] == "no_learning"

    lost = ledger.create_run("sft", "m", "d", job_id="local-00000000dead", status="failed", error="boom", user="local")
    assert tool(run_id=lost)["failure"] == "unknown"

    never_submitted = ledger.create_run("sft", "m", "d", user="local")
    assert tool(run_id=never_submitted)["evidence"] == ["no log lines and no metrics yet"]
    with pytest.raises(ToolError, match="no run 999"):
        tool(run_id=999)


def test_a_row_with_a_missing_field_is_a_dataset_format_failure():
    log = ("Traceback (most recent call last):\n  File \"train.py\", line 80, in <module>\n"
           "AttributeError: 'NoneType' object has no attribute 'endswith'\n")
    found = diagnose(log, {}, None)
    assert found.failure == "dataset_format" and "null field" in found.next_step
