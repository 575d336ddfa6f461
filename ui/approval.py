"""The approval card: shown only while a paid action waits, with what it would run and what it may cost.

The script (viewable), flavor, GPUs, timeout, estimated cost and budget left; Approve, or Reject with a reason the
agent reads (`ui.chat.approve` / `ui.chat.reject`).
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from agent import live as live_turns
from ui.identity import user_of
from ui.render import approval_paragraph

MAX_SCRIPT_CHARS = 30_000


def _flavor(session, name: str | None):
    if not name:
        return None
    try:
        flavors = session.ctx.jobs.flavors()
    except Exception:  # the card still shows the rest
        from tools.backends.hardware import builtin_flavors

        flavors = builtin_flavors()
    return next((f for f in flavors if f.name == name), None)


def _budget_left(session, details: dict) -> str:
    if details.get("budget_left_after_usd") is not None:
        return f"${details['budget_left_after_usd']:.2f} after this job"
    guard = session.guard
    if guard is not None and guard.budget.usd is not None:
        return f"${max(0.0, guard.budget.usd - guard.spent()['usd']):.2f} of ${guard.budget.usd:g}"
    return "no budget set (Settings → Budget)"


def card_text(session, details: dict) -> tuple[str, str]:
    """(the card's markdown, the script it would run)."""
    flavor = _flavor(session, details.get("flavor"))
    gpus = ("CPU only" if flavor and not flavor.is_gpu else
            f"{flavor.gpus} × {flavor.gpu_memory_gb:.0f} GB GPU" if flavor else "unknown")
    cost = details.get("max_cost_usd")
    rows = [("Action", details.get("action", "?")), ("Run", details.get("run_id", "-")),
            ("Flavor", flavor.summary() if flavor else details.get("flavor", "-")), ("GPUs", gpus),
            ("Timeout", f"{details['timeout_minutes']:g} min" if details.get("timeout_minutes") else "-"),
            ("Estimated cost (at most)", f"${cost:.2f}" if isinstance(cost, int | float) else "unknown"),
            ("Budget left", _budget_left(session, details))]
    table = "\n".join(["| Detail | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])
    script = ""
    run = session.ledger.get_run(int(details["run_id"]), user=session.ctx.user) if details.get("run_id") else None
    if run and run.get("script_path") and Path(run["script_path"]).is_file():
        script = Path(run["script_path"]).read_text(errors="replace")[:MAX_SCRIPT_CHARS]
    return f"### ⏸ Approval needed\n\n{approval_paragraph(details)}\n\n{table}", script


def approval_card(live_id, profile: gr.OAuthProfile | None = None, request: gr.Request | None = None):
    """(card visibility, card markdown, script) for the chat's session."""
    live = live_turns.find(live_id, user_of(profile, request))
    if live is None or not live.waiting_for_approval:
        return gr.update(visible=False), "", ""
    waiting = next(e for e in reversed(live.events) if e.kind == "approval")
    text, script = card_text(live.session, waiting.data)
    return gr.update(visible=True), text, script
