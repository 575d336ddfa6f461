"""Agent memory that outlives the process: every smolagents step is written to the ledger as it ends, and a
session is rebuilt from it after a restart or a `kill -9` (`Session.resume`).

    recorder = MemoryRecorder(ledger, session_id, secrets, turn_of=lambda: session.turns)
    recorder.attach(agent)        # a step callback for ActionStep and PlanningStep; restores pending memory
    recorder.write_task(agent)    # as each turn starts
    memory = load_memory(ledger, session_id, user="local")   # RestoredMemory: steps, variables, turns

A step is stored as smolagents' own `step.dict()` without what would make storage grow with the square of
the session's length or hold opaque objects: the model input messages (the whole prompt again, at every
step), images and the model's raw API response. Secrets are redacted before anything is written; the
ledger row of a step is replaced when the same step is written again.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from smolagents.memory import ActionStep, MemoryStep, PlanningStep, TaskStep, ToolCall
from smolagents.models import ChatMessage
from smolagents.monitoring import Timing, TokenUsage
from smolagents.utils import AgentError

from agent.events import EVENT_KINDS, Event
from agent.session_jobs import reattach_jobs
from agent.target import Budget
from tools.ledger import Ledger
from tools.redact import redact
from tools.targets import parse_targets
from tools.untrusted import neutralise

# Within a turn: its variables, its task, then each step number's planning step before its action step.
KIND_ORDER = {"variables": 0, "task": 1, "planning": 2, "action": 3}


def step_record(step: MemoryStep) -> tuple[str, dict]:
    """(kind, JSON-able dict) of a TaskStep, PlanningStep or ActionStep; see the module docstring."""
    if isinstance(step, TaskStep):
        return "task", {"task": step.task}
    message = step.model_output_message
    lean = dataclasses.replace(message, raw=None) if message is not None else None
    if isinstance(step, PlanningStep):
        record = dataclasses.replace(step, model_input_messages=[], model_output_message=lean).dict()
        return "planning", {k: v for k, v in record.items() if k != "model_input_messages"}
    if isinstance(step, ActionStep):
        record = dataclasses.replace(step, model_input_messages=None, model_output_message=lean,
                                     observations_images=None).dict()
        return "action", {k: v for k, v in record.items() if k not in ("model_input_messages", "observations_images")}
    raise TypeError(f"not a persisted memory step: {type(step).__name__}")


def _timing(record: dict | None) -> Timing:
    record = record or {}
    return Timing(start_time=record.get("start_time") or 0.0, end_time=record.get("end_time"))


def _usage(record: dict | None) -> TokenUsage | None:
    return TokenUsage(record["input_tokens"], record["output_tokens"]) if record else None


def _message(record: dict | None) -> ChatMessage | None:
    return ChatMessage.from_dict(dict(record), token_usage=_usage(record.get("token_usage"))) if record else None


def _error(record: dict | None, logger) -> AgentError | None:
    """The step's AgentError again, of its own class when smolagents has one by that name."""
    if not record:
        return None
    import smolagents.utils

    cls = getattr(smolagents.utils, record.get("type", ""), None)
    cls = cls if isinstance(cls, type) and issubclass(cls, AgentError) else AgentError
    try:
        return cls(record.get("message", ""), logger)
    except TypeError:  # a subclass with another signature
        return AgentError(record.get("message", ""), logger)


def rebuild_step(kind: str, record: dict, logger) -> MemoryStep:
    """The smolagents step that `step_record` stored; `logger` is the new agent's (AgentError logs through it)."""
    if kind == "task":
        return TaskStep(task=record["task"])
    if kind == "planning":
        return PlanningStep(model_input_messages=[], model_output_message=_message(record["model_output_message"]),
                            plan=record["plan"], timing=_timing(record.get("timing")),
                            token_usage=_usage(record.get("token_usage")))
    if kind == "action":
        calls = [ToolCall(name=c["function"]["name"], arguments=c["function"]["arguments"], id=c["id"])
                 for c in record.get("tool_calls") or []]
        return ActionStep(
            step_number=record["step_number"], timing=_timing(record.get("timing")), tool_calls=calls or None,
            error=_error(record.get("error"), logger),
            model_output_message=_message(record.get("model_output_message")),
            model_output=record.get("model_output"), code_action=record.get("code_action"),
            observations=record.get("observations"), action_output=record.get("action_output"),
            token_usage=_usage(record.get("token_usage")), is_final_answer=bool(record.get("is_final_answer")))
    raise ValueError(f"unknown memory step kind {kind!r}")


