"""Loop detection, on in every session: an agent that repeats itself is told, then refused, then stopped.

A step repeats an earlier one when, within the last `window` steps,
- the same code (normalised: comments and blank lines dropped, spaces collapsed) failed again,
- the same error came back (numbers and ids masked), whatever the code, or
- the same code returned the same result (timestamps and durations masked): polling a job whose
  progress moves is not a repeat, polling one that is stuck is.

Escalation, by how many times the pattern occurred (`note_at`, `stop_at`):
1. at `note_at`, a note in the step's observation (the next prompt) says what is repeating and asks the
   agent to change course; the user sees "The agent was repeating itself …";
2. from then on the same code is refused before it runs (the step's error says so), while the pattern is
   still in the window;
3. at `stop_at` the agent is interrupted, with a report of what it repeated.
When the agent does something else after a note, the user reads that it changed course.
Notices go out through `emit("notice", {"text", "guard": "loop", "level"})`.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from smolagents.memory import ActionStep, TaskStep

NUMBERS_AND_IDS = re.compile(r"\b[0-9a-f]{6,}\b|\d+(?:\.\d+)?", re.I)
TIMES = re.compile(r"\d{4}-\d\d-\d\d[T ][\d:.]+(?:Z|[+-]\d\d:?\d\d)?|\b\d\d?:\d\d(?::\d\d(?:\.\d+)?)?\b|"
                   r"\b\d+(?:\.\d+)?\s*(?:ms|s|sec|secs|seconds|m|min|mins|minutes|h|hours)\b(?:\s+ago)?|"
                   r"\b\d+m\d+s\b|(?:elapsed|duration|uptime|waited)[\s:=]+\S+", re.I)
LEVELS = ("note", "refused", "stop", "changed_course")
Emit = Callable[[str, dict], None]


def _squash(text: str) -> str:
    return " ".join(text.split())


def normalise_code(code: str | None) -> str:
    lines = (_squash(line.split("  #")[0]) for line in (code or "").splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("#"))


def normalise_error(error) -> str:
    return NUMBERS_AND_IDS.sub("#", _squash(str(error)))[:500] if error is not None else ""


def normalise_result(text: str | None) -> str:
    return _squash(TIMES.sub("<t>", text or ""))


class LoopRefused(RuntimeError):
    """Raised in place of running code the loop guard refuses; smolagents hands the message to the LLM."""


@dataclass
class Attempt:
    code: str
    error: str
    result: str


class _GuardedExecutor:
    """The agent's executor, asking the guard before it runs a code action; everything else passes through."""

    def __init__(self, executor, guard: LoopGuard, agent):
        self._executor, self._guard, self._agent = executor, guard, agent

    def __call__(self, code_action: str):
        self._guard.follow_turn(self._agent)
        refusal = self._guard.refusal(code_action)
        if refusal:
            raise LoopRefused(refusal)
        return self._executor(code_action)

    def __getattr__(self, name):
        return getattr(self._executor, name)


def _first_line(code: str, limit: int = 80) -> str:
    line = code.splitlines()[0] if code else "(no code)"
    return line if len(line) <= limit and line == code else line[:limit] + " …"


