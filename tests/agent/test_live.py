"""A turn that runs independent of the page: followers attach at any time (replay, then live events), Stop ends
it, nobody following for the grace period stops it, another user cannot reach it; at its end the experiment is
settled, its report saved and a plain summary told."""

from __future__ import annotations

import threading
import time

import pytest
import yaml

from agent import live as live_turns
from agent.events import Event
from agent.session import Session
from evals.fixture_data import TRAIN_FILE
from tests.agent.session_helpers import scripted_config
from tools.ledger import Ledger


class SlowSession:
    """A stand-in for `agent.session.Session` whose turn emits one step every `pause_s` until stopped."""

    def __init__(self, ledger: Ledger, user: str = "local", steps: int = 50, pause_s: float = 0.05):
        self.ledger, self.steps, self.pause_s = ledger, steps, pause_s
        self.id = ledger.create_session(title="slow", user=user)
        self.ctx = type("Ctx", (), {"user": user, "experiment_id": None})()
        self.stopped = threading.Event()
        self.stop_calls: list[bool] = []
        self.answers: list[tuple[bool, str]] = []

    def run(self, text, variables=None):
        yield Event("user", text)
        for step in range(1, self.steps + 1):
            if self.stopped.is_set():
                yield Event("notice", "Stopped.", data={"stopped": True})
                return
            time.sleep(self.pause_s)
            yield Event("code", f"step({step})", step=step)
        yield Event("final_answer", "done")

    def stop(self, cancel_jobs: bool = False):
        self.stop_calls.append(cancel_jobs)
        self.stopped.set()

    def answer_approval(self, approved: bool, reason: str = ""):
        self.answers.append((approved, reason))


@pytest.fixture(autouse=True)
def registry(monkeypatch):
    """Live sessions of this test only."""
    monkeypatch.setattr(live_turns, "_REGISTRY", {})


def wait_for(predicate, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_turn_runs_without_a_follower_and_a_late_one_gets_the_replay_then_live_events(ledger):
    live = live_turns.LiveSession(SlowSession(ledger, steps=20, pause_s=0.02))
    start = live.start("go")
    wait_for(lambda: len(live.events) >= 5)
    assert live.running
    followed = [event for _, event in live.follow(start)]
    assert [e.kind for e in followed] == ["user"] + ["code"] * 20 + ["final_answer"]
    assert not live.running and live.turn_ended_at is not None
    assert [e.text for _, e in live.follow(len(live.events) - 1)] == ["done"], "a follower may start anywhere"


def test_a_follower_behind_the_turn_catches_up_in_one_batch(ledger):
    live = live_turns.LiveSession(SlowSession(ledger, steps=5, pause_s=0.0))
    live.start("go")
    wait_for(lambda: not live.running)
    batches = list(live.follow_batches(0))
    assert len(batches) == 1, "everything logged so far comes at once"
    assert [index for index, _ in batches[0]] == list(range(len(live.events)))


def test_two_followers_see_the_same_events_and_stop_ends_the_turn_between_steps(ledger):
    session = SlowSession(ledger, steps=1000)
    live = live_turns.LiveSession(session)
    live.start("go")
    seen: dict[str, list] = {"a": [], "b": []}

    def follow(name):
        for _, event in live.follow(0):
            seen[name].append(event.kind)

    threads = [threading.Thread(target=follow, args=(name,)) for name in seen]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(live.events) >= 3)
    live.stop(cancel_jobs=True)
    for thread in threads:
        thread.join(10)
    assert session.stop_calls == [True]
    assert seen["a"] == seen["b"] and seen["a"][-1] == "notice" and len(seen["a"]) < 100
    assert not live.running and live.start("again") > 0, "the session takes a new turn after a stop"


def page_handler(ready: threading.Event, outputs: list):
    """A page's handler as Gradio drives it, on a thread of its own: busy until `ready`, then its outputs."""
    def handler():
        ready.wait(10)
        yield from outputs

    page = live_turns.ahead_of_turns(handler())
    shown: list = []
    thread = threading.Thread(target=lambda: shown.append(next(page)), daemon=True)
    thread.start()
    return page, thread, shown


def test_a_turn_starts_only_once_the_pages_waiting_for_a_first_output_have_it(ledger):
    """Twenty people pressing Send at once: each one's message is echoed before any of their agents starts."""
    ready = threading.Event()
    page, thread, shown = page_handler(ready, ["echo", "rest"])
    wait_for(lambda: live_turns._FIRST_OUTPUT_DUE)
    live = live_turns.LiveSession(SlowSession(ledger, steps=1, pause_s=0.0))
    live.start("go")
    time.sleep(0.3)
    assert live.events == [] and live.running, "the turn waits while another page's first output is due"
    ready.set()
    thread.join(5)
    assert shown == ["echo"]
    time.sleep(0.2)
    assert live.events == [], "yielded is not yet out: it is once the page's handler is resumed"
    assert list(page) == ["rest"]
    wait_for(lambda: not live.running)
    assert [e.kind for e in live.events] == ["user", "code", "final_answer"]


