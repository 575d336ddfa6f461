"""The spend ledger and the cap on jobs (tools/spend.py): a job's most it can cost is held before it is submitted and
refused past the cap, whatever the approval setting; the hold becomes the job's real cost when it ends; waits end
when the budget is spent. Jobs go to the loopback HF Jobs fake through huggingface_hub."""

from __future__ import annotations

import time

import pytest

from tests.fakes.jobs_api import RUNNING_PLAN, serve_jobs_api
from tools.backends.hardware import Flavor
from tools.backends.jobs import HfJobsBackend, LocalJobBackend
from tools.context import ToolContext
from tools.errors import ToolError
from tools.evaluation.evaluate import RunEvaluationTool
from tools.settings import Settings
from tools.spend import budget_spent, hold, job_estimate, reserve_job
from tools.training.jobs import job_tools
from tools.training.scripts import WriteTrainingScriptTool

TOKEN = "hf_canary_spend_0a1b2c"
A100_PER_HOUR = 0.041667 * 60  # the fake Hub's price list
A10G_PER_HOUR = 0.016667 * 60


@pytest.fixture
def jobs_api():
    server = serve_jobs_api(token=TOKEN)
    yield server
    server.close()


def hf_context(jobs_api, data_dir, ledger, cap: float | None, **fields) -> ToolContext:
    settings = Settings(data_dir=data_dir, hf_endpoint=jobs_api.url, hf_token=TOKEN, compute_backend="hf-jobs")
    session_id = ledger.create_session(user="local")
    return ToolContext(settings=settings, ledger=ledger, jobs=HfJobsBackend(settings), session_id=session_id,
                       budget_usd=cap, **fields)


def posts(server) -> list:
    return [r for r in server.requests if r.method == "POST"]


def write_run(ctx: ToolContext) -> int:
    return WriteTrainingScriptTool(ctx)(model="Qwen/Qwen3-0.6B", dataset="trl-lib/Capybara",
                                        hub_model_id="fake-user/sft")["run_id"]


def test_spend_ledger_sums_kinds_per_session_and_owner(ledger):
    session = ledger.create_session(user="local")
    exp = ledger.create_experiment("g", session_id=session, user="local")
    ledger.record_spend(session, None, "llm", 0.25, {"model": "m"}, user="local")
    ledger.record_spend(session, exp, "llm", 0.0, {"model": "x", "unpriced": True}, user="local")
    held = ledger.record_spend(session, exp, "reserve", 5.0, {"kind": "train"}, user="local")
    ledger.link_spend(held, "job-1")
    ledger.record_spend(session, exp, "reserve", 2.0, {"job_id": "job-2"}, user="local")
    assert ledger.job_spend("job-1", user="local") == {"reserved_usd": 5.0, "settled": False}
    ledger.record_spend(session, exp, "release", 5.0, {"job_id": "job-1"}, user="local")
    ledger.record_spend(session, exp, "train", 1.5, {"job_id": "job-1"}, user="local")
    # a run costed before the spend ledger existed counts once; one the ledger holds is not counted twice
    ledger.create_run("sft", "m", "d", experiment_id=exp, job_id="old", cost_usd=0.5, user="local")
    ledger.create_run("sft", "m", "d", experiment_id=exp, job_id="job-1", cost_usd=1.5, user="local")

    assert ledger.session_spend(session, user="local") == {
        "llm_usd": 0.25, "jobs_usd": 2.0, "reserved_usd": 2.0, "total_usd": 4.25, "unpriced_calls": 1}
    assert ledger.experiment_spend(exp, user="local")["total_usd"] == pytest.approx(4.0)  # the first call had none
    assert ledger.job_spend("job-1", user="local") == {"reserved_usd": 0.0, "settled": True}
    assert ledger.session_spend(session, user="bob")["total_usd"] == 0.0
    for kind, usd in (("tip", 1.0), ("llm", -1.0), ("llm", float("nan"))):
        with pytest.raises(ValueError):
            ledger.record_spend(session, exp, kind, usd, user="local")


def test_five_a100_jobs_under_a_one_dollar_cap_are_refused_and_never_reach_the_jobs_api(jobs_api, data_dir, ledger):
    ctx = hf_context(jobs_api, data_dir, ledger, cap=1.0, auto_approve=True)
    submit = job_tools(ctx)[0]
    runs = [write_run(ctx) for _ in range(5)]
    for run_id in runs:
        with pytest.raises(ToolError, match=r"may cost \$5\.00 \(price × timeout\).*\$1\.00 budget.*nothing was "
                                            r"submitted"):
            submit(run_id=run_id, flavor="a100-large")
    assert posts(jobs_api) == []
    assert [ledger.get_run(r, user="local")["status"] for r in runs] == ["created"] * 5
    assert ledger.session_spend(ctx.session_id, user="local")["total_usd"] == 0.0


def test_holds_add_up_against_the_cap_and_approval_shows_them(jobs_api, data_dir, ledger):
    asked = []
    ctx = hf_context(jobs_api, data_dir, ledger, cap=1.0, auto_approve=False,
                     approve=lambda action, details: asked.append(details) or True)
    submit = job_tools(ctx)[0]
    first = submit(run_id=write_run(ctx), flavor="a10g-small", timeout_minutes=30)
    assert ledger.session_spend(ctx.session_id, user="local")["reserved_usd"] == pytest.approx(A10G_PER_HOUR / 2)
    assert asked[0]["budget_left_after_usd"] == pytest.approx(1 - A10G_PER_HOUR / 2, abs=0.01)
    with pytest.raises(ToolError, match=r"may cost \$0\.67.*holds \$0\.50 of its \$1\.00 budget: \$0\.50 is left"):
        submit(run_id=write_run(ctx), flavor="a10g-small", timeout_minutes=40)
    assert len(posts(jobs_api)) == 1 and len(asked) == 1  # refused before the user was asked
    assert ledger.job_spend(first["job_id"], user="local")["reserved_usd"] == pytest.approx(A10G_PER_HOUR / 2)


