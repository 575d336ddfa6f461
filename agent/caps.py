"""Size caps with a visible note: no string of any size reaches the LLM or the ledger whole.

A code action can print a string of any size, pass one to a tool (whose error may quote it), or write
one into its own code. Two bounds hold, each a setting of `AgentConfig`:

- `max_observation_chars`: what a finished step hands back to the LLM (its observations, its error,
  and its own code as smolagents replays it: `model_output` and the "Calling tools" echo) is cut by
  `bound_step`, the session's first step callback, before the next model call reads the memory;
- `max_event_chars`: each string of an event (its text and every string in its data) before the
  event is shown or stored in the ledger.

Secrets are masked before a text is cut, so that a cut never leaves half a secret behind.
"""

from __future__ import annotations

from typing import Any

from smolagents.memory import ActionStep

from tools.redact import redact


def cut_note(cut: int) -> str:
    return f"… [cut {cut:,} characters] …"


def cap(text: str, limit: int) -> str:
    """`text` whole if it has at most `limit` characters, else its first and last `limit // 2` characters
    around a note saying how many were cut."""
    if len(text) <= limit:
        return text
    head = limit // 2
    tail = text[len(text) - (limit - head):]
    return f"{text[:head]}\n{cut_note(len(text) - limit)}\n{tail}"


def cap_values(value: Any, limit: int) -> Any:
    """`value` with every string in it (through dicts, lists and tuples) capped at `limit` characters."""
    if isinstance(value, str):
        return cap(value, limit)
    if isinstance(value, dict):
        return {k: cap_values(v, limit) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(cap_values(v, limit) for v in value)
    return value


def bound_step(step: ActionStep, limit: int, secrets: list[str]) -> None:
    """Redact and cap, in place, what `step` gives back to the LLM: observations, error, model output, code."""
    def bound(text: str) -> str:
        return cap(redact(text, secrets), limit)

    if isinstance(step.observations, str):
        step.observations = bound(step.observations)
    if step.error is not None:
        step.error.message = bound(str(step.error.message))
        step.error.args = (step.error.message,)
    if isinstance(step.model_output, str):
        step.model_output = bound(step.model_output)
    if isinstance(step.code_action, str):
        step.code_action = bound(step.code_action)
    for call in step.tool_calls or []:
        if isinstance(call.arguments, str):
            call.arguments = bound(call.arguments)