def _plain_variables(state: dict) -> dict:
    """The agent's task variables that survive JSON (others cannot be handed to a new sandbox anyway)."""
    kept = {}
    for name, value in state.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        if not name.startswith("_"):
            kept[name] = value
    return kept


@dataclass
class RestoredMemory:
    """A session's memory as read back: `steps` in order, the task `variables`, how many `turns` it had."""

    rows: list[dict] = field(default_factory=list)
    variables: dict = field(default_factory=dict)
    turns: int = 0

    @property
    def action_steps(self) -> int:
        return sum(row["kind"] == "action" for row in self.rows)

    @property
    def last_turn_finished(self) -> bool:
        """Whether the last turn ended with an accepted final answer (else it was cut off or stopped)."""
        last = [row for row in self.rows if row["turn"] == self.turns - 1 and row["kind"] == "action"]
        return bool(last) and bool(last[-1]["step"].get("is_final_answer"))

    def steps(self, logger) -> list[MemoryStep]:
        return [rebuild_step(row["kind"], row["step"], logger) for row in self.rows if row["kind"] != "variables"]


def load_memory(ledger: Ledger, session_id: str, *, user: str) -> RestoredMemory:
    """The persisted memory of `user`'s session (empty for an unknown session or one with no steps yet)."""
    rows = sorted(ledger.memory_steps(session_id, user=user),
                  key=lambda r: (r["turn"], r["number"], KIND_ORDER.get(r["kind"], 9)))
    variables = {}
    for row in rows:
        if row["kind"] == "variables":
            variables.update(row["step"])
    return RestoredMemory(rows=rows, variables=variables, turns=max((r["turn"] for r in rows), default=-1) + 1)


class MemoryRecorder:
    """Writes a session's agent memory to the ledger step by step (a smolagents step callback).

    smolagents calls step callbacks before it appends the step to memory, and never for the TaskStep that
    starts a turn: the session calls `write_task` as the turn starts (the task and its variables are then
    stored even when the process dies during the first step). `restored` (set by `Session.resume`) is put
    back into the agent when it is attached.
    """

    def __init__(self, ledger: Ledger, session_id: str, secrets: list[str], turn_of: Callable[[], int]):
        self.ledger, self.session_id, self.secrets, self.turn_of = ledger, session_id, secrets, turn_of
        self.restored: RestoredMemory | None = None
        self._task_written: set[int] = set()

    def attach(self, agent) -> None:
        """Register on `agent` (after its other callbacks, so it stores what they left) and restore memory."""
        agent.step_callbacks.register(ActionStep, self)
        agent.step_callbacks.register(PlanningStep, self)
        if self.restored is not None:
            restore_into(agent, self.restored)
            self._task_written.update(range(self.restored.turns))

    def __call__(self, memory_step: MemoryStep, agent=None) -> None:
        turn = self.turn_of()
        if agent is not None:
            self._write_task(agent, turn)
        number = memory_step.step_number if isinstance(memory_step, ActionStep) else getattr(agent, "step_number", 0)
        self._write(turn, memory_step, number)

    def write_task(self, agent) -> None:
        """Write the turn's task and variables now, as it starts (smolagents has just appended its TaskStep)."""
        self._write_task(agent, self.turn_of())

    def _write_task(self, agent, turn: int) -> None:
        if turn in self._task_written:
            return
        task = next((s for s in reversed(agent.memory.steps) if isinstance(s, TaskStep)), None)
        if task is None:
            return
        variables = _plain_variables(agent.state)
        if variables:
            self.ledger.record_memory_step(self.session_id, turn, "variables", 0, redact(variables, self.secrets))
        self._write(turn, task, 0)
        self._task_written.add(turn)

    def _write(self, turn: int, step: MemoryStep, number: int) -> None:
        kind, record = step_record(step)
        self.ledger.record_memory_step(self.session_id, turn, kind, number, redact(record, self.secrets))


def restore_into(agent, memory: RestoredMemory) -> None:
    """Put restored steps and variables into a freshly built agent. A scripted model (agent/models.py) goes
    on after the replies it already gave, as a model reading the same memory would."""
    from agent.models import ScriptedModel

    agent.memory.steps = memory.steps(agent.logger)
    agent.state.update(memory.variables)
    model = getattr(agent.model, "_model", agent.model)
    if isinstance(model, ScriptedModel):
        model.calls = min(memory.action_steps, len(model.replies))


# Resuming a session: what `Session.resume` restores, re-attaches and tells the agent.
STATE_GONE = ("Variables and functions defined by earlier code actions are gone (the task's variables are there "
              "again); define again what you need.")


