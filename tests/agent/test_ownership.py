"""Ownership: two users, alice and bob, share one ledger and one local job backend. Each runs a turn that writes a
run and submits a local job (alice also submits an evaluation job); neither can see or touch the other's
sessions, experiments, runs, jobs or reports: someone else's id reads exactly as an unknown one."""

from __future__ import annotations

import pytest

from agent.config import AgentConfig
from agent.experiments_view import print_experiments
from agent.models import ScriptedModel
from agent.report import build_report
from agent.session import Session
from evals.fixture_data import TRAIN_FILE
from tools.backends.jobs import LocalJobBackend
from tools.context import ToolContext
from tools.errors import ToolError
from tools.toolset import build_tools

UNKNOWN_RUN = 987654
UNKNOWN_JOB = "local-0123456789ab"


def turn(model_dir, evaluate: bool) -> list[dict]:
    """A scripted turn: write a long run (so its job is still running when the others try it), submit it."""
    code = (f"run = write_training_script(model={str(model_dir)!r}, dataset={str(TRAIN_FILE)!r}, max_steps=5000)\n"
            "job = submit_job(run_id=run['run_id'])\n")
    if evaluate:
        code += f"ev = run_evaluation(model={str(model_dir)!r}, task='tiny_sentiment', is_baseline=True, as_job=True)\n"
    return [{"code": code + "print(job)"}, {"code": "final_answer(job['job_id'])"}]


def start(user: str, goal: str, settings, ledger, model_dir, evaluate: bool = False) -> Session:
    config = AgentConfig(backend="scripted", model_id="scripted", auto_approve=True, settings=settings)
    session = Session(config, ledger=ledger, model=ScriptedModel(turn(model_dir, evaluate)), user=user)
    events = list(session.run(goal))
    assert not [e for e in events if e.kind == "error"], [e.text for e in events if e.kind == "error"]
    return session


def tools_of(session: Session) -> dict:
    return {tool.name: tool for tool in build_tools(session.ctx)}


def error_of(call, *args, **kwargs) -> str:
    with pytest.raises(ToolError) as caught:
        call(*args, **kwargs)
    return str(caught.value)


@pytest.fixture
def users(settings, ledger, tiny_model_dir):
    alice = start("alice", "alice's secret goal: beat gsm8k", settings, ledger, tiny_model_dir, evaluate=True)
    bob = start("bob", "bob improves tiny", settings, ledger, tiny_model_dir)
    yield alice, bob
    for session in (alice, bob):
        for run in ledger.list_runs(user=session.ctx.user):
            session.ctx.jobs.cancel(run["job_id"])
        session._agent.python_executor.cleanup()


def test_each_turn_recorded_its_own_experiment_run_and_job(users, ledger):
    alice, bob = users
    for session, kinds in ((alice, ["train", "eval"]), (bob, ["train"])):
        user = session.ctx.user
        [experiment] = ledger.list_experiments(user=user)
        assert experiment["owner"] == user and experiment["id"] == session.ctx.experiment_id
        assert [r["kind"] for r in ledger.runs_for(experiment["id"], user=user)] == kinds
        assert session.final_answer == ledger.list_runs(user=user)[0]["job_id"]
        assert [s["id"] for s in ledger.list_sessions(user=user)] == [session.id]
    assert alice.ctx.workspace.parent.name == "alice" and bob.ctx.workspace.parent.name == "bob"
    assert alice.ctx.workspace.name == alice.id


