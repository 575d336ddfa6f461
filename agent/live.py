"""A turn that runs independent of the page that started it, with any number of followers.

    live = LiveSession(session)               # registered: `find(session.id, user)` and `latest(user)` reach it
    live.start("improve Qwen3-1.7B on GSM8K") # the turn runs on its own thread, into an in-memory log
    for index, event in live.follow(0):       # replay from `index`, then live events until the turn ends
        ...
    live.stop(cancel_jobs=True)               # between steps, after the current tool returns

A background thread drains `Session.run` (which also writes the ledger) into `events`; a browser tab, a
reload or a second tab follows from any index. A turn that nobody follows for `grace_s` seconds
(`ML_INTERN_FOLLOWER_GRACE_S`, default 300) is stopped, unless it waits for an approval: that is answered
through its own endpoint, and times out on its own.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator

from agent.events import Event

FOLLOWER_GRACE_S = float(os.environ.get("ML_INTERN_FOLLOWER_GRACE_S", "300"))
FIRST_OUTPUT_S = 2.0  # the longest a turn waits to start while pages' first outputs are due
KEPT_SESSIONS = 500  # live sessions kept for re-attaching, oldest idle ones dropped first
_REGISTRY: dict[str, LiveSession] = {}
_REGISTRY_LOCK = threading.Lock()
_PAGES = threading.Condition()
_FIRST_OUTPUT_DUE: dict[object, float] = {}  # page handler -> when its first output stops holding turns back


def ahead_of_turns(outputs: Iterator) -> Iterator:
    """A page handler's `outputs`, with turns held back from starting until its first output is out (or
    FIRST_OUTPUT_S passed): twenty people pressing Send at once each see their message echoed before twenty agents
    start (about 0.1 s of this process's CPU each) and share the GIL with the server's event loop."""
    token = object()
    with _PAGES:
        _FIRST_OUTPUT_DUE[token] = time.monotonic() + FIRST_OUTPUT_S
    try:
        for count, output in enumerate(outputs):
            yield output
            if count == 0:
                _server_caught_up()
                _first_output_out(token)
    finally:
        _first_output_out(token)


def _server_caught_up() -> None:
    """From a handler on one of the server's worker threads: return once the server's event loop has run what was
    ready (sending the output just yielded among it). Elsewhere (tests, the CLI), at once."""
    import anyio.from_thread

    try:
        anyio.from_thread.run_sync(lambda: None)
    except RuntimeError:  # not on a worker thread of an event loop
        pass


def _first_output_out(token) -> None:
    with _PAGES:
        if _FIRST_OUTPUT_DUE.pop(token, None) is not None:
            _PAGES.notify_all()


def wait_for_first_outputs() -> None:
    """Block while a page handler's first output is due (`ahead_of_turns`); at most FIRST_OUTPUT_S in all, so that
    pages arriving without pause never keep a turn from starting."""
    deadline = time.monotonic() + FIRST_OUTPUT_S
    with _PAGES:
        while (until := min(deadline, max(_FIRST_OUTPUT_DUE.values(), default=0.0))) > time.monotonic():
            _PAGES.wait(until - time.monotonic())


def stop_session(session, cancel_jobs: bool = False) -> None:
    """`Session.stop(cancel_jobs=...)`, for sessions whose stop takes no argument too."""
    try:
        session.stop(cancel_jobs=cancel_jobs)
    except TypeError:
        session.stop()


class LiveSession:
    """One session's event log and its current turn (see the module docstring)."""

    def __init__(self, session, history: list[Event] | None = None, grace_s: float | None = None,
                 on_end: Callable[[object, bool], str | None] | None = None):
        self.session = session
        self.on_end = on_end  # (session, answered) -> a closing text shown as the turn's last event, at its end
        self.options = None  # what the page that started the session asked of its turns (compared on reuse)
        self.user = session.ctx.user
        self.events: list[Event] = list(history or [])
        self.grace_s = FOLLOWER_GRACE_S if grace_s is None else grace_s
        self.turn_start_index = len(self.events)
        self.turn_started_at: float | None = None  # wall clock of the current (or last) turn's start
        self.turn_ended_at: float | None = None
        self.stopping = False
        self._active = False
        self._seen = time.monotonic()  # a follower's last sign of life
        self._cond = threading.Condition()
        with _REGISTRY_LOCK:
            _REGISTRY[session.id] = self
            _drop_idle()

    @property
    def running(self) -> bool:
        return self._active

    @property
    def waiting_for_approval(self) -> bool:
        """Whether the turn's latest shown event asks for an approval that is not answered yet."""
        with self._cond:
            shown = [e for e in self.events[self.turn_start_index:] if e.kind not in ("token_usage", "delta")]
            return self._active and bool(shown) and shown[-1].kind == "approval"

    def start(self, text: str, variables: dict | None = None) -> int:
        """Start a turn on its own thread; returns the index of its first event. RuntimeError while one runs."""
        with self._cond:
            if self._active:
                raise RuntimeError("a turn is already running in this session")
            self._active, self.stopping = True, False
            self.turn_start_index = len(self.events)
            self.turn_started_at, self.turn_ended_at = time.time(), None
            self._seen = time.monotonic()
        threading.Thread(target=self._drain, args=(text, variables), daemon=True,
                         name=f"turn-{self.session.id}").start()
        threading.Thread(target=self._watch_followers, daemon=True, name=f"grace-{self.session.id}").start()
        return self.turn_start_index

    def follow(self, start: int = 0) -> Iterator[tuple[int, Event]]:
        """(index, event) from `start` on: the log so far, then each new event, until the turn ends."""
        for batch in self.follow_batches(start):
            yield from batch

    def follow_batches(self, start: int = 0) -> Iterator[list[tuple[int, Event]]]:
        """`follow` in batches: every (index, event) there is at each call (waiting while there is none), so a
        follower slower than the turn catches up in one step rather than one step per event."""
        index = start
        while True:
            with self._cond:
                self._seen = time.monotonic()
                while index >= len(self.events) and self._active:
                    self._cond.wait(1.0)
                    self._seen = time.monotonic()
                if index >= len(self.events):
                    return
                batch = list(enumerate(self.events[index:], start=index))
            index += len(batch)
            yield batch

    def stop(self, cancel_jobs: bool = False) -> None:
        """Stop the turn between steps (a pending approval is answered no); with `cancel_jobs` its jobs too."""
        if not self._active:
            return
        self.stopping = True
        if self.waiting_for_approval:
            self.session.answer_approval(False)
        stop_session(self.session, cancel_jobs=cancel_jobs)

    def answer_approval(self, approved: bool, reason: str = "") -> bool:
        """Answer the approval the turn waits for; False when none waits."""
        if not self.waiting_for_approval:
            return False
        self._seen = time.monotonic()
        try:
            self.session.answer_approval(approved, reason=reason)
        except TypeError:
            self.session.answer_approval(approved)
        return True

    def record(self, event: Event) -> None:
        """An event of the live session's own, stored in the ledger and shown to followers."""
        self.session.ledger.record_event(self.session.id, event.kind, event.to_dict())
        self._append(event)

    def _append(self, event: Event) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def _drain(self, text: str, variables: dict | None) -> None:
        wait_for_first_outputs()
        answered = False
        try:
            for event in self.session.run(text, variables=variables):
                answered = answered or event.kind == "final_answer"
                self._append(event)
            if self.on_end is not None:
                closing = self.on_end(self.session, answered)
                if closing:
                    self.record(Event("notice", closing, data={"summary": True}))
        except Exception as exc:  # Session.run reports agent failures itself; this is a last resort
            self._append(Event("error", f"The turn ended unexpectedly: {type(exc).__name__}: {exc}"))
        finally:
            with self._cond:
                self._active = False
                self.turn_ended_at = time.time()
                self._cond.notify_all()

    def _watch_followers(self) -> None:
        while self._active:
            time.sleep(min(1.0, self.grace_s))
            if self._active and not self.stopping and not self.waiting_for_approval \
                    and time.monotonic() - self._seen > self.grace_s:
                text = (f"Stopped: nobody followed this turn for {self.grace_s:g} s (the page was closed). "
                        "Jobs already submitted keep running; reopen the session to go on.")
                self.record(Event("notice", text, data={"stopped": "no follower"}))
                self.stop()


def find(session_id: str | None, user: str | None) -> LiveSession | None:
    """The live session `session_id` when `user` owns it; another user's reads as none."""
    live = _REGISTRY.get(session_id or "")
    return live if live is not None and user is not None and live.user == user else None


def latest(user: str | None) -> LiveSession | None:
    """The user's session whose turn runs now, else the one that ran last; None when they have none here."""
    with _REGISTRY_LOCK:
        mine = [live for live in _REGISTRY.values() if user is not None and live.user == user]
    if not mine:
        return None
    return max(mine, key=lambda live: (live.running, live.turn_started_at or 0.0))


def reopen(session_id: str, config, ledger, *, user: str, model=None) -> LiveSession:
    """A past session of `user`, resumed (`Session.resume`) with its ledger events as the log; the live one
    when it is still here. ValueError when the user has no such session."""
    live = find(session_id, user)
    if live is not None:
        return live
    from agent.session import Session

    rows = ledger.session_events(session_id, user=user)
    if not rows and not any(s["id"] == session_id for s in ledger.list_sessions(user=user)):
        raise ValueError(f"there is no session {session_id}")
    session = Session.resume(session_id, config, ledger, user=user, model=model)
    history = [Event.from_dict(row["payload"]) for row in rows]
    return LiveSession(session, history)


def _drop_idle() -> None:
    """Keep the registry bounded: drop the oldest sessions that run no turn (caller holds the lock)."""
    idle = sorted((live for live in _REGISTRY.values() if not live.running),
                  key=lambda live: live.turn_ended_at or 0.0)
    for live in idle[:max(0, len(_REGISTRY) - KEPT_SESSIONS)]:
        _REGISTRY.pop(live.session.id, None)


def end_of_turn(session, answered: bool, push: bool = False, repo_id: str | None = None) -> str | None:
    """Settle the experiment the turn worked on (done when it answered, else stopped; a target's guard decides
    where there is one), save its report (`agent.report.end_of_run`), and say in plain words what happened;
    None when the turn recorded no experiment."""
    from agent.report import end_of_run

    experiment_id = session.ctx.experiment_id
    if experiment_id is None:
        return None
    ledger, user = session.ledger, session.ctx.user
    if session.guard is None:
        ledger.update_experiment(experiment_id, status="done" if answered else "stopped", finished_at=time.time(),
                                 stop_reason="the agent gave its final answer" if answered
                                 else "the turn ended without a final answer (stopped, error or step limit)")
    end_of_run(session, push=push, repo_id=repo_id)
    return plain_summary(ledger, experiment_id, session.id, user=user)


def plain_summary(ledger, experiment_id: int, session_id: str | None = None, *, user: str) -> str:
    """What was tried, what it cost, what improved and by how much (with its uncertainty), for anyone to read."""
    from agent.report import best_evals, compare
    from tools.lineage import baseline_of, runs_in_order

    tree = ledger.experiment_tree(experiment_id, user=user)
    exp = tree["experiment"]
    runs = runs_in_order(tree)
    tried = (f"{len(runs)} training run{'s' if len(runs) != 1 else ''} ("
             + "; ".join(f"{r['method']} of {r['model'].rsplit('/', 1)[-1]}" + (f", {r['change']}" if r.get("change")
                                                                              else "") for r in runs[:4])
             + ("; …" if len(runs) > 4 else "") + ")") if runs else "no training run"
    spend = ledger.session_spend(session_id, user=user) if session_id else None
    cost = spend["total_usd"] if spend else ledger.experiment_cost(experiment_id, user=user)
    lines = [f"**In short:** experiment {exp['id']} is **{exp['status']}**. Tried {tried}, "
             f"{len(tree['evals'])} evaluation{'s' if len(tree['evals']) != 1 else ''}; it cost ${cost:.2f}."]
    for best in best_evals(tree):
        base = baseline_of(tree, best["task"])
        stderr = f" ± {best['stderr']:.3g}" if best.get("stderr") is not None else ""
        if base is None:
            lines.append(f"Best {best['task']} {best['metric']}: {best['value']:.3g}{stderr} (no baseline to compare).")
            continue
        base_err = f" ± {base['stderr']:.3g}" if base.get("stderr") is not None else ""
        lines.append(f"{best['task']} {best['metric']}: {base['value']:.3g}{base_err} before, {best['value']:.3g}"
                     f"{stderr} after (run {best['run_id']}): {compare(best, base)}.")
    lines.append("The full report is in the Experiments tab.")
    return " ".join(lines)
