"""ml-intern's Gradio app: a chat that streams the agent's steps, settings, and the ledger.

    python app.py            # http://127.0.0.1:7860

Heavy libraries (torch, trl, lighteval) are never imported here: tools run them in
subprocesses, so the first page is served within seconds.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from agent.config import BACKENDS, AgentConfig, visitor_endpoints_allowed  # noqa: E402
from agent.events import Event  # noqa: E402

TITLES = {"thought": "💭 Thought", "code": "⌨ Code", "tool_result": "↳ Observation",
          "job_update": "⚙ Job", "eval_result": "📊 Evaluation", "error": "✗ Error", "run_created": "📝 Run",
          "preflight": "🔎 Preflight", "diagnosis": "🩺 Diagnosis", "notice": "ℹ Notice"}
ENDPOINT_LOCK = ("Locked by this server's owner: an address typed here would make the server send requests, "
                 "with its keys, wherever a visitor chose. The owner unlocks it by setting "
                 "`ML_INTERN_ALLOW_VISITOR_ENDPOINTS=1`.")
LABELS = {"model_id": "Model id", "openai_base_url": "OpenAI-compatible base URL"}
EXPERIMENT_COLUMNS = ["id", "status", "task", "target", "baseline", "best", "runs", "cost_usd", "base_model", "goal"]


def render_event(event: Event, messages: list[gr.ChatMessage]) -> None:
    """Add or update the chat messages for one event (in place)."""
    if event.kind == "token_usage":
        return
    if event.kind == "approval":
        details = ", ".join(f"{k}={v}" for k, v in event.data.items() if k != "action")
        messages.append(gr.ChatMessage(role="assistant", content=f"{event.text} ({details}) — press **Approve** "
                                       "or **Reject** below.", metadata={"title": "⏸ Approval needed"}))
        return
    if event.kind == "user":
        messages.append(gr.ChatMessage(role="user", content=event.text))
        return
    if event.kind == "delta":
        if messages and messages[-1].metadata.get("id") == "streaming":
            messages[-1].content += event.text
        else:
            messages.append(gr.ChatMessage(role="assistant", content=event.text, metadata={
                "title": "💭 Thinking…", "id": "streaming", "status": "pending"}))
        return
    if messages and messages[-1].metadata.get("id") == "streaming":
        messages.pop()
    if event.kind in ("tool_result", "error", "final_answer"):
        _finish_pending(messages, event.data.get("duration_s"))
    if event.kind == "final_answer":
        messages.append(gr.ChatMessage(role="assistant", content=event.text))
        return
    step = f" · step {event.step}" if event.step is not None else ""
    metadata = {"title": TITLES[event.kind] + step, "status": "done"}
    content = event.text
    if event.kind == "code":
        content = f"```python\n{event.text}\n```"
        metadata.update(status="pending", id=f"code-{len(messages)}")
    elif event.kind == "tool_result":
        content = f"```\n{event.text}\n```"
    elif event.kind == "eval_result":
        d = event.data
        label = "baseline" if d.get("is_baseline") else "checkpoint"
        content = (f"**{label}** `{d.get('task')}` {d.get('metric')} = **{d.get('value')}** ± {d.get('stderr')}"
                   f" (n={d.get('n_samples')})")
    elif event.kind == "job_update":
        d = event.data
        progress = d.get("progress") or {}
        step = f" step {progress['step']}/{progress.get('max_steps')}" if progress.get("step") else ""
        content = f"job `{d.get('job_id')}` on {d.get('backend', '?')}: **{d.get('stage')}**{step} {event.text}"
        metadata["id"] = f"job-{d.get('job_id')}"
        if messages and messages[-1].metadata.get("id") == metadata["id"]:
            messages[-1].content = content  # one live line per job while it is polled
            return
    messages.append(gr.ChatMessage(role="assistant", content=content, metadata=metadata))


def _finish_pending(messages: list[gr.ChatMessage], duration: float | None) -> None:
    for message in reversed(messages):
        if message.metadata.get("status") == "pending":
            message.metadata["status"] = "done"
            if duration is not None:
                message.metadata["duration"] = round(duration, 2)
            return


def _endpoint_prefs(prefs: dict) -> set[str]:
    """The settings in `prefs` that choose where the server sends requests, where the owner does not let
    a visitor choose (agent.config.visitor_endpoints_allowed): a base URL, or a URL as the model id
    (huggingface_hub's InferenceClient posts to a model id that is a URL, with the HF token)."""
    if visitor_endpoints_allowed():
        return set()
    refused = {"openai_base_url"} & prefs.keys()
    if "://" in (prefs.get("model_id") or ""):
        refused.add("model_id")
    return refused


def _config(prefs: dict) -> AgentConfig:
    """The environment's config with this browser session's settings on top (less those `_endpoint_prefs` refuses)."""
    base = AgentConfig.from_env()
    refused = _endpoint_prefs(prefs)
    settings = base.settings
    if prefs.get("hf_token"):
        settings = settings.with_(hf_token=prefs["hf_token"])
    if prefs.get("github_token"):
        settings = settings.with_(github_token=prefs["github_token"])
    if prefs.get("compute"):
        settings = settings.with_(compute_backend=prefs["compute"])
    changes = {"settings": settings}
    for key in ("backend", "model_id", "anthropic_api_key", "openai_base_url"):
        if prefs.get(key) and key not in refused:
            changes[key] = prefs[key]
    return base.with_(**changes)


def chat(message: str, history: list, prefs: dict, session):
    """Run one turn and stream the chat as it grows."""
    from agent.session import Session

    config = _config(prefs or {})
    if session is None or session.config != config:
        session = Session(config, title=message[:80])
    messages = [gr.ChatMessage(**m) if isinstance(m, dict) else m for m in (history or [])]
    for event in session.run(message):
        render_event(event, messages)
        yield messages, session, ""
    yield messages, session, ""


def answer_approval(session, approved: bool) -> str:
    if session is None:
        return "Nothing is waiting for approval."
    session.answer_approval(approved)
    return "Approved." if approved else "Rejected."


def run_demo(history: list, prefs: dict):
    """The scripted offline demo, clearly labelled as such."""
    from agent.demo import DEMO_TASK, prepare_demo
    from agent.session import Session

    config = AgentConfig.demo(settings=_config(prefs or {}).settings)
    messages = [gr.ChatMessage(role="assistant", content="**Scripted offline demo** — a replayed plan, "
                               "not an LLM. Tools, training and evaluation are real.")]
    yield messages
    variables = prepare_demo(config.settings.data_dir)
    session = Session(config, title="offline demo")
    for event in session.run(DEMO_TASK, variables=variables):
        render_event(event, messages)
        yield messages


def _ledger():
    from tools.ledger import Ledger

    return Ledger.in_dir(AgentConfig.from_env().settings.data_dir)


def experiments_rows() -> list[list]:
    return [[row[c] for c in EXPERIMENT_COLUMNS] for row in _ledger().experiments_table()]


def experiment_choices() -> gr.Dropdown:
    """The experiment picker, refreshed from the ledger (newest first)."""
    rows = _ledger().experiments_table()
    return gr.Dropdown(choices=[(f"{r['id']}: {r['goal'][:60]}", r["id"]) for r in rows])


def score_frame(tree: dict):
    """Score per iteration (run order) of the experiment's judged task, with its baseline and target as
    flat lines over the same iterations: a DataFrame of iteration, score, series."""
    import pandas as pd

    from tools.lineage import baseline_of, judged_tasks, score_series
    from tools.targets import targets_of

    targets = targets_of(tree["experiment"])
    task = judged_tasks(tree)[0][0]
    points = score_series(tree, task)
    rows = [{"iteration": p["iteration"], "score": p["score"], "series": f"trained ({task})"} for p in points]
    last = max([p["iteration"] for p in points], default=1)
    base = baseline_of(tree, task)
    for label, value in (("baseline", base["value"] if base else None),
                         (f"target {targets[0]}" if targets else "target", targets[0].value if targets else None)):
        if value is not None:
            rows += [{"iteration": 0, "score": value, "series": label},
                     {"iteration": last, "score": value, "series": label}]
    return pd.DataFrame(rows, columns=["iteration", "score", "series"])


def experiment_detail(experiment_id):
    """(lineage tree as markdown, score-per-iteration plot, saved report) of one experiment."""
    from tools.lineage import render_tree

    if experiment_id in (None, ""):
        return "Pick an experiment to see its lineage.", None, ""
    tree = _ledger().experiment_tree(int(experiment_id))
    if tree is None:
        return f"There is no experiment {experiment_id}.", None, ""
    frame = score_frame(tree)
    margin = 0.05 * max(1.0, float(frame["score"].abs().max())) if len(frame) else 0.05
    plot = gr.LinePlot(value=frame, y_lim=[float(frame["score"].min()) - margin, float(frame["score"].max()) + margin]
                       if len(frame) else None)
    return (f"```text\n{render_tree(tree)}\n```", plot,
            tree["experiment"]["report"] or "_No report yet: it is written when a headless run ends._")


def pick_experiment(event: gr.SelectData):
    """A click on a row of the experiments table selects that experiment."""
    return event.row_value[0] if event.row_value else None


def save_settings(backend, model_id, anthropic_key, hf_token, github_token, compute, openai_url):
    prefs = {"backend": backend, "model_id": model_id.strip(), "anthropic_api_key": anthropic_key.strip(),
             "hf_token": hf_token.strip(), "github_token": github_token.strip(), "compute": compute,
             "openai_base_url": openai_url.strip()}
    note = "Saved for this browser session only: keys are never written to disk or the ledger."
    owners, refused = AgentConfig.from_env(), _endpoint_prefs(prefs)
    typed = [LABELS[key] for key in sorted(refused) if prefs[key] and prefs[key] != (getattr(owners, key) or "")]
    if typed:
        note += f"\n\nNot saved: {' and '.join(typed)}. {ENDPOINT_LOCK}"
    return {key: value for key, value in prefs.items() if key not in refused}, note


def build_app() -> gr.Blocks:
    env = AgentConfig.from_env()
    with gr.Blocks(title="ml-intern") as app:
        prefs = gr.State({})
        session = gr.State(None)
        gr.Markdown("# 🧑‍🔬 ml-intern\nAn autonomous ML engineer for LLM post-training: papers → data → "
                    "baseline → train → evaluate → iterate.")
        with gr.Tab("Chat"):
            chatbot = gr.Chatbot(label="ml-intern", height=620)
            box = gr.Textbox(placeholder="e.g. improve Qwen3-1.7B on GSM8K", show_label=False)
            with gr.Row():
                send = gr.Button("Send", variant="primary")
                demo_button = gr.Button("Run offline demo (scripted)")
            with gr.Row():
                approve = gr.Button("Approve paid job", size="sm")
                reject = gr.Button("Reject", size="sm")
                approval_note = gr.Markdown()
        with gr.Tab("Experiments"):
            table = gr.Dataframe(headers=EXPERIMENT_COLUMNS, value=experiments_rows, interactive=False)
            refresh = gr.Button("Refresh")
            picker = gr.Dropdown(label="Experiment (or click a row)", choices=[], interactive=True,
                                 allow_custom_value=True)
            plot = gr.LinePlot(x="iteration", y="score", color="series", title="Score per iteration",
                               x_title="iteration (run order; 0 = baseline)", y_title="score", height=320)
            tree = gr.Markdown("Pick an experiment to see its lineage.")
            with gr.Accordion("Report", open=False):
                report = gr.Markdown()
            refresh.click(experiments_rows, outputs=table, api_name="experiments").then(
                experiment_choices, outputs=picker, api_name=False)
            app.load(experiment_choices, outputs=picker, api_name=False)
            table.select(pick_experiment, outputs=picker, api_name=False)
            picker.change(experiment_detail, picker, [tree, plot, report], api_name="experiment")
        with gr.Tab("Settings"):
            backend = gr.Dropdown(list(BACKENDS), value=env.backend, label="LLM backend")
            locked = not visitor_endpoints_allowed()
            model_id = gr.Textbox(value=env.model_id, label=LABELS["model_id"],
                                  info="A model name: URLs are refused on this server." if locked else None)
            anthropic_key = gr.Textbox(type="password", label="ANTHROPIC_API_KEY (this browser session only)")
            hf_token = gr.Textbox(type="password", label="HF_TOKEN (this browser session only)")
            github_token = gr.Textbox(type="password", label="GITHUB_TOKEN (this browser session only)")
            compute = gr.Dropdown(["auto", "local", "hf-jobs"], value=env.settings.compute_backend,
                                  label="Compute backend (auto: HF Jobs when an HF token is set)")
            openai_url = gr.Textbox(value=env.openai_base_url or "", label=LABELS["openai_base_url"],
                                    interactive=not locked, info=ENDPOINT_LOCK if locked else None)
            saved = gr.Markdown()
            gr.Button("Save").click(save_settings, [backend, model_id, anthropic_key, hf_token, github_token,
                                                    compute, openai_url], [prefs, saved], api_name=False)
        chat_io = ([box, chatbot, prefs, session], [chatbot, session, box])
        send.click(chat, *chat_io, api_name="chat")
        box.submit(chat, *chat_io, api_name=False)
        approve.click(lambda s: answer_approval(s, True), session, approval_note, api_name=False)
        reject.click(lambda s: answer_approval(s, False), session, approval_note, api_name=False)
        demo_button.click(run_demo, [chatbot, prefs], chatbot, api_name="demo")
    return app


if __name__ == "__main__":
    build_app().launch()
