"""HfJobLogReader against the fake Jobs API: the event-stream parsing, incremental de-duplicated reads,
reconnects after drops, 429/5xx and time-outs, the on-disk cache across restarts, and the end of a log;
TRL Trainer log lines in the stream becoming metric series, and a stream gone quiet read as a stall."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from huggingface_hub.errors import HfHubHTTPError

from tests.fakes.jobs_api import RUNNING_PLAN, TRAINING_LOG, serve_jobs_api
from tools.backends.hf_job_logs import HfJobLogReader
from tools.backends.hub import hf_api
from tools.backends.jobs import HfJobsBackend
from tools.context import ToolContext
from tools.errors import ToolError
from tools.settings import Settings
from tools.training.diagnosis import DiagnoseRunTool
from tools.training.jobs import JobStatusTool

FIXTURES = Path(__file__).parents[1] / "fixtures" / "logs"

TOKEN = "hf_canary_log_reader_5e6f7a"
UNKNOWN_JOB = "0123456789abcdef01234567"


@pytest.fixture
def jobs_api():
    server = serve_jobs_api(token=TOKEN)
    yield server
    server.close()


@pytest.fixture
def settings_for(jobs_api, data_dir):
    return Settings(data_dir=data_dir, hf_endpoint=jobs_api.url, hf_token=TOKEN, compute_backend="hf-jobs")


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def new_reader(settings_for, data_dir, sleeps):
    """`new_reader()`: a reader over the data directory's job folders, as a fresh process would build it."""
    return lambda: HfJobLogReader(hf_api(settings_for), data_dir / "jobs", lambda: "fake-user", sleep=sleeps.append)


def start_job(jobs_api, settings, plan=None) -> str:
    if plan is not None:
        jobs_api.state["plan"] = plan
    return hf_api(settings).run_job(image="python:3.12", command=["python", "-c", "pass"], namespace="fake-user").id


def log_requests(jobs_api, job_id):
    return [r for r in jobs_api.requests if r.path == f"/api/jobs/fake-user/{job_id}/logs"]


def test_the_first_read_replays_the_log_and_later_ones_ask_for_a_window(jobs_api, settings_for, new_reader, data_dir):
    job_id = start_job(jobs_api, settings_for)
    reader = new_reader()
    assert reader.read(job_id) == (TRAINING_LOG, None)  # the platform's "===== Job started" banner is left out
    assert reader.read(job_id) == (TRAINING_LOG, None)
    first, later = log_requests(jobs_api, job_id)
    assert first.query == {} and later.query == {"tail": ["1000"]}
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    cache = (data_dir / "jobs" / job_id / "hf_log.jsonl").read_text()
    assert [json.loads(line)[1] for line in cache.splitlines()] == TRAINING_LOG and TOKEN not in cache


def test_keep_alives_and_malformed_events_are_skipped(jobs_api, settings_for, new_reader):
    jobs_api.state["log_noise"] = True
    assert new_reader().read(start_job(jobs_api, settings_for)) == (TRAINING_LOG, None)


def test_a_dropped_stream_resumes_with_every_line_once(jobs_api, settings_for, new_reader, sleeps):
    job_id = start_job(jobs_api, settings_for)
    jobs_api.state["drop_logs"] = 1  # the first stream breaks off mid-event, the reconnect gets through
    assert new_reader().read(job_id) == (TRAINING_LOG, None)
    assert sleeps == [0.5] and len(log_requests(jobs_api, job_id)) == 2


def test_rate_limits_and_server_errors_are_retried_with_backoff(jobs_api, settings_for, new_reader, sleeps):
    job_id = start_job(jobs_api, settings_for)
    jobs_api.state["log_status"] = [429, 503]
    assert new_reader().read(job_id) == (TRAINING_LOG, None)
    assert sleeps == [0.5, 1.5] and len(log_requests(jobs_api, job_id)) == 3


def test_reads_give_up_after_bounded_retries_and_continue_later(jobs_api, settings_for, new_reader, sleeps):
    job_id = start_job(jobs_api, settings_for)
    reader = new_reader()
    jobs_api.state["drop_logs"] = True
    lines, note = reader.read(job_id)
    assert lines == TRAINING_LOG[:2]  # the events before the drop; the half event after them is not a line
    assert "interrupted 3 times (RemoteProtocolError)" in note and "2 lines read so far" in note
    assert sleeps == [0.5, 1.5] and len(log_requests(jobs_api, job_id)) == 3
    jobs_api.state["drop_logs"] = False
    assert reader.read(job_id) == (TRAINING_LOG, None)
    jobs_api.state["log_status"] = [500, 500, 500]
    lines, note = reader.read(job_id)
    assert lines == TRAINING_LOG and "interrupted 3 times (HfHubHTTPError)" in note


def test_other_http_errors_are_not_retried(jobs_api, new_reader, sleeps):
    reader = new_reader()
    with pytest.raises(HfHubHTTPError) as err:
        reader.read(UNKNOWN_JOB)
    assert err.value.response.status_code == 404 and sleeps == [] and len(log_requests(jobs_api, UNKNOWN_JOB)) == 1
    with pytest.raises(ToolError, match="unknown job id"):
        reader.read("../../etc")  # never sent: not a job id
    assert len(jobs_api.requests) == 1


def test_a_stream_that_stays_open_is_read_up_to_its_silence(jobs_api, settings_for, new_reader):
    jobs_api.state.update(plan=RUNNING_PLAN, log_hold_s=5)
    job_id = start_job(jobs_api, settings_for)
    reader = new_reader()
    reader.read_timeout_s = 0.3
    started = time.monotonic()
    assert reader.read(job_id) == (RUNNING_PLAN["logs"], None)  # caught up with a running job: no error
    assert time.monotonic() - started < 3


