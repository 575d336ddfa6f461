"""The job tools end to end: write a run, train the tiny model for real on the local backend,
watch it, read metrics from the ledger; failures, cancel, timeouts; HF Jobs against the fake."""

from __future__ import annotations

import json
import time

import pytest

from evals.fixture_data import TRAIN_FILE
from tests.fakes.jobs_api import ERROR_PLAN, serve_jobs_api
from tools.backends.jobs import HfJobsBackend, LocalJobBackend
from tools.context import ToolContext
from tools.errors import ToolError
from tools.settings import Settings
from tools.training.jobs import job_tools, metric_points, parse_training_log
from tools.training.scripts import WriteTrainingScriptTool

CANARY = "hf_canary_0a1b2c3d4e5f"


class Tools:
    def __init__(self, ctx: ToolContext):
        self.ctx = ctx
        self.write = WriteTrainingScriptTool(ctx)
        self.submit, self.status, self.logs, self.cancel, self.wait = job_tools(ctx)
        self.wait.poll_interval_s = 0.2


@pytest.fixture
def events():
    return []


@pytest.fixture
def tools(settings, ledger, events):
    ctx = ToolContext(settings=settings, ledger=ledger, jobs=LocalJobBackend(settings.data_dir),
                      emit=lambda kind, payload: events.append((kind, payload)))
    return Tools(ctx)


def replace_script(tools, run_id: int, body: str) -> None:
    with open(tools.ctx.ledger.get_run(run_id, user="local")["script_path"], "w") as f:
        f.write(body)


def test_sft_trains_the_tiny_model_on_the_local_backend(tools, tiny_model_dir, events):
    run = tools.write(model=str(tiny_model_dir), dataset=str(TRAIN_FILE), max_steps=10, lora=False,
                      learning_rate=3e-3, per_device_train_batch_size=16)  # the tiny model learns in 10 steps
    started = time.monotonic()
    job = tools.submit(run_id=run["run_id"])
    assert job["backend"] == "local" and job["stage"] in ("queued", "running")
    assert time.monotonic() - started < 2, "submit_job must return at once"
    result = tools.wait(job_id=job["job_id"], max_minutes=3)
    print(f"local SFT, 10 steps: {time.monotonic() - started:.1f}s")
    assert result["stage"] == "completed", result["log_tail"]
    assert result["still_running"] is False
    assert result["progress"] == {"step": 10, "max_steps": 10, "eta_minutes": None}  # done: nothing left
    assert set(result["latest_metrics"]) >= {"loss", "learning_rate", "grad_norm", "epoch"}
    assert result["output_dir"] == run["output_dir"]
    checkpoint = tools.ctx.settings.data_dir.resolve() / "runs" / str(run["run_id"]) / "checkpoint"
    assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "tokenizer.json").is_file()
    assert "Evaluate it next" in result["message"]

    ledger = tools.ctx.ledger
    saved = ledger.get_run(run["run_id"], user="local")
    assert saved["status"] == "completed" and saved["job_id"] == job["job_id"] and saved["backend"] == "local"
    assert saved["started_at"] <= saved["finished_at"] and saved["error"] is None
    losses = ledger.metric_series(run["run_id"], user="local")["loss"]
    assert [step for step, _ in losses] == [5, 10]
    assert losses[-1][1] < losses[0][1]
    assert ledger.metric_series(run["run_id"], "train_loss", user="local")["train_loss"][0][0] == 10
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "run_created" and "job_update" in kinds
    assert events[-1][1]["stage"] == "completed"

    with pytest.raises(ToolError, match="already completed"):
        tools.submit(run_id=run["run_id"])


def test_a_failing_script_reports_failed_with_its_traceback(tools, tiny_model_dir):
    run = tools.write(model=str(tiny_model_dir), dataset=str(TRAIN_FILE))
    replace_script(tools, run["run_id"], "def load():\n    raise KeyError('prompt')\nload()\n")
    job = tools.submit(run_id=run["run_id"])
    result = tools.wait(job_id=job["job_id"], max_minutes=1)
    assert result["stage"] == "failed"
    assert "Traceback" in result["log_tail"] and "KeyError: 'prompt'" in result["log_tail"]
    assert "KeyError: 'prompt'" in result["message"] and "Likely cause: dataset_format" in result["message"]
    assert f"parent_run_id={run['run_id']}" in result["message"]
    saved = tools.ctx.ledger.get_run(run["run_id"], user="local")
    assert saved["status"] == "failed" and saved["error"] == "KeyError: 'prompt'"
    log = tools.logs(job_id=job["job_id"], tail=1)
    assert log == {"job_id": job["job_id"], "run_id": run["run_id"], "lines": 1, "log": "KeyError: 'prompt'"}


