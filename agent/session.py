"""A Session runs the agent's turns on a worker thread and yields typed events.

The app and the CLI consume the same `Session.run(text)` iterator; every event (except
streaming deltas) is also written to the ledger, with secrets redacted first and every string capped
(agent/caps.py); what a step hands back to the LLM is redacted and capped by the first step callback.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

from smolagents.agents import ActionOutput, ToolOutput
from smolagents.memory import ActionStep, FinalAnswerStep, PlanningStep, ToolCall
from smolagents.models import ChatMessageStreamDelta

from agent.builder import build_agent
from agent.caps import bound_step, cap, cap_values
from agent.config import AgentConfig
from agent.events import EVENT_KINDS, PERSISTED_KINDS, Event
from agent.target import Budget, RunGuard, goal_text
from tools.backends.jobs import make_job_backend
from tools.context import ToolContext
from tools.ledger import LOCAL_USER, Ledger
from tools.redact import redact
from tools.targets import Target

_END = object()
APPROVAL_TIMEOUT_S = 15 * 60


def thought_of(model_output: str) -> str:
    """The prose before the first code block of a model reply."""
    text = (model_output or "").split("<code>")[0]
    return text.replace("Thought:", "", 1).strip()


class Session:
    """One conversation with the agent; turns share the agent's memory.

    With `targets` or a `budget` (headless runs) a `RunGuard` holds the agent to them: the first turn's
    text tells the agent both, a final answer is refused while a target is unmet, and the agent is
    stopped when the budget is spent. `final_answer` keeps the latest accepted answer.

    `user` owns the session and everything its tools record, and its tools read only that user's rows: the
    signed-in Hugging Face username on a Space, `LOCAL_USER` ("local") for the one local user.
    """

    def __init__(self, config: AgentConfig, ledger: Ledger | None = None, model=None,
                 approve: Callable[[str, dict], bool] | None = None, title: str = "",
                 targets: list[Target] | None = None, budget: Budget | None = None, user: str = LOCAL_USER):
        self.config = config
        self.ledger = ledger or Ledger.in_dir(config.settings.data_dir)
        self.id = self.ledger.create_session(title=title, user=user, config={
            "backend": config.backend, "model_id": config.model_id,
            "compute": config.settings.resolved_compute_backend, "max_steps": config.max_steps})
        self._model = model
        self._agent = None
        self._queue: queue.Queue = queue.Queue()
        self.ctx = ToolContext(settings=config.settings, ledger=self.ledger,
                               jobs=make_job_backend(config.settings), emit=self._emit_from_tool,
                               auto_approve=config.auto_approve, approve=approve or self._ask_in_stream,
                               session_id=self.id, user=user)
        self._approval = threading.Event()
        self._approved = False
        self.turns = 0
        self.final_answer: str | None = None
        self.guard = None
        if targets is not None or budget is not None:
            self.guard = RunGuard(self.ctx, targets or [], budget or Budget())

    @property
    def is_scripted(self) -> bool:
        return self.config.backend == "scripted"

    def run(self, text: str, variables: dict | None = None) -> Iterator[Event]:
        """Run one turn; yield its events as they happen. Never raises for agent failures.

        `variables` are made available by name to the agent's code actions.
        """
        if self.turns == 0:
            self.ctx.goal = text
        self._push(Event("user", text))
        task = text
        if self.guard is not None and self.turns == 0:
            experiment_id = self.guard.start()
            task = goal_text(text, self.guard.targets, self.guard.budget)
            if task != text:
                self._push(Event("notice", task[len(text):].strip(), data={
                    "experiment_id": experiment_id, "targets": [str(t) for t in self.guard.targets],
                    "budget": str(self.guard.budget)}))
        worker = threading.Thread(target=self._run_turn, args=(task, variables), daemon=True)
        worker.start()
        while True:
            event = self._queue.get()
            if event is _END:
                break
            yield event
        worker.join()
        self.turns += 1

    def stop(self) -> None:
        """Ask the agent to stop after the current step."""
        if self._agent is not None:
            self._agent.interrupt()

    def answer_approval(self, approved: bool) -> None:
        """The user's answer to the pending approval event (from the app's Approve/Reject buttons)."""
        self._approved = approved
        self._approval.set()

    def _ask_in_stream(self, action: str, details: dict) -> bool:
        """Emit an approval event and wait (bounded) for `answer_approval`; no answer means no."""
        self._approval.clear()
        self._approved = False
        self._push(Event("approval", f"Approve {action}?", data={"action": action, **details}))
        answered = self._approval.wait(APPROVAL_TIMEOUT_S)
        return answered and self._approved

    def _run_turn(self, text: str, variables: dict | None) -> None:
        try:
            if self._agent is None:
                guard = self.guard
                self._agent = build_agent(
                    self.config, self.ctx, self._model,
                    step_callbacks=[self._bound_step] + ([guard.after_step] if guard and guard.budget else []),
                    final_answer_checks=[guard.target_is_met_or_unreachable] if guard and guard.targets else None)
            step_had_code = False
            for item in self._agent.run(text, stream=True, reset=self.turns == 0,
                                          additional_args=variables):
                if isinstance(item, ChatMessageStreamDelta):
                    if item.content:
                        self._push(Event("delta", item.content))
                elif isinstance(item, ToolCall):
                    step_had_code = True
                    thought = thought_of(self._agent.model.last_output)
                    if thought:
                        self._push(Event("thought", thought, step=self._agent.step_number))
                    self._push(Event("code", str(item.arguments), step=self._agent.step_number))
                elif isinstance(item, ActionStep):
                    self._push_step(item, step_had_code)
                    step_had_code = False
                elif isinstance(item, PlanningStep):
                    self._push(Event("thought", item.plan, data={"planning": True}))
                elif isinstance(item, FinalAnswerStep):
                    self.final_answer = str(item.output)
                    self._push(Event("final_answer", self.final_answer))
                elif isinstance(item, (ActionOutput, ToolOutput)):
                    continue
        except Exception as exc:  # the user sees what failed; the session stays usable
            if not (self.guard and self.guard.stop_reason and self._agent and self._agent.interrupt_switch):
                self._push(Event("error", f"{type(exc).__name__}: {exc}"))
        finally:
            self._queue.put(_END)

    def _bound_step(self, step: ActionStep, agent=None) -> None:
        """smolagents step callback, before any other: what the step hands back to the LLM is redacted and capped."""
        bound_step(step, self.config.max_observation_chars, self.config.secrets)

    def _push_step(self, step: ActionStep, had_code: bool) -> None:
        if not had_code and step.model_output:
            self._push(Event("thought", thought_of(str(step.model_output)), step=step.step_number))
        if step.observations and not step.is_final_answer:
            self._push(Event("tool_result", step.observations, step=step.step_number,
                             data={"duration_s": step.timing.duration}))
        if step.error is not None:
            self._push(Event("error", str(step.error), step=step.step_number))
        if step.token_usage is not None:
            usage = {"input_tokens": step.token_usage.input_tokens,
                     "output_tokens": step.token_usage.output_tokens}
            usage.update(getattr(self._agent.model, "last_cache_usage", None) or {})
            text = f"{usage['input_tokens']} in / {usage['output_tokens']} out"
            self._push(Event("token_usage", text, data=usage, step=step.step_number))

    def _emit_from_tool(self, kind: str, payload: dict) -> None:
        data = dict(payload)
        if kind not in EVENT_KINDS:
            data["tool_event"], kind = kind, "notice"
        self._push(Event(kind, str(data.pop("text", "")), data=data))

    def _push(self, event: Event) -> None:
        secrets, limit = self.config.secrets, self.config.max_event_chars
        event.text = cap(redact(event.text, secrets), limit)
        event.data = cap_values(redact(event.data, secrets), limit)
        if event.kind in PERSISTED_KINDS:
            self.ledger.record_event(self.id, event.kind, event.to_dict())
        self._queue.put(event)
