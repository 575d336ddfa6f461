"""Events written in batches by the ledger's writer thread: all stored, in order, across threads and processes."""

import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from tools.ledger import Ledger

ROOT = Path(__file__).resolve().parents[2]


def stored(path: Path, session_id: str) -> list[dict]:
    """The session's events committed to the file, as a connection of another process would read them (payloads
    only, in id order)."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT payload_json FROM events WHERE session_id = ? ORDER BY id", (session_id,))
        return [json.loads(row[0]) for row in rows.fetchall()]


def write_events_in_a_process(path: Path, session_id: str, writer: str, n: int) -> subprocess.Popen:
    code = ("import sys; from tools.ledger import Ledger; ledger = Ledger(sys.argv[1])\n"
            "for i in range(int(sys.argv[4])): ledger.record_event(sys.argv[2], 'thought', {'w': sys.argv[3], 'i': i})")
    return subprocess.Popen([sys.executable, "-c", code, str(path), session_id, writer, str(n)], cwd=ROOT)


def test_every_event_is_stored_in_the_order_it_was_recorded(ledger):
    sid = ledger.create_session(user="local")
    for i in range(500):
        ledger.record_event(sid, "thought", {"i": i})
    assert [e["payload"]["i"] for e in ledger.session_events(sid, user="local")] == list(range(500))
    assert [e["i"] for e in stored(ledger.path, sid)] == list(range(500))  # committed, not only visible here


def test_the_writer_thread_commits_events_without_a_read_or_flush(ledger):
    sid = ledger.create_session(user="local")
    ledger.record_event(sid, "thought", {"text": "soon"})
    deadline = time.monotonic() + 10
    while not stored(ledger.path, sid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stored(ledger.path, sid) == [{"text": "soon"}]


def test_two_threads_and_another_process_write_events_to_one_file(data_dir):
    ledger = Ledger.in_dir(data_dir)
    sid = ledger.create_session(user="local")
    other = write_events_in_a_process(ledger.path, sid, "process", 300)
    second = Ledger.in_dir(data_dir)

    def write(writer: str, into: Ledger) -> None:
        for i in range(300):
            into.record_event(sid, "thought", {"w": writer, "i": i})

    threads = [threading.Thread(target=write, args=(name, into)) for name, into in (("a", ledger), ("b", second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert other.wait(60) == 0  # its events are committed when its Ledger ends, at exit
    ledger.flush()
    events = stored(ledger.path, sid)
    assert len(events) == 900
    for writer in ("a", "b", "process"):
        assert [e["i"] for e in events if e["w"] == writer] == list(range(300)), writer
    assert len(second.session_events(sid, user="local")) == 900


def test_an_event_of_an_unknown_session_does_not_cost_the_others(ledger):
    sid = ledger.create_session(user="local")
    ledger.record_event(sid, "thought", {"i": 0})
    ledger.record_event("no-such-session", "thought", {"i": 1})
    ledger.record_event(sid, "thought", {"i": 2})
    assert [e["payload"]["i"] for e in ledger.session_events(sid, user="local")] == [0, 2]


def test_a_failed_transaction_keeps_the_events_recorded_before_it(ledger):
    sid = ledger.create_session(user="local")
    ledger.record_event(sid, "thought", {"i": 0})
    exp = ledger.create_experiment("goal", user="local")
    try:
        with ledger._connect() as db:
            db.execute("UPDATE experiments SET status = 'done' WHERE id = ?", (exp,))
            raise RuntimeError("a tool failed half-way")
    except RuntimeError:
        pass
    assert ledger.get_experiment(exp, user="local")["status"] == "open"  # rolled back
    ledger.flush()
    assert stored(ledger.path, sid) == [{"i": 0}]


def test_close_commits_waiting_events_and_the_file_opens_again(data_dir):
    ledger = Ledger.in_dir(data_dir)
    sid = ledger.create_session(user="local")
    ledger.record_event(sid, "thought", {"text": "last words"})
    ledger.close()
    assert stored(ledger.path, sid) == [{"text": "last words"}]
    reopened = Ledger.in_dir(data_dir)
    reopened.record_event(sid, "thought", {"text": "again"})
    assert [e["payload"]["text"] for e in reopened.session_events(sid, user="local")] == ["last words", "again"]



def test_a_read_does_not_wait_for_another_threads_open_transaction(ledger):
    ledger.create_session("first", user="local")
    inside, done = threading.Event(), threading.Event()

    def long_write():
        with ledger._connect() as db:
            db.execute("INSERT INTO sessions (id, created_at, title, owner) VALUES ('s2', 1, 'second', 'local')")
            inside.set()
            done.wait(10)

    writer = threading.Thread(target=long_write)
    writer.start()
    assert inside.wait(10)
    try:
        assert [s["title"] for s in ledger.list_sessions(user="local")] == ["first"]  # not blocked; not yet there
    finally:
        done.set()
        writer.join()
    assert {s["title"] for s in ledger.list_sessions(user="local")} == {"first", "second"}


def test_a_ledger_released_while_another_is_being_opened_does_not_deadlock(tmp_path):
    """Garbage collection may run a Ledger's finalizer (`release`) inside `acquire`, on the same thread."""
    import threading

    from tools import ledger_connection

    def open_and_release_inside_acquire():
        with ledger_connection._open_lock:  # where acquire holds it when a collection runs a finalizer
            shared = ledger_connection.acquire(tmp_path / "inner.sqlite")
            ledger_connection.release(shared)

    worker = threading.Thread(target=open_and_release_inside_acquire, daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive()
