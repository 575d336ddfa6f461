"""ml-intern's Gradio app: a chat that streams the agent's steps, settings, and the ledger.

    python app.py            # http://127.0.0.1:7860

Heavy libraries (torch, trl, lighteval) are never imported here: tools run them in
subprocesses, so the first page is served within seconds.

Who runs a turn on whose keys (`caller`): off a Space, the environment's keys serve the one local user. On a
Space, visitors sign in with Hugging Face; a signed-in visitor's own token serves their Hub, Jobs and LLM calls
(Inference Providers) unless they paste their own Anthropic key; the owner's secrets serve the owner, and serve
visitors only where the owner sets `ML_INTERN_SHARE_OWNER_KEYS=1`, under a per-visitor budget.

Turns run side by side (`MAX_TURNS` at once). A turn that asks for approval pauses without holding a worker: the
chat event ends, and the Approve/Reject endpoint answers it and streams the rest of the turn.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from agent.config import BACKENDS, AgentConfig, visitor_endpoints_allowed  # noqa: E402
from agent.events import Event  # noqa: E402
from agent.target import Budget  # noqa: E402
from tools.ledger import LOCAL_USER  # noqa: E402

TITLES = {"thought": "💭 Thought", "code": "⌨ Code", "tool_result": "↳ Observation",
          "job_update": "⚙ Job", "eval_result": "📊 Evaluation", "error": "✗ Error", "run_created": "📝 Run",
          "preflight": "🔎 Preflight", "diagnosis": "🩺 Diagnosis", "notice": "ℹ Notice"}
ENDPOINT_LOCK = ("Locked by this server's owner: an address typed here would make the server send requests, "
                 "with its keys, wherever a visitor chose. The owner unlocks it by setting "
                 "`ML_INTERN_ALLOW_VISITOR_ENDPOINTS=1`.")
LABELS = {"model_id": "Model id", "openai_base_url": "OpenAI-compatible base URL"}
EXPERIMENT_COLUMNS = ["id", "status", "task", "target", "baseline", "best", "runs", "cost_usd", "base_model", "goal"]
# Agent turns streaming at once (each holds a worker thread while it runs; a turn paused on an approval holds none).
MAX_TURNS = int(os.environ.get("ML_INTERN_MAX_TURNS", "32"))
# The LLM of a signed-in visitor without an Anthropic key of their own: smolagents' InferenceClientModel default,
# served by Inference Providers on the visitor's token.
INFERENCE_PROVIDERS_MODEL = "Qwen/Qwen3-Next-80B-A3B-Thinking"
SIGN_IN = ("**Sign in with Hugging Face** (the button at the top) to chat: your own token then serves the Hub, "
           "Jobs and the LLM (through Inference Providers), or paste your own Anthropic key in Settings. "
           "The offline demo runs without signing in.")
APPROVAL_PENDING = "An approval is waiting above: press **Approve** or **Reject** first."


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


def on_space() -> bool:
    """Whether the app runs as a Hugging Face Space (which sets `SPACE_ID`)."""
    return bool(os.environ.get("SPACE_ID"))


def sign_in_offered() -> bool:
    """Whether the app shows Sign in with Hugging Face: on a Space (Gradio's own test, `SYSTEM=spaces`) with an OAuth
    app (`hf_oauth: true` in README.md sets `OAUTH_CLIENT_ID`). Elsewhere Gradio would mock sign-in with the
    machine's saved token, calling the Hub at start-up."""
    return os.environ.get("SYSTEM") == "spaces" and bool(os.environ.get("OAUTH_CLIENT_ID"))


def owner_keys_shared() -> bool:
    """Whether the Space's owner lets visitors use its secrets: `ML_INTERN_SHARE_OWNER_KEYS` (1 or 0, default 0)."""
    return os.environ.get("ML_INTERN_SHARE_OWNER_KEYS", "").strip().lower() in ("1", "true", "yes", "on")


def visitor_budget() -> Budget:
    """What one visitor's session may spend on the owner's keys: `ML_INTERN_VISITOR_BUDGET_USD` (default 1) in
    job costs and `ML_INTERN_VISITOR_BUDGET_HOURS` (default 1) of wall time, which also bounds the LLM calls."""
    return Budget(usd=float(os.environ.get("ML_INTERN_VISITOR_BUDGET_USD", "1")),
                  hours=float(os.environ.get("ML_INTERN_VISITOR_BUDGET_HOURS", "1")))


def user_of(profile: gr.OAuthProfile | None, request: gr.Request | None) -> str | None:
    """Who owns what this browser session does: `LOCAL_USER` off a Space; on a Space the signed-in username, else
    `visitor-<session hash>` for this browser session alone, or None when the request carries no session."""
    if not on_space():
        return LOCAL_USER
    if profile is not None:
        return profile.username
    session_hash = re.sub(r"[^A-Za-z0-9]", "", getattr(request, "session_hash", None) or "")[:32]
    return f"visitor-{session_hash}" if session_hash else None


@dataclass(frozen=True)
class Caller:
    """Who runs a turn (`user`, the owner of what it records), with which keys (`config`), under which cap."""
    user: str
    config: AgentConfig
    budget: Budget | None = None


def _visitor_config(prefs: dict, token: str) -> AgentConfig:
    """A signed-in visitor's config: the environment's choices without the owner's keys. Their token (or one they
    pasted) serves the Hub and Jobs, and the LLM through Inference Providers where the LLM would need an owner's key."""
    config = _config(prefs)
    own_key = prefs.get("anthropic_api_key") or None
    settings = config.settings.with_(hf_token=prefs.get("hf_token") or token, github_token=prefs.get("github_token")
                                     or None)
    changes = {"settings": settings, "anthropic_api_key": own_key, "openai_api_key": None}
    if (config.backend == "anthropic" and not own_key) or (config.backend == "openai-compatible"
                                                           and config.openai_api_key):
        changes.update(backend="hf-inference", model_id=INFERENCE_PROVIDERS_MODEL)
    return config.with_(**changes)


def caller(prefs: dict | None, profile: gr.OAuthProfile | None, token: gr.OAuthToken | None,
           request: gr.Request | None) -> Caller | None:
    """Who runs this browser session's turn, on whose keys; None when a visitor must sign in first.

    Off a Space, and for the Space's owner (`SPACE_AUTHOR_NAME`) signed in: the environment's keys and this browser
    session's settings, as `_config` makes them. A signed-in visitor: their own token (`_visitor_config`). Where the
    owner shares their keys (`owner_keys_shared`), any visitor runs on them, under `visitor_budget()`; a signed-in
    one still uses their own token for the Hub and Jobs."""
    prefs = prefs or {}
    user = user_of(profile, request)
    if not on_space() or (profile is not None and profile.username == os.environ.get("SPACE_AUTHOR_NAME")):
        return Caller(user, _config(prefs))
    if user is None:
        return None
    if owner_keys_shared():
        config = _config(prefs)
        if token is not None and profile is not None and not prefs.get("hf_token"):
            config = config.with_(settings=config.settings.with_(hf_token=token.token))
        return Caller(user, config, visitor_budget())
    if profile is None or token is None:
        return None
    return Caller(user, _visitor_config(prefs, token.token))


def _messages(history: list | None) -> list[gr.ChatMessage]:
    return [gr.ChatMessage(**m) if isinstance(m, dict) else m for m in (history or [])]


def _follow(events, messages: list[gr.ChatMessage]):
    """Render each event of a turn into `messages`, yielding None after each one that shows (token counts do not);
    after an approval request yield `events` and stop: the turn waits, holding no worker, until Approve or Reject
    goes on with `events`."""
    for event in events:
        if event.kind == "token_usage":
            continue
        render_event(event, messages)
        if event.kind == "approval":
            yield events
            return
        yield None


def chat(message: str, history: list, session, paused, prefs: dict, profile: gr.OAuthProfile | None = None,
         token: gr.OAuthToken | None = None, request: gr.Request | None = None):
    """Run one turn and stream the chat as it grows: yields (messages, session, paused turn, text box)."""
    messages = _messages(history)
    if paused is not None:
        messages.append(gr.ChatMessage(role="assistant", content=APPROVAL_PENDING))
        yield messages, session, paused, message
        return
    who = caller(prefs, profile, token, request)
    if who is None:
        messages.append(gr.ChatMessage(role="assistant", content=SIGN_IN))
        yield messages, session, None, message
        return
    from agent.session import Session

    if session is None or session.config != who.config or session.ctx.user != who.user:
        session = Session(who.config, ledger=_ledger(who.config.settings.data_dir), title=message[:80],
                          user=who.user, budget=who.budget)
    for waiting in _follow(session.run(message), messages):
        yield messages, session, waiting, ""


def answer_approval(approved: bool, history: list, session, paused):
    """Answer the approval this browser session's turn waits for, then stream the rest of the turn:
    yields (messages, paused turn, note)."""
    messages = _messages(history)
    if session is None or paused is None:
        yield messages, None, "Nothing is waiting for approval."
        return
    session.answer_approval(approved)
    note = "Approved." if approved else "Rejected."
    yield messages, None, note
    for waiting in _follow(paused, messages):
        yield messages, waiting, note


def approve(history: list, session, paused):
    """The Approve button and the `/approve` endpoint."""
    yield from answer_approval(True, history, session, paused)


def reject(history: list, session, paused):
    """The Reject button and the `/reject` endpoint."""
    yield from answer_approval(False, history, session, paused)


def run_demo(history: list, prefs: dict, profile: gr.OAuthProfile | None = None, request: gr.Request | None = None):
    """The scripted offline demo, clearly labelled as such: anyone may run it, and it runs with no key at all."""
    from agent.demo import DEMO_TASK, prepare_demo
    from agent.session import Session

    user = user_of(profile, request)
    if user is None:
        yield [gr.ChatMessage(role="assistant", content=SIGN_IN)]
        return
    config = AgentConfig.demo(settings=_config(prefs or {}).settings.with_(hf_token=None, github_token=None))
    messages = [gr.ChatMessage(role="assistant", content="**Scripted offline demo** — a replayed plan, "
                               "not an LLM. Tools, training and evaluation are real.")]
    yield messages
    variables = prepare_demo(config.settings.data_dir)
    session = Session(config, ledger=_ledger(config.settings.data_dir), title="offline demo", user=user)
    for event in session.run(DEMO_TASK, variables=variables):
        render_event(event, messages)
        yield messages


def _ledger(data_dir: str | Path | None = None):
    """The ledger of `data_dir` (default: the configured one), opened (its schema checked) once per directory."""
    return _open_ledger(Path(data_dir or AgentConfig.from_env().settings.data_dir).resolve())


@functools.cache
def _open_ledger(data_dir: Path):
    from tools.ledger import Ledger

    return Ledger.in_dir(data_dir)


def experiments_rows(profile: gr.OAuthProfile | None = None, request: gr.Request | None = None) -> list[list]:
    """This user's experiments, one row each (newest first)."""
    user = user_of(profile, request)
    rows = _ledger().experiments_table(user=user) if user else []
    return [[row[c] for c in EXPERIMENT_COLUMNS] for row in rows]


def experiment_choices(profile: gr.OAuthProfile | None = None, request: gr.Request | None = None) -> gr.Dropdown:
    """The experiment picker, refreshed from this user's experiments (newest first)."""
    user = user_of(profile, request)
    rows = _ledger().experiments_table(user=user) if user else []
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


def experiment_detail(experiment_id, profile: gr.OAuthProfile | None = None, request: gr.Request | None = None):
    """(lineage tree as markdown, score-per-iteration plot, saved report) of one of this user's experiments;
    another user's experiment reads as an unknown one."""
    from tools.lineage import render_tree

    if experiment_id in (None, ""):
        return "Pick an experiment to see its lineage.", None, ""
    user = user_of(profile, request)
    tree = _ledger().experiment_tree(int(experiment_id), user=user) if user else None
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
        paused = gr.State(None)  # the rest of a turn that waits for Approve or Reject
        with gr.Row():
            gr.Markdown("# 🧑‍🔬 ml-intern\nAn autonomous ML engineer for LLM post-training: papers → data → "
                        "baseline → train → evaluate → iterate.")
            if sign_in_offered():
                gr.LoginButton(scale=0, min_width=260)
        with gr.Tab("Chat"):
            chatbot = gr.Chatbot(label="ml-intern", height=620)
            box = gr.Textbox(placeholder="e.g. improve Qwen3-1.7B on GSM8K", show_label=False)
            with gr.Row():
                send = gr.Button("Send", variant="primary")
                demo_button = gr.Button("Run offline demo (scripted)")
            with gr.Row():
                approve_button = gr.Button("Approve paid job", size="sm")
                reject_button = gr.Button("Reject", size="sm")
                approval_note = gr.Markdown()
        with gr.Tab("Experiments"):
            table = gr.Dataframe(headers=EXPERIMENT_COLUMNS, interactive=False)
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
            app.load(experiments_rows, outputs=table, api_name=False).then(
                experiment_choices, outputs=picker, api_name=False)
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
                                                    compute, openai_url], [prefs, saved], api_name="settings")
        # Turns share MAX_TURNS slots; a paused turn holds none, and its answer streams the rest of the turn.
        turn = {"concurrency_limit": MAX_TURNS, "concurrency_id": "turns"}
        chat_io = ([box, chatbot, session, paused, prefs], [chatbot, session, paused, box])
        send.click(chat, *chat_io, api_name="chat", **turn)
        box.submit(chat, *chat_io, api_name=False, **turn)
        answer_io = ([chatbot, session, paused], [chatbot, paused, approval_note])
        approve_button.click(approve, *answer_io, api_name="approve", **turn)
        reject_button.click(reject, *answer_io, api_name="reject", **turn)
        demo_button.click(run_demo, [chatbot, prefs], chatbot, api_name="demo", **turn)
    return app.queue(default_concurrency_limit=16)


if __name__ == "__main__":
    import importlib
    import threading

    # The first turn imports the agent (smolagents; about 2 s): do it while the first page is served.
    threading.Thread(target=importlib.import_module, args=("agent.session",), daemon=True).start()
    build_app().launch(max_threads=MAX_TURNS + 16)
