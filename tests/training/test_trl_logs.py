"""Reading TRL/transformers Trainer logs (no METRIC lines) into metric series, job_status and diagnose_run.

Fixtures tests/fixtures/logs/trl_*.txt are written for this reader in the exact print format of
transformers 5.24 / TRL 1.16, checked against real tiny-model SFT, DPO and GRPO runs: each log goes
through tqdm (`ProgressCallback.on_log`: floats as `f"{v:.4g}"` strings, bars redrawn behind carriage
returns, the bar redrawn at the current step right after each log line), with uv's, the Hub's and the
dataset's progress output and trackio's set-up lines around it. trl_sft_diverging is the older
transformers format (raw floats, grad_norm a tensor repr) as a log collector that drops carriage
returns shows it. The curves: SFT healthy (loss 2.2 -> 0.94, eval every 100 steps), SFT NaN (loss NaN
from step 80), SFT diverging, DPO healthy (margins 0 -> 2.5) and flat (margins ~0.004, loss ln 2),
GRPO healthy (reward 0.2 -> 0.6), collapse (0.55 -> 0.02, frac_reward_zero_std 0.97), zero-std groups,
KL blow-up, an OOM traceback after three logs, and a run whose output stops at step 42 (stalled).
"""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import pytest

from tools.backends.jobs import JobBackend, JobStatus
from tools.context import ToolContext
from tools.errors import ToolError
from tools.training.diagnosis import DiagnoseRunTool
from tools.training.jobs import JobLogsTool, JobStatusTool
from tools.training.trl_logs import bar_label, parse_trainer_dict, read_training_log

LOGS = Path(__file__).parents[1] / "fixtures" / "logs"
JOB_NUMBERS = itertools.count(1)


def log(name: str) -> str:
    return (LOGS / f"{name}.txt").read_bytes().decode()  # bytes: keep the carriage returns tqdm wrote


def training_steps(parsed) -> list[int]:
    return [row["step"] for row in parsed.rows if "loss" in row or "reward" in row]


def test_the_step_is_the_bar_drawn_right_after_each_log_line():
    parsed = read_training_log(log("trl_sft_healthy"))
    assert parsed.source == "trainer" and parsed.max_steps == 300 and parsed.bar_step == 300
    assert training_steps(parsed) == list(range(10, 301, 10))  # the bars before each log line are stale
    evals = [row for row in parsed.rows if "eval_loss" in row]
    assert [row["step"] for row in evals] == [100, 200, 300] and evals[0]["eval_loss"] == pytest.approx(1.228, abs=1e-3)
    assert parsed.summary == {"step": 300, "train_runtime": 431.2, "train_samples_per_second": 5.566,
                              "train_steps_per_second": 0.696, "train_loss": 1.274, "epoch": pytest.approx(1.068, 1e-3)}
    first = parsed.rows[0]
    assert set(first) == {"step", "loss", "grad_norm", "learning_rate", "entropy", "mean_token_accuracy", "num_tokens",
                          "epoch"}
    assert all(isinstance(v, float) for k, v in first.items() if k != "step")
    assert parsed.seconds_per_step == pytest.approx(1.42)


def test_logs_without_carriage_returns_and_with_raw_floats_and_tensors():
    stripped = read_training_log(log("trl_sft_diverging"))  # bars and the dict run together on one line
    assert training_steps(stripped) == list(range(10, 161, 10)) and stripped.max_steps == 200
    assert stripped.rows[0]["grad_norm"] == 0.9 and stripped.rows[0]["loss"] == pytest.approx(2.31, abs=0.01)
    split = read_training_log(log("trl_grpo_collapse").replace("\r", "\n"))  # a collector that split them
    assert [r["step"] for r in split.rows] == [r["step"] for r in read_training_log(log("trl_grpo_collapse")).rows]


