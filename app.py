"""ml-intern's Gradio app: a chat that follows the agent's turns, jobs, sessions, experiments and settings.

    python app.py            # http://127.0.0.1:7860

Heavy libraries (torch, trl, lighteval) are never imported here: tools run them in subprocesses, so the first page
is served within seconds. The parts live in `ui/`: who runs on whose keys (`ui.identity`), how events read
(`ui.render`), the chat handlers (`ui.chat`), the approval card, the Jobs, Sessions, Experiments and Settings tabs.

A turn runs on the server, independent of the page (`agent.live`): a reload or a second tab re-attaches to it, and
Stop ends it between steps. Turns run side by side (`MAX_TURNS` at once). A turn that asks for approval pauses
without holding a worker: the chat event ends, and the Approve/Reject endpoint answers it and streams the rest.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from ui import chat as chat_handlers  # noqa: E402
from ui.approval import approval_card  # noqa: E402
from ui.experiments import experiments_tab  # noqa: E402
from ui.identity import env_config, sign_in_offered  # noqa: E402
from ui.jobs import jobs_tab  # noqa: E402
from ui.sessions import open_session, session_rows, sessions_tab  # noqa: E402
from ui.settings import settings_tab  # noqa: E402

# Agent turns streaming at once (each holds a worker thread while a page follows it; a paused turn holds none).
MAX_TURNS = int(os.environ.get("ML_INTERN_MAX_TURNS", "32"))
INTRO = ("# 🧑‍🔬 ml-intern\nAn autonomous ML engineer for LLM post-training: papers → data → baseline → train → "
         "evaluate → iterate. Type a goal, or try the **offline demo** (no key needed).")


def build_app() -> gr.Blocks:
    _, problem = env_config()
    with gr.Blocks(title="ml-intern") as app:
        prefs = gr.State({})
        live_id = gr.State(None)  # the session this tab follows (agent.live)
        cursor = gr.State(0)  # how many of its events this tab has shown
        with gr.Row():
            gr.Markdown(INTRO)
            if sign_in_offered():
                gr.LoginButton(scale=0, min_width=260)
        if problem:
            gr.Markdown(f"⚠ {problem}", elem_id="config-banner")
        with gr.Tabs() as tabs:
            with gr.Tab("Chat", id="chat"):
                chatbot = gr.Chatbot(label="ml-intern", height=560, elem_id="chat")
                status = gr.Markdown(elem_id="status-line")
                box = gr.Textbox(placeholder="e.g. improve Qwen3-1.7B on GSM8K", show_label=False, elem_id="goal")
                gr.Examples(chat_handlers.EXAMPLE_GOALS, inputs=box, label="Example goals")
                send_label, stop_label, stop_cancel_label, fix_label = chat_handlers.BUTTON_LABELS
                with gr.Row():
                    send = gr.Button(send_label, variant="primary", elem_id="send")
                    stop = gr.Button(stop_label, variant="stop", visible=False, elem_id="stop")
                    stop_cancel = gr.Button(stop_cancel_label, visible=False, elem_id="stop-cancel")
                    demo_button = gr.Button("Run offline demo (scripted)", elem_id="demo")
                    fix = gr.Button(fix_label, visible=False, elem_id="fix-settings")
                stop_note = gr.Markdown()
                with gr.Group(visible=False, elem_id="approval-card") as card:
                    card_text = gr.Markdown()
                    with gr.Accordion("Script it would run", open=False):
                        script = gr.Code(language="python", interactive=False)
                    reason = gr.Textbox(label="Reason (if you reject: the agent reads it)",
                                        placeholder="e.g. too expensive: use t4-small", elem_id="reject-reason")
                    with gr.Row():
                        approve_button = gr.Button("Approve", variant="primary", elem_id="approve")
                        reject_button = gr.Button("Reject", elem_id="reject")
                    approval_note = gr.Markdown()
            with gr.Tab("Jobs", id="jobs"):
                jobs_tab(live_id)
            with gr.Tab("Sessions", id="sessions"):
                sessions_table, picked_session, open_button = sessions_tab()
            with gr.Tab("Experiments", id="experiments"):
                experiments_tab(app)
            with gr.Tab("Settings", id="settings"):
                settings_tab(prefs, problem)

        # Turns share MAX_TURNS slots; a paused turn holds none, and its answer streams the rest of the turn.
        turn = {"concurrency_limit": MAX_TURNS, "concurrency_id": "turns"}
        shown = [chatbot, live_id, cursor, box, status, send, stop, stop_cancel, fix]
        card_io = ([live_id], [card, card_text, script])
        chat_in = [box, chatbot, live_id, cursor, prefs]
        send.click(chat_handlers.chat, chat_in, shown, api_name="chat", **turn).then(
            approval_card, *card_io, api_name=False)
        box.submit(chat_handlers.chat, chat_in, shown, api_name=False, **turn).then(
            approval_card, *card_io, api_name=False)
        demo_button.click(chat_handlers.run_demo, [chatbot, live_id, prefs], shown, api_name="demo", **turn)
        answered = [*shown, approval_note]
        approve_button.click(chat_handlers.approve, [chatbot, live_id, cursor], answered, api_name="approve",
                             **turn).then(approval_card, *card_io, api_name=False)
        reject_button.click(chat_handlers.reject, [chatbot, live_id, cursor, reason], answered, api_name="reject",
                            **turn).then(approval_card, *card_io, api_name=False)
        stop.click(chat_handlers.stop, live_id, stop_note, api_name="stop", concurrency_limit=None)
        stop_cancel.click(chat_handlers.stop_and_cancel, live_id, stop_note, api_name=False, concurrency_limit=None)
        fix.click(lambda: gr.Tabs(selected="settings"), None, tabs, api_name=False, queue=False)
        timer = gr.Timer(1.0)
        timer.tick(chat_handlers.tick, live_id, [status, send, stop, stop_cancel], api_name=False,
                   show_progress="hidden", concurrency_limit=None)
        app.load(chat_handlers.reattach, None, shown, api_name=False, **turn).then(
            approval_card, *card_io, api_name=False)
        app.load(session_rows, None, sessions_table, api_name=False)
        open_button.click(lambda: gr.Tabs(selected="chat"), None, tabs, api_name=False, queue=False).then(
            open_session, [picked_session, prefs], shown, api_name="open_session", **turn).then(
            approval_card, *card_io, api_name=False)
    return app.queue(default_concurrency_limit=16)


if __name__ == "__main__":
    import importlib
    import threading

    # The first turn imports the agent (smolagents; about 2 s): do it while the first page is served.
    threading.Thread(target=importlib.import_module, args=("agent.session",), daemon=True).start()
    build_app().launch(max_threads=MAX_TURNS + 16)
