"""Events as chat messages a person can read: collapsible steps, readable observations, rounded numbers,
errors in plain words, job cards that end in their final state.

    messages = []
    for event in events:
        render_event(event, messages)   # adds or updates gr.ChatMessage items in place
"""

from __future__ import annotations

import ast
import re

import gradio as gr

from agent.events import Event

TITLES = {"thought": "💭 Thought", "code": "⌨ Code", "tool_result": "↳ Observation",
          "job_update": "⚙ Job", "eval_result": "📊 Evaluation", "run_created": "📝 Run",
          "preflight": "🔎 Preflight", "diagnosis": "🩺 Diagnosis", "notice": "ℹ Notice"}
# Long decimals in text (0.9916666666666667), not versions (1.2.3) nor parts of names.
LONG_DECIMAL = re.compile(r"(?<![\w.])-?\d+\.\d{4,}(?:[eE][-+]?\d+)?(?!\w|\.\w)")
EXCEPTION_PREFIX = re.compile(r"^(?:[A-Z]\w*(?:Error|Exception)|Error in code parsing):\s*")
BOILERPLATE = re.compile(r"^Execution logs:\n?|\n?Last output from code snippet:\n?None\s*$")
LAST_OUTPUT = "Last output from code snippet:"
# Errors that a setting fixes (ui.chat then shows the "Open Settings" button).
NEEDS_SETTINGS = re.compile(r"api[_ ]?key|anthropic|authenticat|unauthori[sz]ed|\b401\b|model id|base url|"
                            r"hf auth login|HF_TOKEN|\btoken\b", re.I)
# Notices shown open, not folded into a step: the end-of-turn summary and what a stop did.
OPEN_NOTICES = ("summary", "stopped", "demo")
STOPPED = re.compile(r"interrupt", re.I)


def num(value, digits: int = 3) -> str:
    """A number as it means something: 3 significant digits for floats, integers as they are."""
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    return f"{value:.{digits}g}"


def round_numbers(text: str) -> str:
    return LONG_DECIMAL.sub(lambda m: num(float(m.group())), text)


def _inline(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_inline(v)}" for k, v in value.items()) or "{}"
    if isinstance(value, list | tuple):
        shown = ", ".join(_inline(v) for v in value[:8])
        return f"[{shown}{', …' if len(value) > 8 else ''}]"
    if isinstance(value, str):
        return value if len(value) <= 120 else value[:117] + "…"
    return num(value)


def dict_markdown(value: dict) -> str:
    """A dict as a compact markdown list: one `key: value` line each, nested values inline."""
    lines = []
    for key, item in value.items():
        if isinstance(item, str) and "\n" in item:
            lines.append(f"- **{key}**:\n```\n{item.strip()[-1500:]}\n```")
        else:
            lines.append(f"- **{key}**: {_inline(item)}")
    return "\n".join(lines)


def readable_observation(text: str) -> str:
    """What a code action printed, as markdown: no executor boilerplate, dicts as lists, numbers rounded."""
    text = BOILERPLATE.sub("", text or "").strip()
    if LAST_OUTPUT in text:
        logs, _, last = text.partition(LAST_OUTPUT)
        text = logs.strip() + ("\n" + last.strip() if last.strip() not in ("", "None") else "")
    parts, plain = [], []
    for line in text.splitlines():
        value = _literal(line)
        if isinstance(value, dict) and value:
            if plain:
                parts.append(_code_block(plain))
                plain = []
            parts.append(dict_markdown(value))
        else:
            plain.append(line)
    if plain and any(line.strip() for line in plain):
        parts.append(_code_block(plain))
    return "\n\n".join(parts)


def _literal(line: str):
    line = line.strip()
    if not (line.startswith("{") and line.endswith("}")):
        return None
    try:
        return ast.literal_eval(line)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def _code_block(lines: list[str]) -> str:
    return "```\n" + round_numbers("\n".join(lines).strip()) + "\n```"


def plain_error(text: str) -> str:
    """An error without its exception class, as a sentence."""
    text = EXCEPTION_PREFIX.sub("", (text or "").strip())
    return (text[:1].upper() + text[1:]) if text else "Something went wrong."


def needs_settings(text: str) -> bool:
    """Whether a setting fixes the error (a key, a token, a model id, an address)."""
    return bool(NEEDS_SETTINGS.search(text or ""))


def eval_line(d: dict) -> str:
    label = "baseline" if d.get("is_baseline") else "checkpoint"
    stderr = f" ± {num(d['stderr'])}" if d.get("stderr") is not None else ""
    n = f" (n={d['n_samples']})" if d.get("n_samples") else ""
    return f"**{label}** `{d.get('task')}` {d.get('metric')} = **{num(d.get('value'))}**{stderr}{n}"