def test_a_hold_becomes_the_real_cost_when_the_job_ends(jobs_api, data_dir, ledger):
    ctx = hf_context(jobs_api, data_dir, ledger, cap=10.0)
    submit, status, *_, wait = job_tools(ctx)
    wait.poll_interval_s = 0.01
    run_id = write_run(ctx)
    job = submit(run_id=run_id, flavor="a100-large", timeout_minutes=60)
    spend = ledger.session_spend(ctx.session_id, user="local")
    assert (spend["reserved_usd"], spend["jobs_usd"]) == (pytest.approx(A100_PER_HOUR), 0.0)

    assert wait(job_id=job["job_id"], max_minutes=1)["stage"] == "completed"
    status(job_id=job["job_id"])  # reading an ended job again settles nothing twice
    spend = ledger.session_spend(ctx.session_id, user="local")
    assert spend["reserved_usd"] == 0.0 and spend["jobs_usd"] == pytest.approx(0.041667 * 2)  # ran 120 s
    assert spend["jobs_usd"] == ledger.get_run(run_id, user="local")["cost_usd"]
    assert len([r for r in ledger._rows("SELECT * FROM spend WHERE kind = 'train'")]) == 1


def test_a_hold_is_given_back_when_nothing_is_submitted(jobs_api, data_dir, ledger, monkeypatch):
    ctx = hf_context(jobs_api, data_dir, ledger, cap=10.0, auto_approve=False, approve=lambda a, d: False)
    submit = job_tools(ctx)[0]
    with pytest.raises(ToolError, match="did not approve"):
        submit(run_id=write_run(ctx), flavor="a10g-small")
    ctx.auto_approve = True
    monkeypatch.setattr(ctx.jobs, "submit", lambda *a, **k: (_ for _ in ()).throw(ToolError("the Hub said 503")))
    with pytest.raises(ToolError, match="503"):
        submit(run_id=write_run(ctx), flavor="a10g-small")
    spend = ledger.session_spend(ctx.session_id, user="local")
    assert spend["reserved_usd"] == 0.0 and spend["total_usd"] == 0.0 and posts(jobs_api) == []


def test_an_evaluation_job_past_the_cap_is_refused_with_auto_approve(jobs_api, data_dir, ledger):
    ctx = hf_context(jobs_api, data_dir, ledger, cap=1.0, auto_approve=True)
    with pytest.raises(ToolError, match=r"an evaluation job on a100-large for up to 180 minutes may cost \$7\.50"):
        RunEvaluationTool(ctx)(model="me/tiny-base", task="tiny_sentiment", is_baseline=True, as_job=True,
                               flavor="a100-large")
    assert posts(jobs_api) == [] and ledger.list_runs(user="local") == []


class PricelessBackend(LocalJobBackend):
    name = "hf-jobs"

    def flavors(self):
        return [Flavor("mystery-gpu", "Mystery", 1, 80, 100, None, 100)]


def test_a_job_whose_price_is_unknown_is_refused_under_a_cap_and_local_jobs_are_free(settings, ledger):
    ctx = ToolContext(settings=settings, ledger=ledger, jobs=PricelessBackend(settings.data_dir), budget_usd=100.0)
    assert job_estimate(ctx, "mystery-gpu", 3600) is None
    with pytest.raises(ToolError, match="price of a training job on mystery-gpu for up to 60 minutes is unknown"):
        hold(ctx, "train", "mystery-gpu", 3600)
    ctx.budget_usd = None
    with reserve_job(ctx, "train", "mystery-gpu", 3600) as held:  # no cap: nothing to hold it against
        assert held.usd == 0.0
    local = ToolContext(settings=settings, ledger=ledger, jobs=LocalJobBackend(settings.data_dir), budget_usd=0.01)
    ledger.record_spend(None, None, "llm", 0.05, user="local")  # already past the cap
    assert job_estimate(local, "a100-large", 3600) == 0.0 and hold(local, "train", None, 3600).usd == 0.0


def test_waits_end_when_the_budget_is_spent(jobs_api, data_dir, ledger):
    jobs_api.state["plan"] = RUNNING_PLAN  # a job that never ends
    ctx = hf_context(jobs_api, data_dir, ledger, cap=10.0)
    submit, *_, wait = job_tools(ctx)
    wait.poll_interval_s = 0.01
    job = submit(run_id=write_run(ctx), flavor="a10g-small", timeout_minutes=60)
    assert budget_spent(ctx) is None
    ledger.record_spend(ctx.session_id, None, "llm", 9.5, user="local")  # with the job's $1.00 hold: past $10
    started = time.monotonic()
    result = wait(job_id=job["job_id"], max_minutes=1)
    assert time.monotonic() - started < 5 and result["still_running"]
    assert result["budget_spent"].startswith("the budget is spent ($10.50 of $10.00")
    assert "Stopped waiting" in result["message"]

    ctx.budget_usd, ctx.deadline = None, time.time() - 1  # a time budget that ran out
    assert wait(job_id=job["job_id"], max_minutes=1)["budget_spent"] == "the time budget is spent"
