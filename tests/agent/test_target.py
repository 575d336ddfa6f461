"""The run guard: the final-answer check against the targets, settling, and the budget guard stopping a real
session (parsing targets is tests/ground/test_targets.py)."""

from __future__ import annotations

import pytest
import yaml

from agent.config import AgentConfig
from agent.session import Session
from agent.target import Budget, RunGuard, explains_unreachable, goal_text
from tools.backends.jobs import LocalJobBackend
from tools.context import ToolContext
from tools.targets import Target, parse_targets

UNREACHABLE_ANSWER = ("Target unreachable: after three runs the best tiny_sentiment accuracy is 0.52 against a "
                      "baseline of 0.50, and the loss is flat at 0.69 because the data carries no label signal.")


def test_budget_validation_and_text():
    assert str(Budget(usd=20, hours=10)) == "$20, 10 h" and not Budget()
    with pytest.raises(ValueError, match="--budget-usd must be a positive number"):
        Budget(usd=0)


def test_goal_text_carries_target_and_budget():
    text = goal_text("improve it", [Target("gsm8k", ">=", 0.6)], Budget(usd=20))
    assert text.startswith("improve it") and "gsm8k>=0.6" in text and "$20" in text
    assert goal_text("improve it", [], Budget()) == "improve it"


def test_unreachable_needs_the_phrase_numbers_and_a_reason():
    assert explains_unreachable(UNREACHABLE_ANSWER)
    assert not explains_unreachable("Target unreachable.")
    assert not explains_unreachable("I tried hard and the model is as good as it gets with this data for now.")


@pytest.fixture
def guard_ctx(settings, ledger):
    return ToolContext(settings=settings, ledger=ledger, jobs=LocalJobBackend(settings.data_dir), goal="improve t")


def test_final_answer_check_rejects_early_and_accepts_met_or_explained(guard_ctx, ledger):
    guard = RunGuard(guard_ctx, parse_targets("t>=0.6"), Budget(usd=20))
    experiment = guard.start()
    assert ledger.get_experiment(experiment, user="local")["target"] == "t>=0.6"
    run = ledger.create_run("sft", "m", "d", experiment_id=experiment, user="local")
    ledger.record_eval("m", "t", "acc", 0.5, is_baseline=True, experiment_id=experiment, user="local")
    ledger.record_eval("ck", "t", "acc", 0.55, experiment_id=experiment, run_id=run, user="local")
    ledger.record_eval("ck", "t", "acc", 0.9, experiment_id=experiment, run_id=run,
                       details={"max_samples": 5}, user="local")  # a smoke check does not count

    with pytest.raises(ValueError, match=r"not met yet: t>=0.6 \(best so far 0.55 \(run 1\)\).*target unreachable"):
        guard.target_is_met_or_unreachable("Done: the model is better now.")
    assert guard.target_is_met_or_unreachable(UNREACHABLE_ANSWER)
    ledger.record_eval("ck", "t", "acc", 0.61, experiment_id=experiment, run_id=run, user="local")
    assert guard.target_is_met_or_unreachable("Done.")
    assert guard.settle("Done.") == "met"
    assert ledger.get_experiment(experiment, user="local")["stop_reason"] == "t>=0.6 met by run 1 (0.610)"


def test_guard_finds_evals_of_normalised_and_lower_is_better_targets(guard_ctx, ledger):
    guard = RunGuard(guard_ctx, parse_targets("GSM-8K>=0.6, loss<=1.2"), Budget())
    experiment = guard.start()
    recorded = ledger.get_experiment(experiment, user="local")
    assert (recorded["target"], recorded["task"]) == ("gsm8k>=0.6, loss<=1.2", "gsm8k")
    run = ledger.create_run("sft", "m", "d", experiment_id=experiment, user="local")
    ledger.record_eval("ck", "gsm8k", "extractive_match", 0.65, experiment_id=experiment, run_id=run, user="local")
    ledger.record_eval("ck", "loss", "loss", 1.5, experiment_id=experiment, run_id=run, user="local")
    assert not guard.all_met()
    ledger.record_eval("ck", "loss", "loss", 0.1, experiment_id=experiment, run_id=run, details={"max_samples": 5},
                       user="local")
    assert not guard.all_met()  # a smoke check does not count
    ledger.record_eval("ck", "loss", "loss", 1.1, experiment_id=experiment, run_id=run, user="local")
    ledger.record_eval("ck", "loss", "loss", 1.9, experiment_id=experiment, run_id=run, user="local")
    assert [row["best"]["value"] for row in guard.progress()] == [0.65, 1.1] and guard.all_met()


