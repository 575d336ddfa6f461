"""Resume: the agent memory is stored step by step and rebuilt, a resumed session carries on with it, running
jobs are re-attached and stuck runs reconciled; after a `kill -9` of the CLI, `ml-intern --resume` finishes."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from smolagents.memory import ActionStep, PlanningStep, TaskStep
from smolagents.models import ChatMessage, MessageRole
from smolagents.monitoring import AgentLogger, LogLevel, Timing, TokenUsage

from agent.cli import main
from agent.persistence import load_memory, rebuild_step, step_record
from agent.session import Session
from evals.fixture_data import TRAIN_FILE
from tests.agent.session_helpers import scripted_config, submit_job, wait_until, write_plan
from tools.backends.jobs import LocalJobBackend
from tools.ledger import Ledger

ROOT = Path(__file__).resolve().parents[2]
LOGGER = AgentLogger(level=LogLevel.OFF)
# A quick stand-in for a training script: METRIC lines, the TRAINING_DONE line, exit 0.
QUICK_JOB = ("import json\nfor step in (1, 2):\n    print('METRIC ' + json.dumps({'step': step, 'max_steps': 2, "
             "'loss': 3.0 - step}), flush=True)\nprint('TRAINING_DONE ' + json.dumps({'output_dir': 'ckpt'}))\n")


def comparable(step) -> dict:
    """What the LLM reads of a step, and its record without the parts persistence leaves out."""
    record = {k: v for k, v in step.dict().items() if k not in ("model_input_messages", "model_output_message")}
    return {"messages": [(m.role, m.content) for m in step.to_messages()], "record": record}


def test_each_step_is_stored_as_it_ends_and_rebuilt_as_it_was(tmp_path, settings, ledger):
    config = scripted_config(tmp_path, settings, [
        {"thought": "Compute.", "code": "x = 6 * 7\nprint(x)"},
        {"thought": "Call a tool that does not exist.", "code": "missing_tool()"},
        {"thought": "Done.", "code": "final_answer(f'answer {x}')"},
    ])
    session = Session(config, ledger=ledger)
    list(session.run("what is six times seven?", variables={"base_model": "tiny", "blob": object()}))
    original = session._agent.memory.steps

    memory = load_memory(Ledger.in_dir(settings.data_dir), session.id, user="local")
    rebuilt = memory.steps(LOGGER)
    assert [type(s) for s in rebuilt] == [TaskStep, ActionStep, ActionStep, ActionStep]
    assert [comparable(s) for s in rebuilt[1:]] == [comparable(s) for s in original[1:]]
    assert rebuilt[0].task == original[0].task
    assert type(rebuilt[2].error) is type(original[2].error) and "missing_tool" in str(rebuilt[2].error)
    assert memory.variables == {"base_model": "tiny"}  # what JSON can carry
    assert memory.turns == 1 and memory.last_turn_finished
    assert all("model_input_messages" not in row["step"] for row in memory.rows)  # no prompt copy per step


def test_a_planning_step_round_trips():
    message = ChatMessage(role=MessageRole.ASSISTANT, content="1. look\n2. act", raw={"opaque": object()},
                          token_usage=TokenUsage(10, 5))
    step = PlanningStep(model_input_messages=[message], model_output_message=message, plan="1. look\n2. act",
                        timing=Timing(1.0, 2.0), token_usage=TokenUsage(10, 5))
    kind, record = step_record(step)
    back = rebuild_step(kind, record, LOGGER)
    assert kind == "planning" and back.plan == step.plan and back.token_usage == step.token_usage
    assert back.to_messages() == step.to_messages() and back.model_output_message.raw is None


def test_secrets_never_reach_the_stored_memory(tmp_path, settings, ledger):
    canary = "canary-memory-secret-5a6b7c"
    config = scripted_config(tmp_path, settings.with_(hf_token=canary), [
        {"thought": f"The token is {canary}.", "code": f"print('{canary}')\nfinal_answer('{canary}')"},
    ])
    session = Session(config, ledger=ledger)
    list(session.run(f"leak {canary}"))
    assert canary not in str(ledger.memory_steps(session.id, user="local"))
    ledger.flush()
    for stored in ledger.path.parent.glob("ledger.sqlite*"):
        assert canary.encode() not in stored.read_bytes()


def test_a_resumed_session_carries_on_with_its_memory(tmp_path, settings, ledger):
    config = scripted_config(tmp_path, settings, [
        {"thought": "Look first.", "code": "print('first turn looked')"},
        {"thought": "Answer.", "code": "final_answer('first')"},
        {"thought": "Answer the next message.", "code": "final_answer('second')"},
    ])
    first = Session(config, ledger=ledger, title="two turns")
    assert list(first.run("go"))[-1].text == "first"

    resumed = Session.resume(first.id, config, Ledger.in_dir(settings.data_dir))  # as a new process would
    assert resumed.id == first.id and resumed.turns == 1 and resumed.resumed.finished
    assert resumed.resumed.jobs == [] and "1 turn(s) and 2 step(s)" in resumed.resumed.events[-1].text
    events = list(resumed.run("again"))
    assert events[-1].kind == "final_answer" and events[-1].text == "second"
    prompt = str(resumed._agent.memory.steps[-1].model_input_messages)  # what the LLM was sent
    assert "first turn looked" in prompt and "New task:\\ngo" in prompt
    assert {row["turn"] for row in ledger.memory_steps(first.id, user="local")} == {0, 1}
    assert len(ledger.list_sessions(user="local")) == 1  # no new ledger session


def test_resuming_a_finished_headless_run_only_settles_and_reports_it(tmp_path, settings, ledger):
    """Killed after its final answer but before its report: `--resume` settles the experiment, runs no turn."""
    config = scripted_config(tmp_path, settings, [{"thought": "Answer.", "code": "final_answer('all done')"}])
    session = Session(config, ledger=ledger, title="headless", targets=[])  # its guard records the experiment
    assert list(session.run("do it"))[-1].text == "all done"
    [experiment] = ledger.list_experiments(user="local")
    assert experiment["status"] == "open"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["--resume", session.id, "--data-dir", str(settings.data_dir)])
    [experiment] = ledger.list_experiments(user="local")
    assert code == 0 and experiment["status"] == "done" and experiment["report"] in out.getvalue()
    assert "final_answer" not in out.getvalue()  # no turn ran again


def test_resume_refuses_an_unknown_or_someone_elses_session(tmp_path, settings, ledger):
    config = scripted_config(tmp_path, settings, [{"code": "final_answer('x')"}])
    alice = Session(config, ledger=ledger, user="alice")
    for session_id, user in ((alice.id, "bob"), ("0123456789ab", "alice")):
        with pytest.raises(ValueError, match=f"there is no session '{session_id}' of user '{user}'"):
            Session.resume(session_id, config, ledger, user=user)


def test_resume_reattaches_running_jobs_and_reconciles_stuck_runs(tmp_path, settings, ledger, tiny_model_dir):
    config = scripted_config(tmp_path, settings, [{"code": "final_answer('x')"}])
    session = Session(config, ledger=ledger)
    list(session.run("train"))
    finished = submit_job(session.ctx, tiny_model_dir, QUICK_JOB)
    running = submit_job(session.ctx, tiny_model_dir)
    gone = submit_job(session.ctx, tiny_model_dir, QUICK_JOB)
    jobs = LocalJobBackend(settings.data_dir)  # a new process's backend: it never held these jobs
    try:
        wait_until(lambda: jobs.status(finished["job_id"]).done and jobs.status(gone["job_id"]).done, 120,
                   "the quick jobs")
        shutil.rmtree(jobs.jobs_dir / gone["job_id"])
        assert {r["status"] for r in ledger.list_runs(user="local")} == {"running"}  # the parent never looked

        resumed = Session.resume(session.id, config, Ledger.in_dir(settings.data_dir))
        by_run = {job["run_id"]: job for job in resumed.resumed.jobs}
        assert by_run[finished["run_id"]]["stage"] == "completed"
        assert by_run[finished["run_id"]]["output_dir"] == "ckpt"
        assert by_run[running["run_id"]]["stage"] == "running"
        assert by_run[gone["run_id"]]["stage"] == "failed"
        runs = {r["id"]: r for r in ledger.list_runs(user="local")}
        assert runs[finished["run_id"]]["status"] == "completed" and runs[finished["run_id"]]["output_dir"] == "ckpt"
        assert ledger.metric_series(finished["run_id"], "loss", user="local") == {"loss": [(1, 2.0), (2, 1.0)]}
        assert runs[running["run_id"]]["status"] == "running"
        assert runs[gone["run_id"]]["status"] == "failed" and "gone" in runs[gone["run_id"]]["error"]

        text, variables = resumed.resumed.continuation()
        assert f"job {finished['job_id']} (run {finished['run_id']}, train): completed, checkpoint ckpt" in text
        assert "Variables and functions defined by earlier code actions are gone" in text
        assert [j["job_id"] for j in variables["resumed_jobs"]] == [finished["job_id"], running["job_id"],
                                                                    gone["job_id"]]
        stored = [row["payload"] for row in ledger.session_events(session.id, user="local")]
        assert any(p["kind"] == "job_update" and p["data"]["job_id"] == finished["job_id"] for p in stored)
        assert any(p["data"].get("resumed") for p in stored)
    finally:
        jobs.cancel(running["job_id"])


def test_cli_resumes_after_kill_9_with_a_local_job_running(tmp_path, tiny_model_dir, read_dirs):
    """The CLI is killed while it waits on a real SFT job; the job finishes on its own; `--resume` re-attaches
    it, records its outcome, carries the interrupted turn on and settles the experiment."""
    data_dir = tmp_path / "data"
    plan = write_plan(tmp_path / "plan.yaml", [
        {"thought": "Train.", "code": f"script = write_training_script(model={str(tiny_model_dir)!r}, "
                                      f"dataset={str(TRAIN_FILE)!r}, method='sft', max_steps=20, "
                                      "learning_rate=3e-3, per_device_train_batch_size=16)\n"
                                      "job = submit_job(run_id=script['run_id'])"},
        {"thought": "Wait for it.", "code": "status = wait_for_job(job_id=job['job_id'], max_minutes=10)"},
        {"thought": "Report.", "code": "job = resumed_jobs[0]\n"
                                       "final_answer(f\"run {job['run_id']} {job['stage']} at {job['output_dir']}\")"},
    ])
    env = {**os.environ, "ML_INTERN_READ_DIRS": os.pathsep.join(map(str, read_dirs))}
    cli = subprocess.Popen([sys.executable, "-m", "agent", "train the tiny model", "--backend", "scripted", "--plan",
                            str(plan), "--compute", "local", "--data-dir", str(data_dir)],
                           cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    ledger = Ledger.in_dir(data_dir)
    try:
        [stored] = wait_until(lambda: ledger.list_sessions(user="local"), 120, "the session")
        wait_until(lambda: any(e["kind"] == "code" and "wait_for_job" in e["payload"]["text"]
                               for e in ledger.session_events(stored["id"], user="local")), 180, "the wait to start")
    finally:
        cli.kill()  # SIGKILL: no cleanup runs
        cli.wait(30)
    [run] = ledger.list_runs(user="local")
    jobs = LocalJobBackend(data_dir)
    assert run["status"] == "running" and jobs.status(run["job_id"]).stage == "running"  # it outlived the CLI
    wait_until(lambda: jobs.status(run["job_id"]).done, 300, "the training job")
    assert ledger.get_run(run["id"], user="local")["status"] == "running"  # stuck until someone looks

    out = io.StringIO()
    started = time.monotonic()
    with contextlib.redirect_stdout(out):
        code = main(["--resume", stored["id"], "--data-dir", str(data_dir)])
    out = out.getvalue()
    print(f"resume after kill -9: {time.monotonic() - started:.1f}s")
    done = ledger.get_run(run["id"], user="local")
    assert code == 0, out
    assert done["status"] == "completed" and done["output_dir"] and done["finished_at"], done
    assert ledger.metric_series(run["id"], "loss", user="local")["loss"]
    job = f"job {run['job_id']} (run {run['id']}, train)"
    assert f"Re-attached: {job}: completed, checkpoint {done['output_dir']}" in out
    assert f"✓ final_answer: run {run['id']} completed at {done['output_dir']}" in out
    assert "The variable `job` is not defined" in out  # the replayed wait: the old variables are gone
    [experiment] = ledger.list_experiments(user="local")
    assert experiment["status"] == "done" and experiment["report"]
    assert len(ledger.list_sessions(user="local")) == 1
