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
from agent.context_policy import ContextPolicy, pinned_state
from agent.events import EVENT_KINDS, PERSISTED_KINDS, Event
from agent.llm_faults import plain_error
from agent.loop_guard import LoopGuard
from agent.persistence import MemoryRecorder, Resumed, resume_session
from agent.session_jobs import stop_event
from agent.target import Budget, RunGuard, SpendMeter, goal_text
from tools.backends.jobs import make_job_backend
from tools.context import ToolContext
from tools.errors import ToolError
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
                 targets: list[Target] | None = None, budget: Budget | None = None, user: str = LOCAL_USER,
                 session_id: str | None = None):
        self.config = config
        self.ledger = ledger or Ledger.in_dir(config.settings.data_dir)
        self.id = session_id or self.ledger.create_session(title=title, user=user, config={
            "backend": config.backend, "model_id": config.model_id,
            "compute": config.settings.resolved_compute_backend, "max_steps": config.max_steps,
            "scripted_plan": str(config.scripted_plan) if config.scripted_plan else None,
            "auto_approve": config.auto_approve})
        self._memory = MemoryRecorder(self.ledger, self.id, config.secrets, turn_of=lambda: self.turns)
        self.resumed: Resumed | None = None  # set by `resume`: what was restored and re-attached
        self._stop_request: str | None = None  # "leave" or "cancel" (the session's running jobs), until handled
        self._stop_lock = threading.Lock()
        self._turn_active = False
        self._model = model
        self._agent = None
        self._queue: queue.Queue = queue.Queue()
        self.ctx = ToolContext(settings=config.settings, ledger=self.ledger,
                               jobs=make_job_backend(config.settings), emit=self._emit_from_tool,
                               auto_approve=config.auto_approve, approve=approve or self._ask_in_stream,
                               session_id=self.id, user=user,
                               budget_usd=budget.usd if budget and budget.usd is not None else config.budget_usd)
        self.context_policy = ContextPolicy(state=lambda: redact(pinned_state(self.ctx), self.config.secrets))
        self.loop_guard = LoopGuard(emit=self.ctx.emit)
        self._approval = threading.Event()
        self._approved = False
        self._rejection = ""  # what the user said when rejecting the pending approval
        self.turns = 0
        self.final_answer: str | None = None
        self.guard = None
        if targets is not None or budget is not None:
            self.guard = RunGuard(self.ctx, targets or [], budget or Budget())
        self.meter = SpendMeter(self.ctx, stops=self.guard is None or self.guard.budget.usd is None)

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
        self._turn_active = True
        self.ctx.stop_requested.clear()
        worker = threading.Thread(target=self._run_turn, args=(task, variables), daemon=True)
        try:  # the turn's first events go out before its agent (and sandbox) starts: others' first events wait less
            while not self._queue.empty():
                yield self._queue.get()
        except GeneratorExit:  # nobody follows the turn: it never starts
            self._turn_active = False
            raise
        worker.start()
        while True:
            event = self._queue.get()
            if event is _END:
                break
            yield event
        worker.join()
        self.turns += 1

    def stop(self, cancel_jobs: bool = False) -> Event | None:
        """Stop the turn between steps, once the current tool returns (a wait on a job or an approval ends at once);
        a notice event in the turn's stream says so. With `cancel_jobs` the session's running jobs are canceled,
        else left running. Without a turn running, only the jobs are handled and the notice is returned (and
        stored). Safe to call from any thread."""
        with self._stop_lock:
            self._stop_request = "cancel" if cancel_jobs or self._stop_request == "cancel" else "leave"
        self.ctx.stop_requested.set()
        self._approval.set()  # a pending approval is answered no
        if self._agent is not None:
            self._agent.interrupt()
        return None if self._turn_active else self._finish_stop(in_stream=False)

    @classmethod
    def resume(cls, session_id: str, config: AgentConfig, ledger: Ledger, user: str = LOCAL_USER, model=None,
               approve: Callable[[str, dict], bool] | None = None) -> Session:
        """`user`'s session `session_id` again, after a restart or a `kill -9`: its agent memory, experiment, target
        and budget restored, its running jobs re-attached and stuck runs reconciled (agent/persistence.py).
        `resumed` says what was found; `resumed.continuation()` is the turn that carries on an unfinished one."""
        return resume_session(cls, session_id, config, ledger, user=user, model=model, approve=approve)

    def _finish_stop(self, in_stream: bool) -> Event | None:
        """Handle a stop request once: cancel or leave the jobs, and say so (in the stream, or only in the ledger)."""
        with self._stop_lock:
            request, self._stop_request = self._stop_request, None
        if request is None:
            return None
        event = stop_event(self.ctx, cancel_jobs=request == "cancel",
                           steps=self._agent.step_number - 1 if self._agent is not None and in_stream else None)
        self._push(event, stream=in_stream)
        return event

    def answer_approval(self, approved: bool, reason: str = "") -> None:
        """The user's answer to the pending approval event (from the app's Approve/Reject buttons); a rejection's
        `reason` reaches the agent as the refused tool's error."""
        self._approved, self._rejection = approved, redact(reason.strip(), self.config.secrets)[:500]
        self._approval.set()

    def _ask_in_stream(self, action: str, details: dict) -> bool:
        """Emit an approval event and wait (bounded) for `answer_approval`; no answer (or a stop) means no."""
        if self.ctx.stop_requested.is_set():
            return False
        self._approval.clear()
        self._approved, self._rejection = False, ""
        self._push(Event("approval", f"Approve {action}?", data={"action": action, **details}))
        answered = self._approval.wait(APPROVAL_TIMEOUT_S)
        if answered and not self._approved and self._rejection:
            raise ToolError(f"the user rejected {action} and said: {self._rejection!r}. Nothing was done; follow "
                            "what they said, or ask them.")
        return answered and self._approved

    def _run_turn(self, text: str, variables: dict | None) -> None:
        try:
            if self._agent is None:
                guard = self.guard
                self._agent = build_agent(
                    self.config, self.ctx, self._model,
                    step_callbacks=[self._bound_step, self.meter.after_step]
                    + ([guard.after_step] if guard and guard.budget else [])
                    + [self.loop_guard, self.context_policy],
                    final_answer_checks=[guard.target_is_met_or_unreachable] if guard and guard.targets else None)
                self._memory.attach(self._agent)
                self.context_policy.attach(self._agent)
            if refusal := self.meter.refusal(self._agent.model.model_id):
                self._push(Event("error", refusal))
                return
            step_had_code = False
            stream = self._agent.run(text, stream=True, reset=self.turns == 0, additional_args=variables)
            self._memory.write_task(self._agent)
            for item in stream:
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
            stopped = (self._stop_request is not None or (self.guard and self.guard.stop_reason)
                       or self.loop_guard.stopped or self.meter.stop_reason)
            if not (stopped and self._agent and self._agent.interrupt_switch):
                self._push(Event("error", plain_error(exc)))
        finally:
            self._turn_active = False
            try:
                self._finish_stop(in_stream=True)
                self.ledger.flush()  # the turn's events are stored for every reader when it ends
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
            usage.update(self.meter.figures(step))  # call_usd, spent_usd, cap_usd (agent/target.py SpendMeter)
            text = f"{usage['input_tokens']} in / {usage['output_tokens']} out"
            self._push(Event("token_usage", text, data=usage, step=step.step_number))

    def _emit_from_tool(self, kind: str, payload: dict) -> None:
        data = dict(payload)
        if kind not in EVENT_KINDS:
            data["tool_event"], kind = kind, "notice"
        self._push(Event(kind, str(data.pop("text", "")), data=data))

    def _push(self, event: Event, stream: bool = True) -> None:
        """Redact, cap and store the event; into the turn's stream too unless `stream` is False (no turn running)."""
        secrets, limit = self.config.secrets, self.config.max_event_chars
        event.text = cap(redact(event.text, secrets), limit)
        event.data = cap_values(redact(event.data, secrets), limit)
        if event.kind in PERSISTED_KINDS:
            self.ledger.record_event(self.id, event.kind, event.to_dict())
        if stream:
            self._queue.put(event)
