"""The ledger's SQLite connections: one per thread and ledger file in a process, with events written in batches.

A connection per call cost a connect, a commit with fsync and a close (4-10 ms, far more on a busy disk) for each
of the ~1,200 events of a 300-step session. Here every `Ledger` on the same file in this process shares one
`LedgerConnection`, which keeps one SQLite connection per thread that uses it (opened on its first use, closed
when the thread ends or at `close`), in WAL mode with `synchronous=NORMAL`: a commit appends to the WAL without an
fsync; the file stays consistent, and at worst the last commits before a power cut are lost. No Python lock
serialises them: SQLite lets readers run beside the one writer, so a session's first event does not queue
behind twenty others' ledger calls (one shared connection under a lock did, while each holder waited for the
GIL).

Events (`add_event`) go to a list in memory and return at once; one writer thread commits them in a batch at
most `FLUSH_INTERVAL_S` after the first of them, and `flush()` (which the Ledger calls before reading events)
commits the waiting ones, so a reader in this process always sees them in order. Other processes (CLI, job
watchers, a second app) share the file through SQLite's own locking, and see a session's events once the writer,
a turn's end (`Session` calls `flush`) or `close` commits them.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import weakref
from contextlib import contextmanager
from pathlib import Path

FLUSH_INTERVAL_S = 0.1  # the longest an event waits in memory before the writer thread commits it
INSERT_EVENT = "INSERT INTO events (session_id, ts, kind, payload_json) VALUES (?, ?, ?, ?)"
BATCH_ROWS = 200  # events per INSERT statement
log = logging.getLogger(__name__)
_open: dict[str, LedgerConnection] = {}  # by the file's real path, while some Ledger uses it
# Reentrant: a Ledger's finalizer (`release`) can run from garbage collection inside `acquire` on the same thread.
_open_lock = threading.RLock()


class _ThreadConnection:
    """One thread's SQLite connection to the file, and how deep its transactions are nested."""

    def __init__(self, path: str):
        self.db = sqlite3.connect(path, timeout=30, check_same_thread=False)  # closed from `close` too
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.depth = 0


class LedgerConnection:
    """The connections of this process's threads to one ledger file, and the events waiting for the writer."""

    def __init__(self, path: str):
        self.path = path
        self._local = threading.local()
        self._all: weakref.WeakSet[_ThreadConnection] = weakref.WeakSet()  # a thread's ends with the thread
        self._thread()  # opens (creates) the file
        self.inode = os.stat(path).st_ino
        self.users = 0  # Ledger objects holding it (`acquire`/`release`)
        self._pending: list[tuple] = []
        self._queued = threading.Condition()  # guards _pending and _closed; wakes the writer
        self._flushing = threading.Lock()  # batches commit one at a time, in order
        self._closed = False
        self._closing = threading.Event()
        self._writer: threading.Thread | None = None

    def _thread(self) -> _ThreadConnection:
        mine = getattr(self._local, "connection", None)
        if mine is None:
            mine = self._local.connection = _ThreadConnection(self.path)
            self._all.add(mine)
        return mine

    @contextmanager
    def transaction(self):
        """This thread's connection, inside a transaction committed on exit (rolled back on an exception). Nested
        uses join the outer transaction."""
        mine = self._thread()
        mine.depth += 1
        try:
            yield mine.db
        except BaseException:
            mine.depth -= 1
            if mine.depth == 0:
                mine.db.rollback()
            raise
        mine.depth -= 1
        if mine.depth == 0:
            mine.db.commit()

    def add_event(self, row: tuple) -> None:
        """Queue one events row (session_id, ts, kind, payload_json); the writer thread commits it soon."""
        with self._queued:
            if self._closed:
                raise sqlite3.ProgrammingError("the ledger is closed")
            self._pending.append(row)
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_events, name=f"ledger-events:{self.path}",
                                                daemon=True)
                self._writer.start()
            elif len(self._pending) == 1:
                self._queued.notify()

    def flush(self) -> None:
        """Commit the events waiting, in the order they were added (inside a transaction of this thread: at its
        end); returns once every event added before the call is committed."""
        mine = self._thread()
        if mine.depth:
            return
        with self._flushing:
            with self._queued:
                rows, self._pending = self._pending, []
            if not rows:
                return
            try:
                for chunk in range(0, len(rows), BATCH_ROWS):  # one statement per chunk: the GIL is taken back
                    batch = rows[chunk:chunk + BATCH_ROWS]     # once per chunk, not once per row, under the lock
                    mine.db.execute(INSERT_EVENT + ", (?, ?, ?, ?)" * (len(batch) - 1),
                                    [value for row in batch for value in row])
                mine.db.commit()
            except sqlite3.IntegrityError:  # an event of an unknown session: keep the others
                mine.db.rollback()
                self._insert_one_by_one(mine.db, rows)
            except BaseException:  # locked past the timeout, disk full: keep them for the next flush
                mine.db.rollback()
                with self._queued:
                    self._pending[:0] = rows
                raise

    @staticmethod
    def _insert_one_by_one(db: sqlite3.Connection, rows: list[tuple]) -> None:
        for row in rows:
            try:
                db.execute(INSERT_EVENT, row)
            except sqlite3.IntegrityError as exc:
                log.warning("ledger: event %r of session %r not stored: %s", row[2], row[0], exc)
        db.commit()

    def _write_events(self) -> None:
        while True:
            with self._queued:
                while not self._pending and not self._closed:
                    self._queued.wait()
                if self._closed:
                    return
            self._closing.wait(FLUSH_INTERVAL_S)  # gather a batch
            try:
                self.flush()
            except Exception:
                log.exception("ledger: could not write events to %s (retrying)", self.path)

    def close(self) -> None:
        """Commit the events waiting, stop the writer thread and close every thread's connection."""
        with self._queued:
            if self._closed:
                return
            self._closed = True
            self._queued.notify()
        self._closing.set()
        if self._writer is not None and self._writer is not threading.current_thread():
            self._writer.join(timeout=30)
        self.flush()
        for each in list(self._all):
            each.db.close()


def acquire(path: Path) -> LedgerConnection:
    """The connection to the ledger file at `path` shared in this process (opened when none is); `release` it."""
    key = os.path.realpath(path)
    with _open_lock:
        shared = _open.get(key)
        if shared is None or not _same_file(shared, key):
            if shared is not None:  # the file was replaced: leave the old one to its users
                del _open[key]
            shared = _open[key] = LedgerConnection(key)
        shared.users += 1
        return shared


def release(shared: LedgerConnection) -> None:
    """One Ledger is done with `shared`; the last one closes it."""
    with _open_lock:
        shared.users -= 1
        if shared.users > 0:
            return
        if _open.get(shared.path) is shared:
            del _open[shared.path]
    shared.close()


def _same_file(shared: LedgerConnection, path: str) -> bool:
    try:
        return os.stat(path).st_ino == shared.inode
    except FileNotFoundError:
        return False