@pytest.mark.parametrize("line, row", [
    ("{'loss': '1.23', 'grad_norm': '0.8', 'learning_rate': '2e-05', 'epoch': '0.5'}",
     {"loss": 1.23, "grad_norm": 0.8, "learning_rate": 2e-05, "epoch": 0.5}),
    ("{'loss': nan, 'grad_norm': inf, 'learning_rate': 1e-05, 'epoch': 0.25}", None),  # checked below: NaN != NaN
    ("{'loss': tensor(0.5000, device='cuda:0', grad_fn=<MeanBackward0>), 'grad_norm': np.float64(1.5), 'epoch': 1}",
     {"loss": 0.5, "grad_norm": 1.5, "epoch": 1.0}),
    ("{'loss': '0', 'reward': None, 'frac_reward_zero_std': '1', 'completions/clipped_ratio': '0.25', 'epoch': '0.1'}",
     {"loss": 0.0, "frac_reward_zero_std": 1.0, "completions/clipped_ratio": 0.25, "epoch": 0.1}),
    ("{'eval_loss': '1.1', 'eval_runtime': '3.2', 'epoch': '1'}",
     {"eval_loss": 1.1, "eval_runtime": 3.2, "epoch": 1.0}),
    ("│ {'role': 'user', 'content': 'What is 2+2?'} │", None),  # a completions table cell
    ("{'role': 'assistant', 'content': 'The answer is 4'}", None),  # some other dict a script printed
    ("{'loss': [[[[[[[[[[[[1]]]]]]]]]]]], 'epoch': 1}", {"epoch": 1.0}),
    ("{'loss': '" + "9" * 60_000 + "', 'epoch': 1}", None),  # bounded
    ("{'loss': 1, __import__('os'): 2}", None),
])
def test_trainer_dict_lines(line, row):
    parsed = parse_trainer_dict(line)
    if "nan" in line:
        assert str(parsed["loss"]) == "nan" and parsed["grad_norm"] == float("inf") and parsed["epoch"] == 0.25
    else:
        assert parsed == row


def test_without_bars_the_step_counts_logging_steps():
    plain = "".join(f"{{'loss': '{2 - i / 10}', 'learning_rate': '1e-05', 'epoch': '{i / 10}'}}\n" for i in range(1, 4))
    assert training_steps(read_training_log(plain, logging_steps=25)) == [25, 50, 75]
    assert training_steps(read_training_log(plain)) == [1, 2, 3]  # no bar, no spacing: numbered
    explicit = "{'loss': 1.5, 'step': 40, 'epoch': 0.1}\n{'loss': 1.4, 'step': 80, 'epoch': 0.2}\n"
    assert training_steps(read_training_log(explicit, logging_steps=5)) == [40, 80]


def test_the_step_after_the_last_bar_continues_the_spacing():
    parsed = read_training_log(log("trl_sft_nan"))  # the last log line has no bar after it
    assert training_steps(parsed)[-3:] == [110, 120, 130] and parsed.bar_step == 126
    assert all(name != "loss" or step < 80 for step, name, _ in parsed.points())  # NaN is not stored


def test_metric_lines_win_over_the_trainers_echo_of_them():
    parsed = read_training_log((LOGS / "sft_healthy.txt").read_text())
    assert parsed.source == "metric" and training_steps(parsed) == list(range(5, 61, 5)) and parsed.max_steps == 60
    after_a_bar = read_training_log('\r 25%|██▌       | 3/12 [00:00<00:00,  9.87it/s]METRIC {"step": 3, "loss": 1.5}\n')
    assert after_a_bar.rows == [{"step": 3, "loss": 1.5}]  # a tqdm bar on stderr left without its newline


class FixtureJobs(JobBackend):
    """A backend whose jobs print fixture logs; `silent_s` is how long ago a job last printed."""

    name = "local"

    def __init__(self, logs: dict[str, str], stage: str = "running", silent_s: float | None = None):
        self._logs, self.stage, self.silent_s = logs, stage, silent_s

    def submit(self, script_path, **kw):
        raise NotImplementedError

    def status(self, job_id):
        return JobStatus(job_id, self.stage, None, time.time() - 3600, time.time() if self.stage != "running" else None)

    def logs(self, job_id, tail=None):
        if job_id not in self._logs:
            raise ToolError(f"unknown job id {job_id!r}")
        lines = self._logs[job_id].splitlines()
        return "\n".join(lines[-tail:] if tail else lines)

    def cancel(self, job_id):
        pass

    def last_output_at(self, job_id):
        return None if self.silent_s is None else time.time() - self.silent_s