class LoopGuard:
    """smolagents step callback that detects and breaks loops (see the module docstring)."""

    def __init__(self, emit: Emit | None = None, window: int = 12, note_at: int = 3, stop_at: int = 6):
        if not 2 <= note_at < stop_at:
            raise ValueError("need 2 <= note_at < stop_at")
        self.emit = emit or (lambda kind, payload: None)
        self.window, self.note_at, self.stop_at = window, note_at, stop_at
        self.history: deque[Attempt] = deque(maxlen=window)
        self._task = None  # the task (smolagents TaskStep) of the turn the history belongs to
        self.noted: str | None = None  # what the standing note is about, until the agent changes course
        self._refusal_told = False
        self.stopped: str | None = None  # the report, once the guard stopped the agent

    def __call__(self, memory_step, agent=None) -> None:
        if not isinstance(memory_step, ActionStep) or memory_step.is_final_answer and memory_step.error is None:
            return
        if agent is not None:
            if not isinstance(agent.python_executor, _GuardedExecutor):
                agent.python_executor = _GuardedExecutor(agent.python_executor, self, agent)
            self.follow_turn(agent)
        attempt = Attempt(normalise_code(memory_step.code_action), normalise_error(memory_step.error),
                          normalise_result(memory_step.observations))
        self.history.append(attempt)
        step = memory_step.step_number
        if "Loop guard refused" in attempt.error:
            repeats, what = sum(a.code == attempt.code for a in self.history), self.noted or "the same code"
            if not self._refusal_told:
                self._refusal_told = True
                self._notice("refused", step, f"The agent was repeating itself ({what}); the repeat was refused.")
        else:
            repeats, what = self._repeats(attempt)
        if repeats >= self.stop_at:
            self._stop(memory_step, agent, what, repeats)
        elif repeats >= self.note_at:
            self._note(memory_step, what, repeats)
        elif self.noted is not None:
            self.noted, self._refusal_told = None, False
            self._notice("changed_course", step, "The agent was repeating itself and changed course.")

    def follow_turn(self, agent) -> None:
        """Start afresh when `agent` starts a new turn: the user may have changed something."""
        task = next((s for s in reversed(agent.memory.steps) if isinstance(s, TaskStep)), None)
        if task is not self._task:
            self._task, self.noted, self.stopped, self._refusal_told = task, None, None, False
            self.history.clear()

    def _repeats(self, attempt: Attempt) -> tuple[int, str]:
        """How many times, in the window, the pattern `attempt` belongs to occurred, and what it is."""
        counts = []
        if attempt.error:
            counts.append((sum(a.code == attempt.code and bool(a.error) for a in self.history),
                           f"the same code failed: {_first_line(attempt.code)}"))
            counts.append((sum(a.error == attempt.error for a in self.history),
                           f"the same error came back: {attempt.error[:120]}"))
        else:
            counts.append((sum(a.code == attempt.code and not a.error and a.result == attempt.result
                               for a in self.history),
                           f"the same code gave the same result: {_first_line(attempt.code)}"))
        return max(counts, key=lambda c: c[0])

    def refusal(self, code_action: str) -> str | None:
        """Why `code_action` may not run now, or None: it is a repeat the agent was already told about."""
        if self.noted is None:
            return None
        code = normalise_code(code_action)
        failed = sum(a.code == code and bool(a.error) for a in self.history)
        unchanged = max((sum(b.code == code and not b.error and b.result == a.result for b in self.history)
                         for a in self.history if a.code == code and not a.error), default=0)
        times = max(failed, unchanged)
        if times < self.note_at:
            return None
        outcome = "failed" if failed >= unchanged else "returned the same result"
        return (f"Loop guard refused this code: it already ran {times} times in the last {self.window} steps "
                f"and {outcome} each time. Running it again will not help. Change course: read the last error "
                "or result, try a different approach, or call final_answer explaining what blocks you.")

    def _note(self, step: ActionStep, what: str, repeats: int) -> None:
        first, self.noted = self.noted is None, what
        note = (f"\n\nLoop guard: you are repeating yourself ({what}; {repeats} times in the last {self.window} "
                f"steps). Do not run it again (it will be refused); change course: try a different approach, "
                f"or call final_answer explaining what blocks you. At {self.stop_at} repeats the run is stopped.")
        step.observations = (step.observations or "").rstrip() + note
        if first:
            self._notice("note", step.step_number,
                         f"The agent was repeating itself ({what}); it was asked to change course.")

    def _stop(self, step: ActionStep, agent, what: str, repeats: int) -> None:
        self.stopped = (f"The agent was repeating itself and was stopped: {what} ({repeats} times in the last "
                        f"{self.window} steps, after it was asked to change course). Look at the last error, then "
                        "send a new message with a different approach.")
        step.observations = (step.observations or "").rstrip() + "\n\nLoop guard: " + self.stopped
        self._notice("stop", step.step_number, self.stopped)
        if agent is not None:
            agent.interrupt()

    def _notice(self, level: str, step: int, text: str) -> None:
        self.emit("notice", {"text": text, "guard": "loop", "level": level, "step": step})