def test_settle_statuses(guard_ctx, ledger):
    guard = RunGuard(guard_ctx, parse_targets("t>=0.6"), Budget())
    guard.start()
    assert guard.settle(None) == "stopped"
    assert guard.settle(UNREACHABLE_ANSWER) == "unreachable"
    assert RunGuard(guard_ctx, [], Budget()).settle("ok") == "done"


def test_time_budget_and_llm_cost_count(guard_ctx):
    now = [0.0]
    guard = RunGuard(guard_ctx, [], Budget(usd=1, hours=2), clock=lambda: now[0])
    experiment = guard.start()
    started = guard_ctx.ledger.get_experiment(experiment, user="local")["created_at"]
    assert guard_ctx.deadline == pytest.approx(started + 2 * 3600)  # tools stop waiting then
    guard_ctx.ledger.record_spend(None, experiment, "llm", 0.4, {"model": "claude-sonnet-5-5"}, user="local")
    now[0] = started + 3600
    assert guard.over_budget() is None and guard.spent()["usd"] == pytest.approx(0.4)
    now[0] += 3600
    assert guard.over_budget() == "time budget spent: 2.00 h of 2 h"


def test_the_money_budget_counts_llm_calls_jobs_and_the_holds_of_running_jobs(guard_ctx):
    guard = RunGuard(guard_ctx, [], Budget(usd=20))
    experiment = guard.start()
    ledger = guard_ctx.ledger
    ledger.record_spend(None, experiment, "llm", 3.0, user="local")
    ledger.record_spend(None, experiment, "train", 2.0, {"job_id": "j1"}, user="local")
    ledger.record_spend(None, experiment, "reserve", 14.0, {"job_id": "j2"}, user="local")
    assert guard.over_budget() is None
    assert guard.spent() | {"hours": 0} == {"llm_usd": 3.0, "jobs_usd": 2.0, "reserved_usd": 14.0, "total_usd": 19.0,
                                            "unpriced_calls": 0, "usd": 19.0, "hours": 0}
    ledger.record_spend(None, experiment, "llm", 1.5, user="local")
    assert guard.over_budget() == "budget spent: $20.50 of $20, $14.00 of it held for running jobs"


def test_budget_guard_stops_the_agent_and_records_why(tmp_path, settings, ledger):
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump([
        {"thought": "Look around.", "code": "print('step one')"},
        {"thought": "Keep going.", "code": "print('step two')"},
        {"thought": "Done.", "code": "final_answer('done')"},
    ]))
    config = AgentConfig(backend="scripted", model_id="scripted", scripted_plan=plan, settings=settings,
                         auto_approve=True)
    session = Session(config, ledger=ledger, targets=parse_targets("tiny_sentiment>=0.6"), budget=Budget(usd=20))
    experiment = session.ctx.current_experiment()
    # a finished run that already cost more than the budget (as an HF Jobs run records it)
    ledger.create_run("sft", "m", "d", experiment_id=experiment, status="completed", cost_usd=25.0, user="local")
    sleeper = tmp_path / "sleep.py"
    sleeper.write_text("import time\ntime.sleep(120)\n")
    running = ledger.create_run("sft", "m", "d", experiment_id=experiment, status="running", user="local")
    job_id = session.ctx.jobs.submit(sleeper, run_id=running)
    ledger.update_run(running, job_id=job_id)

    events = list(session.run("improve the tiny model"))

    texts = [e.text for e in events]
    assert "step one" in "".join(texts) and "step two" not in "".join(texts)
    assert not [e for e in events if e.kind in ("final_answer", "error")], texts
    [stop] = [e for e in events if e.kind == "notice" and "Stopping" in e.text]
    assert "budget spent: $25.00 of $20" in stop.text
    assert session.guard.settle(session.final_answer) == "budget_exhausted"
    row = ledger.get_experiment(experiment, user="local")
    assert (row["status"], row["stop_reason"]) == ("budget_exhausted", "budget spent: $25.00 of $20")
    assert ledger.get_run(running, user="local")["status"] == "canceled" and f"canceled jobs {job_id}" in stop.text
    assert session.ctx.jobs.status(job_id).stage == "canceled"