def job_line(d: dict, text: str = "") -> str:
    progress = d.get("progress") or {}
    step = f" · step {progress['step']}/{progress.get('max_steps') or '?'}" if progress.get("step") else ""
    eta = progress.get("eta_minutes")
    eta_text = f" · ETA {num(float(eta))} min" if isinstance(eta, int | float) and eta else ""
    loss = (d.get("latest_metrics") or {}).get("loss")
    loss_text = f" · loss {num(loss)}" if isinstance(loss, float) else ""
    message = d.get("message") or text
    return (f"job `{d.get('job_id')}` (run {d.get('run_id', '?')}) on {d.get('backend', '?')}: "
            f"**{d.get('stage')}**{step}{eta_text}{loss_text}" + (f"\n\n{message}" if message else ""))


def run_line(d: dict, text: str) -> str:
    parts = [f"{k} `{d[k]}`" for k in ("method", "model", "dataset") if d.get(k)]
    head = f"run {d.get('run_id', '?')}" + (": " + ", ".join(parts) if parts else "")
    return head + (f"\n\n{text}" if text and text not in head else "")


def _find(messages: list[gr.ChatMessage], message_id: str) -> gr.ChatMessage | None:
    return next((m for m in reversed(messages) if m.metadata.get("id") == message_id), None)


def render_event(event: Event, messages: list[gr.ChatMessage]) -> None:
    """Add or update the chat messages for one event (in place); token counts and empty events add nothing."""
    kind, d = event.kind, event.data
    if kind == "token_usage":
        return
    if kind == "user":
        messages.append(gr.ChatMessage(role="user", content=event.text))
        return
    if kind == "approval":
        messages.append(gr.ChatMessage(role="assistant", content=approval_paragraph(d), metadata={
            "title": "⏸ Approval needed", "status": "done"}))
        return
    if kind == "delta":
        draft = messages[-1] if messages and messages[-1].metadata.get("id") == "streaming" else None
        if draft is not None:
            draft.content += event.text
        else:
            messages.append(gr.ChatMessage(role="assistant", content=event.text, metadata={
                "title": "💭 Thinking…", "id": "streaming", "status": "pending"}))
        return
    if messages and messages[-1].metadata.get("id") == "streaming":
        messages.pop()
    if kind in ("tool_result", "error", "final_answer"):
        _finish_pending(messages, d.get("duration_s"))
    if kind == "final_answer":
        messages.append(gr.ChatMessage(role="assistant", content=round_numbers(event.text)))
        return
    if kind == "error":
        messages.append(gr.ChatMessage(role="assistant", content=error_content(event.text)))
        return
    if kind == "notice" and any(d.get(key) for key in OPEN_NOTICES):
        icon = "⏹ " if d.get("stopped") else ""
        messages.append(gr.ChatMessage(role="assistant", content=icon + round_numbers(event.text)))
        return
    step = f" · step {event.step}" if event.step is not None else ""
    metadata = {"title": TITLES.get(kind, kind) + step, "status": "done"}
    if kind == "code":
        content = f"```python\n{event.text}\n```"
        metadata.update(status="pending", id=f"code-{len(messages)}")
    elif kind == "tool_result":
        content = readable_observation(event.text)
    elif kind == "eval_result":
        content = eval_line(d)
    elif kind == "run_created":
        content = run_line(d, event.text)
    elif kind == "job_update":
        content = job_line(d, event.text)
        metadata["id"] = f"job-{d.get('job_id')}"
        card = _find(messages, metadata["id"])
        if card is not None:  # one card per job, updated until its final state
            card.content = content
            return
    else:
        content = round_numbers(event.text) if event.text else (dict_markdown(d) if d else "")
    if not content.strip():
        return
    messages.append(gr.ChatMessage(role="assistant", content=content, metadata=metadata))


def error_content(text: str) -> str:
    if STOPPED.search(text or "") and len(text) < 200:
        return "⏹ **Stopped.** The turn ended between steps; jobs already running go on (see the Jobs tab)."
    hint = ("\n\nFix it in **Settings** (button below), or try the offline demo, which needs no key."
            if needs_settings(text) else "")
    return f"✗ **{plain_error(text)}**{hint}"


def approval_paragraph(d: dict) -> str:
    """One paragraph before a paid action: what will happen and what it may cost."""
    action = d.get("action", "a paid action")
    what = f"train run {d['run_id']}" if action == "submit_job" and d.get("run_id") else action.replace("_", " ")
    flavor = f" on **{d['flavor']}**" if d.get("flavor") else ""
    minutes = f" for at most {num(float(d['timeout_minutes']))} min" if d.get("timeout_minutes") else ""
    cost = d.get("max_cost_usd")
    cost_text = f", costing at most **${cost:.2f}**" if isinstance(cost, int | float) else ""
    return (f"ml-intern wants to {what}{flavor}{minutes}{cost_text}, billed to the Hugging Face account whose "
            "token runs the job. Read the script and the details in the approval card below, then **Approve** "
            "or **Reject** (say why: the agent reads your reason).")


def _finish_pending(messages: list[gr.ChatMessage], duration: float | None) -> None:
    for message in reversed(messages):
        if message.metadata.get("status") == "pending":
            message.metadata["status"] = "done"
            if duration is not None:
                message.metadata["duration"] = round(duration, 2)
            return