def fixture_run(settings, ledger, name: str, status: str = "running", **jobs_kw):
    job_id = f"local-{next(JOB_NUMBERS):012x}"
    jobs = FixtureJobs({job_id: log(name)}, stage=status, **jobs_kw)
    ctx = ToolContext(settings=settings, ledger=ledger, jobs=jobs)
    method = "grpo" if "grpo" in name else "dpo" if "dpo" in name else "sft"
    run_id = ledger.create_run(method, "Qwen/Qwen3-0.6B", "some/dataset", config={"logging_steps": 10},
                               job_id=job_id, status=status, user="local")
    return ctx, run_id, job_id


@pytest.mark.parametrize("name, status, failure", [
    ("trl_sft_healthy", "completed", "healthy"),
    ("trl_sft_nan", "running", "nan_loss"),
    ("trl_sft_diverging", "running", "divergence"),
    ("trl_dpo_healthy", "completed", "healthy"),
    ("trl_dpo_flat_margins", "completed", "flat_margins"),
    ("trl_grpo_healthy", "completed", "healthy"),
    ("trl_grpo_collapse", "running", "reward_collapse"),
    ("trl_grpo_zero_std", "completed", "no_reward_signal"),
    ("trl_grpo_kl_blowup", "running", "kl_blowup"),
    ("trl_sft_oom", "failed", "out_of_memory"),
])
def test_diagnose_run_judges_trl_logs(settings, ledger, name, status, failure):
    ctx, run_id, _ = fixture_run(settings, ledger, name, status)
    result = DiagnoseRunTool(ctx)(run_id=run_id)
    assert result["failure"] == failure, result
    assert result["evidence"] and result["next_step"]
    assert ledger.metric_series(run_id, user="local"), "the log's metrics were recorded"


def test_the_grpo_collapse_cites_the_reward_and_the_zero_std_groups(settings, ledger):
    ctx, run_id, _ = fixture_run(settings, ledger, "trl_grpo_collapse")
    result = DiagnoseRunTool(ctx)(run_id=run_id)
    assert result["evidence"][0] == "reward peaked at 0.5568 (step 80), mean of the last 5 logs (160-200) is 0.0195"
    assert "frac_reward_zero_std 0.22 at step 10 -> 0.9639" in result["evidence"][1]
    assert "max_completion_length" in result["evidence"][2] and "lower learning_rate" in result["next_step"]
    series = ledger.metric_series(run_id, user="local")
    assert [s for s, _ in series["reward"]] == list(range(10, 201, 10))
    assert series["frac_reward_zero_std"][-1] == (200, 0.97)


def test_healthy_means_learning_and_other_verdicts_cite_the_curves(settings, ledger):
    ctx, run_id, _ = fixture_run(settings, ledger, "trl_sft_healthy", "completed")
    healthy = DiagnoseRunTool(ctx)(run_id=run_id)
    assert healthy["evidence"] == ["loss 1.62 (first 7 logs) -> 0.944 (last 7 logs) over steps 10-300",
                                   "eval_loss 1.228 (step 100) -> 1.027 (step 300)"]
    assert "evaluate the checkpoint" in healthy["next_step"]
    ctx, run_id, _ = fixture_run(settings, ledger, "trl_dpo_flat_margins", "completed")
    flat = DiagnoseRunTool(ctx)(run_id=run_id)
    assert flat["evidence"][0].startswith("rewards/margins 0.004453 (first 10 logs) -> 0.003182 (last 10 logs)")
    assert "rewards/accuracies 0.5065" in flat["evidence"][1] and "raise learning_rate" in flat["next_step"]
    ctx, run_id, _ = fixture_run(settings, ledger, "trl_sft_nan")
    nan = DiagnoseRunTool(ctx)(run_id=run_id)
    assert nan["evidence"][0] == "loss = nan at step 80" and nan["evidence"][1].startswith("{'loss': 'nan'")