def test_someone_elses_job_and_run_ids_are_unknown_and_nothing_changes(users, ledger):
    alice, bob = users
    [train, evaluation] = ledger.runs_for(alice.ctx.experiment_id, user="alice")
    before = ledger.experiment_tree(alice.ctx.experiment_id, user="alice")
    tools = tools_of(bob)

    for name, call in (("job_status", lambda job: tools["job_status"](job_id=job)),
                       ("job_logs", lambda job: tools["job_logs"](job_id=job)),
                       ("cancel_job", lambda job: tools["cancel_job"](job_id=job)),
                       ("wait_for_job", lambda job: tools["wait_for_job"](job_id=job, max_minutes=0.01)),
                       ("collect_evaluation", lambda job: tools["collect_evaluation"](job_id=job, max_minutes=0))):
        unknown = error_of(call, UNKNOWN_JOB).replace(UNKNOWN_JOB, "<id>")
        for job in (train["job_id"], evaluation["job_id"]):
            assert error_of(call, job).replace(job, "<id>") == unknown, name
    assert "unknown job id" in error_of(tools["job_status"], job_id=train["job_id"])

    for name, call in (("submit_job", lambda run: tools["submit_job"](run_id=run)),
                       ("diagnose_run", lambda run: tools["diagnose_run"](run_id=run)),
                       ("preflight_check", lambda run: tools["preflight_check"](run_id=run)),
                       ("smoke_run", lambda run: tools["smoke_run"](run_id=run)),
                       ("write_training_script", lambda run: tools["write_training_script"](
                           model="m/m", dataset="d/d", parent_run_id=run)),
                       ("run_evaluation", lambda run: tools["run_evaluation"](
                           model="m/m", task="tiny_sentiment", run_id=run))):
        unknown = error_of(call, UNKNOWN_RUN).replace(str(UNKNOWN_RUN), "<id>")
        assert error_of(call, train["id"]).replace(str(train["id"]), "<id>") == unknown, name

    assert ledger.experiment_tree(alice.ctx.experiment_id, user="alice") == before
    assert {alice.ctx.jobs.status(run["job_id"]).stage for run in (train, evaluation)} == {"running"}
    mine = tools_of(alice)  # alice herself reads and stops her jobs
    assert mine["job_status"](job_id=train["job_id"])["run_id"] == train["id"]
    assert mine["cancel_job"](job_id=train["job_id"])["stage"] == "canceled"


def test_experiments_reports_and_events_show_only_their_owner(users, ledger, capsys):
    alice, bob = users
    alices = alice.ctx.experiment_id
    assert [row["goal"] for row in ledger.experiments_table(user="bob")] == ["bob improves tiny"]
    assert [row["goal"] for row in ledger.experiments_table(user="alice")] == ["alice's secret goal: beat gsm8k"]
    assert ledger.experiment_tree(alices, user="bob") is None
    assert ledger.get_experiment(alices, user="bob") is None and ledger.evals_for(alices, user="bob") == []
    with pytest.raises(ValueError, match=f"there is no experiment {alices}"):
        build_report(ledger, alices, user="bob")
    assert "alice's secret goal" in build_report(ledger, alices, user="alice")

    assert print_experiments(ledger, ["show", str(alices)], user="bob") == 1
    assert print_experiments(ledger, [], user="bob") == 0
    assert print_experiments(ledger, ["report", str(alices)], user="bob") == 1
    assert "alice" not in capsys.readouterr().out

    assert ledger.session_events(alice.id, user="bob") == []
    assert any(e["kind"] == "final_answer" for e in ledger.session_events(alice.id, user="alice"))
    assert ledger.experiments_table(user="local") == []  # the one local user owns none of them


@pytest.mark.parametrize("name", ["", "..", ".hidden", "-dash", "a/b", "../bob", "a b", "al\x00ice", "é"])
def test_user_names_that_are_not_hub_usernames_are_refused(settings, ledger, name):
    config = AgentConfig(backend="scripted", model_id="scripted", settings=settings)
    with pytest.raises(ValueError, match="invalid user name"):
        Session(config, ledger=ledger, model=ScriptedModel([]), user=name)
    with pytest.raises(ValueError, match="invalid user name"):
        ToolContext(settings=settings, ledger=ledger, jobs=LocalJobBackend(settings.data_dir), user=name)
    assert ledger.list_sessions(user=name) == []
