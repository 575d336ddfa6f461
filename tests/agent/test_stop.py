"""Stop: a turn stops between steps once the current tool returns (a wait on a job ends early), the user's
choice leaves or cancels the session's running jobs, the session stays usable; Ctrl-C does it in the CLI."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from agent.session import Session
from evals.fixture_data import TRAIN_FILE
from tests.agent.session_helpers import scripted_config, submit_job, wait_until, write_plan
from tools.backends.jobs import LocalJobBackend
from tools.ledger import Ledger

ROOT = Path(__file__).resolve().parents[2]


def session_waiting_on_a_job(tmp_path, settings, ledger, tiny_model_dir):
    """A session with a running job, and a plan whose first step waits on it for up to 5 minutes."""
    config = scripted_config(tmp_path, settings)
    session = Session(config, ledger=ledger)
    job = submit_job(session.ctx, tiny_model_dir)
    write_plan(config.scripted_plan, [
        {"thought": "Wait for the job.", "code": f"status = wait_for_job(job_id='{job['job_id']}', max_minutes=5)"},
        {"thought": "Report.", "code": "final_answer('after the wait')"},
    ])
    return session, job


def run_and_stop_when_waiting(session, **stop_args) -> list:
    """Run a turn on a thread; stop it once its wait_for_job code action has started; the turn's events."""
    seen: queue.Queue = queue.Queue()

    def consume():
        for event in session.run("wait for the job"):
            seen.put(event)
        seen.put(None)

    worker = threading.Thread(target=consume)
    worker.start()
    events = []
    while True:
        event = seen.get(timeout=60)
        if event is None:
            break
        events.append(event)
        if event.kind == "code" and "wait_for_job" in event.text:
            session.stop(**stop_args)
    worker.join(60)
    assert not worker.is_alive()
    return events


def test_stop_mid_turn_leaves_the_jobs_running_and_the_session_usable(tmp_path, settings, ledger, tiny_model_dir):
    session, job = session_waiting_on_a_job(tmp_path, settings, ledger, tiny_model_dir)
    events = run_and_stop_when_waiting(session)
    try:
        [notice] = [e for e in events if e.data.get("stopped")]
        assert notice.kind == "notice" and notice.data["jobs_left_running"] == [job["job_id"]]
        assert notice.text.startswith("Stopped by the user after step 1.") and job["job_id"] in notice.text
        assert not [e for e in events if e.kind in ("error", "final_answer")]  # no "Agent interrupted" error
        assert session.ctx.jobs.status(job["job_id"]).stage == "running"  # the wait ended, the job did not
        assert ledger.get_run(job["run_id"], user="local")["status"] == "running"
        stored = [row["payload"] for row in ledger.session_events(session.id, user="local")]
        assert any(p["data"].get("stopped") for p in stored)

        after = list(session.run("carry on"))  # the next turn goes on with the next step
        assert after[-1].kind == "final_answer" and after[-1].text == "after the wait"
    finally:
        session.ctx.jobs.cancel(job["job_id"])


def test_stop_with_cancel_cancels_the_sessions_running_jobs(tmp_path, settings, ledger, tiny_model_dir):
    session, job = session_waiting_on_a_job(tmp_path, settings, ledger, tiny_model_dir)
    events = run_and_stop_when_waiting(session, cancel_jobs=True)
    [notice] = [e for e in events if e.data.get("stopped")]
    assert notice.data["jobs_canceled"] == [job["job_id"]] and notice.data["cancel_failed"] == []
    assert f"Canceled jobs: {job['job_id']}." in notice.text
    assert session.ctx.jobs.status(job["job_id"]).stage == "canceled"
    run = ledger.get_run(job["run_id"], user="local")
    assert run["status"] == "canceled" and run["error"] == "canceled: the user stopped the session"


def test_stop_between_turns_cancels_and_returns_its_notice(tmp_path, settings, ledger, tiny_model_dir):
    config = scripted_config(tmp_path, settings, [{"code": "final_answer('next turn')"}])
    session = Session(config, ledger=ledger)
    job = submit_job(session.ctx, tiny_model_dir)
    notice = session.stop(cancel_jobs=True)
    assert notice.kind == "notice" and notice.data["jobs_canceled"] == [job["job_id"]]
    assert session.ctx.jobs.status(job["job_id"]).stage == "canceled"
    assert not [e for e in session.run("go") if e.data.get("stopped")]  # not replayed into the next turn
    assert any(row["payload"]["data"].get("stopped") for row in ledger.session_events(session.id, user="local"))


def test_stop_cancels_only_the_users_own_jobs(tmp_path, settings, ledger, tiny_model_dir):
    theirs = Session(scripted_config(tmp_path, settings, []), ledger=ledger, user="alice")
    job = submit_job(theirs.ctx, tiny_model_dir)
    try:
        mine = Session(scripted_config(tmp_path, settings, []), ledger=ledger, user="bob")
        assert mine.stop(cancel_jobs=True).data["jobs_canceled"] == []
        assert theirs.ctx.jobs.status(job["job_id"]).stage == "running"
    finally:
        theirs.ctx.jobs.cancel(job["job_id"])


@pytest.mark.parametrize("on_stop", ["cancel", "leave"])
def test_ctrl_c_stops_the_cli_turn_and_does_what_on_stop_says(tmp_path, tiny_model_dir, read_dirs, on_stop):
    data_dir = tmp_path / "data"
    plan = write_plan(tmp_path / "plan.yaml", [
        {"thought": "Train.", "code": f"script = write_training_script(model={str(tiny_model_dir)!r}, "
                                      f"dataset={str(TRAIN_FILE)!r}, method='sft', max_steps=400)\n"
                                      "job = submit_job(run_id=script['run_id'])"},
        {"thought": "Wait.", "code": "status = wait_for_job(job_id=job['job_id'], max_minutes=10)"},
        {"thought": "Not reached.", "code": "final_answer('waited')"},
    ])
    env = {**os.environ, "ML_INTERN_READ_DIRS": os.pathsep.join(map(str, read_dirs))}
    cli = subprocess.Popen([sys.executable, "-m", "agent", "train the tiny model", "--backend", "scripted", "--plan",
                            str(plan), "--compute", "local", "--data-dir", str(data_dir), "--on-stop", on_stop],
                           cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    ledger = Ledger.in_dir(data_dir)
    try:
        wait_until(lambda: any(e["kind"] == "code" and "wait_for_job" in e["payload"]["text"]
                               for s in ledger.list_sessions(user="local")
                               for e in ledger.session_events(s["id"], user="local")), 180, "the wait to start")
        cli.send_signal(signal.SIGINT)
        out, _ = cli.communicate(timeout=120)
    finally:
        cli.kill()
    [run] = ledger.list_runs(user="local")
    stage = LocalJobBackend(data_dir).status(run["job_id"]).stage
    try:
        assert "stopping after the current step" in out and "ℹ notice: Stopped by the user after step 2." in out, out
        assert "final_answer" not in out and "resume with: ml-intern --resume " in out
        if on_stop == "cancel":
            assert f"Canceled jobs: {run['job_id']}." in out and run["status"] == stage == "canceled"
        else:
            assert f"Jobs left running: {run['job_id']}." in out and run["status"] == stage == "running"
        [experiment] = ledger.list_experiments(user="local")
        assert experiment["status"] == "stopped" and cli.returncode == 1
    finally:
        LocalJobBackend(data_dir).cancel(run["job_id"])