def test_new_lines_only_and_the_whole_log_when_the_window_misses(jobs_api, settings_for, new_reader):
    job_id = start_job(jobs_api, settings_for, RUNNING_PLAN)
    reader = new_reader()
    printed = jobs_api.state["jobs"][job_id]["logs"]
    assert reader.read(job_id)[0] == RUNNING_PLAN["logs"]
    printed += ["step 1", "step 1"]  # the same text at two times is two lines
    assert reader.read(job_id)[0][-3:] == [RUNNING_PLAN["logs"][-1], "step 1", "step 1"]
    reader.window = 2
    printed += [f"step {i}" for i in range(2, 6)]
    assert reader.read(job_id)[0] == printed
    assert [r.query for r in log_requests(jobs_api, job_id)[-2:]] == [{"tail": ["2"]}, {}]


def test_replays_count_repeated_events(data_dir):
    reader = HfJobLogReader(None, data_dir / "jobs", lambda: "fake-user")
    replays = [[("t1", "a"), ("t1", "a")], [("t1", "a"), ("t1", "a"), ("t2", "b")],
               [("t1", "a"), ("t1", "a"), ("t2", "b"), ("t2", "b")]]
    reader._events = lambda job_id, tail: iter(replays.pop(0))
    assert [reader.read("j1")[0] for _ in range(3)] == [["a", "a"], ["a", "a", "b"], ["a", "a", "b", "b"]]


def test_a_cache_line_cut_short_by_a_crash_is_dropped(jobs_api, settings_for, new_reader, data_dir):
    job_id = start_job(jobs_api, settings_for)
    new_reader().read(job_id)
    cache = data_dir / "jobs" / job_id / "hf_log.jsonl"
    kept = cache.read_text().splitlines()[:3]
    cache.write_text("\n".join(kept) + '\n["2026-01-01T00:00:09.000Z", "half a li')
    assert new_reader().read(job_id) == (TRAINING_LOG, None)  # the lost lines are fetched again, once
    assert new_reader().read(job_id) == (TRAINING_LOG, None)  # and a second restart still reads them in order


def test_logs_survive_a_restart_and_stop_once_the_job_ended(jobs_api, settings_for, data_dir):
    backend = HfJobsBackend(settings_for)
    job_id = start_job(jobs_api, settings_for)
    backend.logs(job_id)
    restarted = HfJobsBackend(settings_for)
    restarted.log_reader.settle_s = 0
    jobs_api.state["jobs"][job_id]["logs"].append("late line")
    assert restarted.logs(job_id).splitlines() == [*TRAINING_LOG, "late line"]
    assert [restarted.status(job_id).stage for _ in range(3)][-1] == "completed"
    restarted.logs(job_id)  # the read after the end marks the log complete
    asked = len(log_requests(jobs_api, job_id))
    assert restarted.logs(job_id, tail=1) == "late line"
    assert HfJobsBackend(settings_for).logs(job_id, tail=1) == "late line"
    assert len(log_requests(jobs_api, job_id)) == asked
    assert (data_dir / "jobs" / job_id / "hf_log.complete").exists()


def trl_job(jobs_api, settings, ledger, fixture: str, method: str, started_ago_s: float = 0.0):
    """A running HF job whose event stream carries a TRL fixture log, one event per line (tqdm's carriage
    returns stay inside the events, as the platform forwards them), and its ledger run."""
    lines = (FIXTURES / f"{fixture}.txt").read_bytes().decode().removesuffix("\n").split("\n")
    job_id = start_job(jobs_api, settings, {"stages": [("RUNNING", None)], "logs": lines})
    jobs_api.state["jobs"][job_id]["created"] -= timedelta(seconds=started_ago_s)
    ctx = ToolContext(settings=settings, ledger=ledger, jobs=HfJobsBackend(settings))
    run_id = ledger.create_run(method, "Qwen/Qwen3-0.6B", "openai/gsm8k", config={"logging_steps": 10},
                               job_id=job_id, status="running", backend="hf-jobs", user="local")
    return ctx, job_id, run_id, lines


def test_trl_log_lines_from_the_event_stream_become_metric_series(jobs_api, settings_for, ledger):
    ctx, job_id, run_id, lines = trl_job(jobs_api, settings_for, ledger, "trl_grpo_collapse", "grpo")
    assert any("\r" in line for line in lines)
    status = JobStatusTool(ctx)(job_id=job_id)
    assert status["stage"] == "running" and status["progress"]["max_steps"] == 200
    assert status["progress"]["step"] == 200 and status["latest_metrics"]["frac_reward_zero_std"] == 0.97
    series = ledger.metric_series(run_id, user="local")
    assert [s for s, _ in series["reward"]] == list(range(10, 201, 10))
    assert max(v for _, v in series["reward"]) == pytest.approx(0.5568, abs=1e-4) and series["reward"][-1][1] < 0.03
    diagnosis = DiagnoseRunTool(ctx)(run_id=run_id)
    assert diagnosis["failure"] == "reward_collapse" and "frac_reward_zero_std" in diagnosis["evidence"][1]
    created = jobs_api.state["jobs"][job_id]["created"].timestamp()
    assert ctx.jobs.last_output_at(job_id) == pytest.approx(created + len(lines))  # the newest event's timestamp


def test_a_job_whose_stream_went_quiet_is_stalled(jobs_api, settings_for, ledger):
    ctx, job_id, run_id, _ = trl_job(jobs_api, settings_for, ledger, "trl_sft_stalled", "sft", started_ago_s=7200)
    diagnosis = DiagnoseRunTool(ctx)(run_id=run_id)
    assert diagnosis["failure"] == "stalled" and diagnosis["evidence"][0].startswith("no log output for 120 minutes")
    assert "step 42 of 200" in diagnosis["evidence"][1]