def test_cancel_and_timeout(tools, tiny_model_dir):
    run = tools.write(model=str(tiny_model_dir), dataset=str(TRAIN_FILE))
    replace_script(tools, run["run_id"], "import time\nprint('METRIC {\"step\": 1, \"loss\": 3.0}', flush=True)\n"
                                         "time.sleep(60)\n")
    job = tools.submit(run_id=run["run_id"])
    with pytest.raises(ToolError, match="already running"):
        tools.submit(run_id=run["run_id"])
    waited = tools.wait(job_id=job["job_id"], max_minutes=0.01)
    assert waited["still_running"] is True and waited["stage"] == "running"
    assert waited["progress"]["step"] == 1 and waited["progress"]["eta_minutes"] > 0
    canceled = tools.cancel(job_id=job["job_id"])
    assert canceled["stage"] == "canceled"
    assert tools.ctx.ledger.get_run(run["run_id"], user="local")["status"] == "canceled"

    resubmitted = tools.submit(run_id=run["run_id"], timeout_minutes=0.02)
    result = tools.wait(job_id=resubmitted["job_id"], max_minutes=1)
    assert result["stage"] == "timeout" and "timeout_minutes" in result["message"]
    assert tools.ctx.ledger.get_run(run["run_id"], user="local")["status"] == "timeout"


def test_bad_ids_and_arguments(tools, tiny_model_dir):
    with pytest.raises(ToolError, match="no run 42"):
        tools.submit(run_id=42)
    with pytest.raises(ToolError, match="unknown job id"):
        tools.status(job_id="local-abcdefabcdef")
    with pytest.raises(ToolError, match="unknown job id"):
        tools.cancel(job_id="job-that-never-was")
    run = tools.write(model=str(tiny_model_dir), dataset=str(TRAIN_FILE))
    with pytest.raises(ToolError, match="timeout_minutes must be positive"):
        tools.submit(run_id=run["run_id"], timeout_minutes=0)
    replace_script(tools, run["run_id"], "def broken(:\n")
    with pytest.raises(ToolError, match="does not parse"):
        tools.submit(run_id=run["run_id"])
    with pytest.raises(ToolError, match="max_minutes"):
        tools.wait(job_id="local-abcdefabcdef", max_minutes=0)


def test_another_users_job_and_run_are_unknown_to_the_job_tools(tools, tiny_model_dir):
    run = tools.write(model=str(tiny_model_dir), dataset=str(TRAIN_FILE))
    replace_script(tools, run["run_id"], "import time\ntime.sleep(60)\n")
    job = tools.submit(run_id=run["run_id"])["job_id"]
    ctx = tools.ctx
    bob = Tools(ToolContext(settings=ctx.settings, ledger=ctx.ledger, jobs=ctx.jobs, user="bob"))
    for call in (lambda j: bob.status(job_id=j), lambda j: bob.logs(job_id=j), lambda j: bob.cancel(job_id=j),
                 lambda j: bob.wait(job_id=j, max_minutes=0.01)):
        with pytest.raises(ToolError) as theirs:
            call(job)
        with pytest.raises(ToolError) as unknown:
            call("local-abcdefabcdef")
        assert str(theirs.value).replace(job, "<id>") == str(unknown.value).replace("local-abcdefabcdef", "<id>")
        assert "unknown job id" in str(theirs.value)
    with pytest.raises(ToolError, match=f"there is no run {run['run_id']};"):
        bob.submit(run_id=run["run_id"])
    assert ctx.jobs.status(job).stage == "running"  # bob's cancel did not reach it
    assert ctx.ledger.get_run(run["run_id"], user="local")["status"] == "running"
    assert tools.cancel(job_id=job)["stage"] == "canceled"