def test_a_silent_running_job_is_stalled(settings, ledger):
    ctx, run_id, _ = fixture_run(settings, ledger, "trl_sft_stalled", silent_s=50 * 60)
    result = DiagnoseRunTool(ctx)(run_id=run_id)
    assert result["failure"] == "stalled"
    assert result["evidence"] == ["no log output for 50 minutes while the job is running",
                                  "the last progress was step 42 of 200, at 1.31 s/step"]
    ctx, run_id, _ = fixture_run(settings, ledger, "trl_sft_stalled", silent_s=5 * 60)
    assert DiagnoseRunTool(ctx)(run_id=run_id)["failure"] == "healthy"  # five quiet minutes are normal
    ctx, run_id, _ = fixture_run(settings, ledger, "trl_sft_stalled", silent_s=50 * 60)
    ctx.jobs.stage = "completed"  # it ended after the ledger last heard of it: its silence is no stall
    assert DiagnoseRunTool(ctx)(run_id=run_id)["failure"] == "healthy"


def test_job_status_reports_progress_metrics_and_a_clean_tail(settings, ledger):
    ctx, run_id, job_id = fixture_run(settings, ledger, "trl_grpo_healthy")
    result = JobStatusTool(ctx)(job_id=job_id)
    assert result["progress"]["step"] == 300 and result["progress"]["max_steps"] == 300
    assert result["latest_metrics"]["reward"] == pytest.approx(0.594, abs=1e-3)
    assert "reward 0.5939" in result["message"]
    tail = result["log_tail"].splitlines()
    assert "'loss'" not in result["log_tail"] and "dataset: 7473 rows, columns ['prompt', 'answer']" in tail
    assert [line for line in tail if bar_label(line) == ""] == ["100%|██████████| 300/300 [3:12:03<00:00, 38.40s/it]"]
    assert "\x1b[" not in result["log_tail"]
    assert [bar_label(line) for line in tail].count("Generating train split:") == 1  # its last redraw only
    series = ledger.metric_series(run_id, user="local")
    assert len(series["reward"]) == 30 and series["train_loss"] == [(300, 0.0019)]

    ctx, run_id, job_id = fixture_run(settings, ledger, "trl_sft_stalled")
    result = JobStatusTool(ctx)(job_id=job_id)
    assert result["progress"]["step"] == 42 and result["latest_metrics"]["loss"] == pytest.approx(1.6)
    assert result["log_tail"].splitlines()[-1] == " 21%|██        | 42/200 [00:58<03:26,  1.31s/it]"  # once

    lines = JobLogsTool(ctx)(job_id=job_id, tail=3)["log"].splitlines()  # the redraws of one bar shown once
    assert lines == [" 18%|█▊        | 36/200 [00:50<03:34,  1.31s/it]",
                     "{'loss': '1.6', 'grad_norm': '1', 'learning_rate': '1.6e-05', 'entropy': '1.79', "
                     "'mean_token_accuracy': '0.55', 'num_tokens': '7.373e+05', 'epoch': '0.1423'}",
                     " 21%|██        | 42/200 [00:58<03:26,  1.31s/it]"]

    ctx, run_id, job_id = fixture_run(settings, ledger, "trl_sft_stalled", silent_s=45 * 60)
    assert JobStatusTool(ctx)(job_id=job_id)["message"] == (
        f"No log output for 45 minutes: the job may be stalled. diagnose_run(run_id={run_id}) says what to do.")

    ctx, run_id, job_id = fixture_run(settings, ledger, "trl_sft_healthy", "completed")
    done = JobStatusTool(ctx)(job_id=job_id)
    assert "train_loss 1.274" in done["message"] and "TRAINING_DONE" in done["message"]
    assert done["log_tail"].endswith("* Run finished. Uploading logs to Trackio (please wait...)")
    assert json.dumps(done)  # plain data