def test_a_page_busy_before_its_first_output_holds_turns_back_for_a_bounded_time(ledger, monkeypatch):
    monkeypatch.setattr(live_turns, "FIRST_OUTPUT_S", 0.5)
    ready = threading.Event()
    page_handler(ready, ["late"])
    wait_for(lambda: live_turns._FIRST_OUTPUT_DUE)
    began = time.monotonic()
    live = live_turns.LiveSession(SlowSession(ledger, steps=1, pause_s=0.0))
    live.start("go")
    wait_for(lambda: not live.running, timeout_s=5)
    ready.set()
    assert 0.3 < time.monotonic() - began < 3, "held back by the busy page, but not for long"
    assert [e.kind for e in live.events] == ["user", "code", "final_answer"]


def test_a_second_turn_cannot_start_while_one_runs(ledger):
    live = live_turns.LiveSession(SlowSession(ledger, steps=1000))
    live.start("go")
    with pytest.raises(RuntimeError, match="already running"):
        live.start("another")
    live.stop()
    wait_for(lambda: not live.running)


def test_nobody_following_for_the_grace_period_stops_the_turn_and_says_so(ledger):
    session = SlowSession(ledger, steps=10_000, pause_s=0.01)
    live = live_turns.LiveSession(session, grace_s=0.3)
    live.start("go")
    wait_for(lambda: not live.running)
    assert session.stop_calls == [False], "stopped, jobs left running"
    [note] = [e for e in live.events if e.data.get("stopped") == "no follower"]
    assert "nobody followed" in note.text
    stored = [row["payload"]["text"] for row in ledger.session_events(session.id, user="local")]
    assert note.text in stored


def test_a_follower_keeps_the_turn_alive_past_the_grace_period(ledger):
    live = live_turns.LiveSession(SlowSession(ledger, steps=60, pause_s=0.02), grace_s=0.3)
    live.start("go")
    kinds = [event.kind for _, event in live.follow(0)]
    assert kinds[-1] == "final_answer"


def test_only_the_owner_finds_a_live_session_and_latest_prefers_a_running_one(ledger):
    alice_done = live_turns.LiveSession(SlowSession(ledger, user="alice", steps=1))
    alice_done.start("short")
    wait_for(lambda: not alice_done.running)
    alice_running = live_turns.LiveSession(SlowSession(ledger, user="alice", steps=1000))
    alice_running.start("long")
    assert live_turns.find(alice_running.session.id, "alice") is alice_running
    assert live_turns.find(alice_running.session.id, "bob") is None
    assert live_turns.find(alice_running.session.id, None) is None
    assert live_turns.latest("alice") is alice_running and live_turns.latest("bob") is None
    alice_running.stop()
    wait_for(lambda: not alice_running.running)


def test_an_approval_is_answered_only_while_one_waits(ledger):
    session = SlowSession(ledger, steps=0)
    live = live_turns.LiveSession(session)
    assert live.answer_approval(True) is False and session.answers == []


def test_a_chat_turn_settles_its_experiment_saves_its_report_and_ends_in_plain_words(tmp_path, settings, ledger,
                                                                                       tiny_model_dir):
    config = scripted_config(tmp_path, settings)
    config.scripted_plan.write_text(yaml.safe_dump([
        {"code": f'run = write_training_script(model="{tiny_model_dir}", dataset="{TRAIN_FILE}", max_steps=2)'
                 '\nprint(run["run_id"])'},
        {"final_answer": "written"}]))
    session = Session(config, ledger=ledger, title="chat")
    live = live_turns.LiveSession(session, on_end=live_turns.end_of_turn)
    live.start("train something small")
    events = [event for _, event in live.follow(0)]
    summary = events[-1]
    assert summary.kind == "notice" and summary.data == {"summary": True}
    assert summary.text.startswith(f"**In short:** experiment {session.ctx.experiment_id} is **done**")
    assert "1 training run (sft of" in summary.text and "$0.00" in summary.text
    experiment = ledger.get_experiment(session.ctx.experiment_id, user="local")
    assert experiment["status"] == "done" and experiment["report"].startswith("# ml-intern report")
    assert summary.text in [row["payload"]["text"] for row in ledger.session_events(session.id, user="local")]
