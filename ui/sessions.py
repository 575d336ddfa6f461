"""The Sessions tab: the user's past sessions (title, status, started, cost); Open resumes one into the chat.

A session still live on this server is re-attached as it is; any other is resumed from the ledger
(`Session.resume` through `agent.live.reopen`: memory restored, running jobs re-attached).
"""

from __future__ import annotations

import time

import gradio as gr

from agent import live as live_turns
from ui.chat import outputs, replay_and_follow
from ui.identity import caller, user_of
from ui.ledger import ledger
from ui.render import plain_error

SESSION_COLUMNS = ["id", "title", "status", "started", "cost"]


def _status(row: dict, user: str, experiment_status: dict[str, str]) -> str:
    live = live_turns.find(row["id"], user)
    if live is not None and live.running:
        return "waiting for approval" if live.waiting_for_approval else "running"
    return experiment_status.get(row["id"], "chat")


def session_rows(profile: gr.OAuthProfile | None = None, request: gr.Request | None = None) -> list[list]:
    """This user's sessions, newest first."""
    user = user_of(profile, request)
    if user is None:
        return []
    rows = []
    experiment_status = {e["session_id"]: e["status"] for e in reversed(ledger().list_experiments(user=user))}
    for row in ledger().list_sessions(user=user)[:100]:
        spend = ledger().session_spend(row["id"], user=user)
        rows.append([row["id"], row["title"] or "(untitled)", _status(row, user, experiment_status),
                     time.strftime("%Y-%m-%d %H:%M", time.localtime(row["created_at"])), f"${spend['total_usd']:.2f}"])
    return rows


def pick_session(event: gr.SelectData):
    return event.row_value[0] if event.row_value else None


def open_session(session_id, prefs: dict, profile: gr.OAuthProfile | None = None,
                 token: gr.OAuthToken | None = None, request: gr.Request | None = None):
    """Reopen one of the user's sessions in the chat: its events replayed, then followed while it runs."""
    who = caller(prefs, profile, token, request)
    if who is None or not session_id:
        yield outputs([gr.ChatMessage(role="assistant", content="Pick one of your sessions first.")], None, 0)
        return
    try:
        live = live_turns.reopen(str(session_id), who.config, ledger(who.config.settings.data_dir), user=who.user)
    except ValueError as err:
        yield outputs([gr.ChatMessage(role="assistant", content=plain_error(str(err)))], None, 0)
        return
    yield from replay_and_follow(live)


def sessions_tab() -> tuple[gr.Dataframe, gr.Textbox, gr.Button]:
    """The tab's table, the picked id and the Open button (wired by the app, which owns the chat's outputs)."""
    table = gr.Dataframe(headers=SESSION_COLUMNS, interactive=False, elem_id="sessions-table")
    with gr.Row():
        picked = gr.Textbox(label="Session (click a row)", interactive=True)
        refresh = gr.Button("Refresh", size="sm")
        open_button = gr.Button("Open in the chat", variant="primary", size="sm")
    table.select(pick_session, outputs=picked, api_name=False)
    refresh.click(session_rows, outputs=table, api_name="sessions")
    return table, picked, open_button