def _job_line(job: dict) -> str:
    extra = f", checkpoint {job['output_dir']}" if job.get("output_dir") else ""
    extra += f", score {job['value']}" if job.get("value") is not None else ""
    return f"job {job['job_id']} (run {job['run_id']}, {job['kind']}): {job['stage']}{extra}"


def _plain_job(job: dict) -> dict:
    """The facts of a re-attached job the agent is handed (no free text from its log)."""
    kept = {k: job[k] for k in ("job_id", "run_id", "kind", "stage", "value") if job.get(k) is not None}
    if job.get("output_dir"):
        kept["output_dir"] = neutralise(str(job["output_dir"]))[:300]
    return kept


@dataclass
class Resumed:
    """What `Session.resume` found: the memory put back, the jobs re-attached (`reattach_jobs`), the events it
    recorded (also in the ledger) and the session's goal and first message."""

    memory: RestoredMemory
    jobs: list[dict]
    events: list
    goal: str
    first_message: str

    @property
    def finished(self) -> bool:
        """Whether the last turn ended with a final answer; else it was cut off (or stopped) part-way."""
        return self.memory.last_turn_finished

    def continuation(self) -> tuple[str, dict]:
        """(text, variables) of the turn that carries on where the process stopped; the variable
        `resumed_jobs` holds the re-attached jobs' facts."""
        if self.memory.turns == 0:  # it stopped before its first turn was stored: start that turn again
            return self.first_message or self.goal, {}
        jobs = [_plain_job(job) for job in self.jobs]
        lines = ["The session was interrupted (its process stopped) and has been resumed from its saved memory. "
                 + STATE_GONE]
        if jobs:
            lines.append("Jobs that were running, re-attached and read again (also in the variable `resumed_jobs`): "
                         + "; ".join(_job_line(job) for job in jobs) + ".")
        lines.append(f"Carry on with the task from where it stopped: {self.goal}")
        return "\n".join(lines), ({"resumed_jobs": jobs} if jobs else {})


def _guard_of(experiment: dict | None) -> tuple[list | None, Budget | None]:
    """The targets and budget a headless run recorded on its experiment (RunGuard.start)."""
    if not experiment:
        return None, None
    targets = parse_targets(experiment["target"]) if experiment.get("target") else None
    budget = Budget(**json.loads(experiment["budget_json"])) if experiment.get("budget_json") else None
    return targets, budget


def resume_session(cls, session_id: str, config, ledger: Ledger, *, user: str, model=None, approve=None):
    """`Session.resume`: a Session of class `cls` on the stored session, ready for its next turn."""
    row = ledger.get_session(session_id, user=user)
    if row is None:
        raise ValueError(f"there is no session {session_id!r} of user {user!r}; `ml-intern sessions` lists yours")
    experiment = next((e for e in ledger.list_experiments(user=user) if e["session_id"] == session_id), None)
    targets, budget = _guard_of(experiment)
    session = cls(config, ledger=ledger, model=model, approve=approve, title=row["title"] or "", targets=targets,
                  budget=budget, user=user, session_id=session_id)
    memory = load_memory(ledger, session_id, user=user)
    session._memory.restored = memory
    session.turns = memory.turns
    stored = ledger.session_events(session_id, user=user)
    first = next((e["payload"].get("text", "") for e in stored if e["kind"] == "user"), "")
    if memory.last_turn_finished:
        session.final_answer = next((e["payload"].get("text") for e in reversed(stored)
                                     if e["kind"] == "final_answer"), None)
    if experiment is not None:
        session.ctx.experiment_id, session.ctx.goal = experiment["id"], experiment["goal"]
    elif first:
        session.ctx.goal = first

    events = []

    def collect(kind: str, payload: dict) -> None:
        data = dict(payload)
        if kind not in EVENT_KINDS:
            data["tool_event"], kind = kind, "notice"
        events.append(Event(kind, str(data.pop("text", "")), data=data))

    jobs = reattach_jobs(dataclasses.replace(session.ctx, emit=collect))
    steps = memory.action_steps
    text = f"Resumed session {session_id}: {memory.turns} turn(s) and {steps} step(s) of agent memory restored."
    if jobs:
        text += " Re-attached: " + "; ".join(_job_line(job) for job in jobs) + "."
    events.append(Event("notice", text, data={"resumed": True, "turns": memory.turns, "steps": steps,
                                              "jobs": [_plain_job(job) for job in jobs]}))
    for event in events:
        session._push(event, stream=False)
    session.resumed = Resumed(memory, jobs, events, session.ctx.goal, first)
    return session