def test_parse_training_log_skips_garbage_and_non_finite_values():
    log = ('noise\nMETRIC {"step": 1, "max_steps": 4, "loss": NaN, "lr": 0.1}\nMETRIC {broken\n'
           'METRIC {"step": 2, "loss": 1.5}\nTRAINING_DONE {"output_dir": "o"}\n')
    rows, done = parse_training_log(log)
    assert [r["step"] for r in rows] == [1, 2] and done == {"output_dir": "o"}
    assert metric_points(rows) == [(1, "lr", 0.1), (2, "loss", 1.5)]


@pytest.fixture
def hf_tools(ledger, data_dir, events):
    server = serve_jobs_api(token=CANARY)
    settings = Settings(data_dir=data_dir, hf_endpoint=server.url, hf_token=CANARY, compute_backend="hf-jobs")
    ctx = ToolContext(settings=settings, ledger=ledger, jobs=HfJobsBackend(settings),
                      emit=lambda kind, payload: events.append((kind, payload)))
    yield Tools(ctx), server
    server.close()


def test_hf_jobs_run_through_the_tools(hf_tools, events):
    tools, server = hf_tools
    run = tools.write(model="Qwen/Qwen3-0.6B", dataset="trl-lib/Capybara", hub_model_id="fake-user/sft-1")
    with pytest.raises(ToolError, match=r"unknown flavor 'h100-giant'.*a10g-small \(24 GB, ~\$1.00/h\)"):
        tools.submit(run_id=run["run_id"], flavor="h100-giant")
    job = tools.submit(run_id=run["run_id"], flavor="a10g-small", timeout_minutes=30)
    assert job["backend"] == "hf-jobs" and job["stage"] == "queued" and job["flavor"] == "a10g-small"
    spec = next(r for r in server.requests if r.method == "POST").json()
    assert spec["secrets"] == {"HF_TOKEN": CANARY} and spec["timeoutSeconds"] == 1800
    assert CANARY not in json.dumps({k: v for k, v in spec.items() if k != "secrets"})

    result = tools.wait(job_id=job["job_id"], max_minutes=1)
    assert result["stage"] == "completed" and result["output_dir"] == "outputs/run-1"
    saved = tools.ctx.ledger.get_run(run["run_id"], user="local")
    assert saved["status"] == "completed" and saved["hardware"] == "a10g-small"
    assert saved["cost_usd"] == pytest.approx(0.016667 * 2)  # the fake job ran 120 s
    spend = tools.ctx.ledger.session_spend(None, user="local")  # the 30-minute hold became the job's real cost
    assert (spend["jobs_usd"], spend["reserved_usd"]) == (saved["cost_usd"], 0.0)
    assert [s for s, _ in tools.ctx.ledger.metric_series(run["run_id"], "loss", user="local")["loss"]] == [5, 10]
    assert all(CANARY not in json.dumps(payload) for _, payload in events)


def test_hf_jobs_failure_explains_itself(hf_tools):
    tools, server = hf_tools
    server.state["plan"] = ERROR_PLAN
    run = tools.write(model="Qwen/Qwen3-0.6B", dataset="trl-lib/Capybara", hub_model_id="me/qwen-capybara")
    job = tools.submit(run_id=run["run_id"], flavor="t4-small")
    result = tools.wait(job_id=job["job_id"], max_minutes=1)
    assert result["stage"] == "failed"
    assert "out of memory" in result["message"] and "OutOfMemoryError" in result["log_tail"]
    assert tools.ctx.ledger.get_run(run["run_id"], user="local")["status"] == "failed"


def test_job_tools_share_the_session_and_require_only_their_ids(tools):
    names = [t.name for t in (tools.submit, tools.status, tools.logs, tools.cancel, tools.wait)]
    assert names == ["submit_job", "job_status", "job_logs", "cancel_job", "wait_for_job"]
    for tool in (tools.write, tools.submit, tools.status, tools.logs, tools.cancel, tools.wait):
        assert tool.output_type == "object" and "Example:" in tool.description
    required = {tool.name: [name for name, spec in tool.inputs.items() if not spec.get("nullable")]
                for tool in (tools.write, tools.submit, tools.status, tools.logs, tools.cancel, tools.wait)}
    assert required == {"write_training_script": ["model", "dataset"], "submit_job": ["run_id"],
                        "job_status": ["job_id"], "job_logs": ["job_id"], "cancel_job": ["job_id"],
                        "wait_for_job": ["job_id"]}
    assert all(tool.ctx is tools.ctx for tool in (tools.submit, tools.status, tools.logs, tools.cancel, tools.wait))