def test_premature_final_answer_is_fed_back_to_the_model(tmp_path, settings, ledger):
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump([
        {"thought": "Claim victory.", "code": "final_answer('all done')"},
        {"thought": "Explain instead.", "code": f"final_answer({UNREACHABLE_ANSWER!r})"},
    ]))
    config = AgentConfig(backend="scripted", model_id="scripted", scripted_plan=plan, settings=settings,
                         auto_approve=True)
    session = Session(config, ledger=ledger, targets=parse_targets("tiny_sentiment>=0.6"))
    events = list(session.run("improve the tiny model"))

    [error] = [e for e in events if e.kind == "error"]
    assert "target_is_met_or_unreachable" in error.text and "not met yet" in error.text
    assert events[-1].kind == "final_answer" and events[-1].text == UNREACHABLE_ANSWER
    memory = session._agent.memory.steps
    assert any("not met yet" in str(getattr(step, "error", "")) for step in memory)
    assert session.guard.settle(session.final_answer) == "unreachable"


def test_budget_counts_evaluation_jobs_and_cancels_running_ones(guard_ctx, ledger, tmp_path):
    guard = RunGuard(guard_ctx, [], Budget(usd=20))
    experiment = guard.start()
    ledger.create_run("lighteval", "me/ckpt", "gsm8k|5", experiment_id=experiment, kind="eval", status="completed",
                      cost_usd=25.0, user="local")
    assert guard.spent()["jobs_usd"] == 25.0
    sleeper = tmp_path / "sleep.py"
    sleeper.write_text("import time\ntime.sleep(120)\n")
    job_id = guard_ctx.jobs.submit(sleeper, run_id=None)
    running = ledger.create_run("lighteval", "me/ckpt", "gsm8k|5", experiment_id=experiment, kind="eval",
                                status="running", job_id=job_id, user="local")

    guard.after_step(None)

    assert guard.stop_reason == "budget spent: $25.00 of $20"
    assert ledger.get_run(running, user="local")["status"] == "canceled"
    assert guard_ctx.jobs.status(job_id).stage == "canceled"


def test_auto_approve_never_submits_past_the_cap(tmp_path, data_dir, ledger, read_dirs):
    """The issue's reproduction: `--budget-usd 1` with auto-approve let five a100-large jobs be submitted."""
    from tests.fakes.jobs_api import serve_jobs_api
    from tools.settings import Settings

    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump([{"thought": "Train five variants at once.", "code": (
        "for i in range(5):\n"
        "    run = write_training_script(model='Qwen/Qwen3-0.6B', dataset='trl-lib/Capybara', "
        "hub_model_id='fake-user/sft-' + str(i))\n"
        "    try:\n"
        "        submit_job(run_id=run['run_id'], flavor='a100-large')\n"
        "    except Exception as err:\n"
        "        print('refused:', str(err)[:200])\n")}, {"thought": "Stop.", "final_answer": "refused"}]))
    server = serve_jobs_api(token="hf_canary_cap_123")
    try:
        settings = Settings(data_dir=data_dir, hf_endpoint=server.url, hf_token="hf_canary_cap_123",
                            compute_backend="hf-jobs", extra_read_dirs=read_dirs)
        config = AgentConfig(backend="scripted", model_id="scripted", scripted_plan=plan, settings=settings,
                             auto_approve=True)
        session = Session(config, ledger=ledger, budget=Budget(usd=1))
        events = list(session.run("train five variants"))
    finally:
        server.close()
    output = "".join(e.text for e in events if e.kind == "tool_result")
    assert output.count("refused:") == 5 and "may cost $5.00" in output and "$1.00 budget" in output
    assert [r for r in server.requests if r.method == "POST"] == []
    assert session.ctx.ledger.session_spend(session.id, user="local")["total_usd"] == 0.0
