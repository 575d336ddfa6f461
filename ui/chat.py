"""The Chat tab's handlers: a turn runs on the server (`agent.live`), and the page only follows it.

Send starts a turn and streams it; while it runs Send is disabled and a message typed anyway is refused with a
note, never detaching the run. Stop ends it between steps (optionally cancelling its jobs). A reload or a second
tab re-attaches: the log so far, then live events. A turn that asks for approval ends the page's stream (holding
no worker); the approval card shows what waits, and Approve or Reject (with a reason the agent reads) streams the
rest. Every handler yields `outputs(...)`: chatbot, live session id, cursor (events shown), text box, status
line, Send, Stop, Stop and cancel jobs, the "Open Settings" fix button.
"""

from __future__ import annotations

import functools
import time

import gradio as gr

from agent import live as live_turns
from agent.events import Event
from tools.stages import TERMINAL
from ui.identity import SIGN_IN, caller, config_for, on_space, user_of
from ui.ledger import ledger
from ui.render import error_content, needs_settings, num, render_event
from ui.settings import turn_options

APPROVAL_PENDING = "An approval is waiting: answer it in the approval card (**Approve** or **Reject**) first."
BUSY = ("A turn is running: your message stays in the box. Wait for it to end, or press **Stop**; a message sent "
        "now would be lost to the run.")
# Send, Stop, Stop and cancel its jobs, Open Settings (app.py builds the buttons with them).
BUTTON_LABELS = ("Send", "⏹ Stop", "⏹ Stop and cancel its jobs", "Open Settings")
EXAMPLE_GOALS = ["Improve Qwen3-0.6B on GSM8K with GRPO, budget $5",
                 "Fine-tune SmolLM2-135M-Instruct for medical Q&A on MedQA",
                 "Find a recent paper on DPO variants and try its recipe on a small model",
                 "Check the dataset trl-lib/Capybara: format, quality, contamination with MMLU"]


def _messages(history: list | None) -> list[gr.ChatMessage]:
    return [gr.ChatMessage(**m) if isinstance(m, dict) else m for m in (history or [])]


def status_line(live) -> str:
    """Step n of max, elapsed, dollars spent of the cap, tokens: what the turn is at, in one line."""
    if live is None:
        return ""
    shown = live.events[live.turn_start_index:]
    steps = max((e.step for e in shown if e.step is not None), default=0)
    usage = [e.data for e in live.events if e.kind == "token_usage"]
    tokens = sum(int(u.get("input_tokens") or 0) + int(u.get("output_tokens") or 0)
                 + int(u.get("cache_read_input_tokens") or 0) + int(u.get("cache_creation_input_tokens") or 0)
                 for u in usage)
    spent, cap = (usage[-1].get("spent_usd"), usage[-1].get("cap_usd")) if usage else (None, None)
    if spent is None:
        spent = live.session.ledger.session_spend(live.session.id, user=live.user)["total_usd"]
    started, ended = live.turn_started_at, live.turn_ended_at
    elapsed = ((ended or time.time()) - started) if started else 0.0
    money = f"${spent:.2f}" + (f" of ${cap:.2f} cap" if cap is not None else "")
    state = ("⏸ waiting for your approval" if live.waiting_for_approval else "⏳ running" if live.running
             else "✓ turn ended" if started else "ready")
    parts = [state, f"step {steps} of {live.session.config.max_steps}", _duration(elapsed), money,
             f"{_tokens(tokens)} tokens"]
    return " · ".join(parts)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _tokens(count: int) -> str:
    return f"{num(count / 1000)}k" if count >= 1000 else str(count)


def outputs(messages, live, cursor: int, box=None, fix: bool = False, controls: bool = True) -> tuple:
    """One yield of a chat handler (see the module docstring); `box=None` leaves the text box as it is, and
    `controls=False` the buttons (as their labels: Gradio rebuilds a component for each property update, about a
    millisecond of the server's event loop per button per yield)."""
    running = live is not None and live.running
    buttons = ((gr.update(interactive=not running), gr.update(visible=running), gr.update(visible=running),
                gr.update(visible=fix)) if controls else BUTTON_LABELS)
    return (messages, live.session.id if live else None, cursor, gr.update() if box is None else box,
            status_line(live), *buttons)


def _stream(live, messages: list, start: int, shown_running: bool | None = None):
    """Render the live session's events from `start` into `messages`, yielding once per batch of new events (and
    the buttons only when the turn's running state changed from `shown_running`); the stream ends at an approval
    request (the turn waits, holding no worker) or with the turn."""
    cursor = start
    for batch in live.follow_batches(start):
        waiting = shown = False
        for index, event in batch:
            cursor = index + 1
            if event.kind == "user" and messages and messages[-1].role == "user" \
                    and messages[-1].content == event.text:
                continue  # already shown when it was sent
            render_event(event, messages)
            shown = shown or event.kind != "token_usage"
            if event.kind == "approval":
                waiting = True
                break
        if shown:
            running = live.running
            yield outputs(messages, live, cursor, controls=running != shown_running)
            shown_running = running
        if waiting:
            return
    settle_job_cards(messages, live.session)
    yield outputs(messages, live, cursor, fix=_needs_fix(live))


def _needs_fix(live) -> bool:
    errors = [e for e in live.events[live.turn_start_index:] if e.kind == "error"]
    return bool(errors) and needs_settings(errors[-1].text)


def settle_job_cards(messages: list, session) -> None:
    """A job card still saying queued or running when the turn ends shows the ledger's final state instead."""
    for message in messages:
        job_id = (message.metadata or {}).get("id", "")
        if job_id.startswith("job-") and ("**running**" in message.content or "**queued**" in message.content):
            run = session.ledger.run_by_job(job_id[4:], user=session.ctx.user)
            if run and run["status"] in TERMINAL:
                message.content = (f"job `{run['job_id']}` (run {run['id']}) on {run['backend']}: "
                                   f"**{run['status']}**" + (f"\n\n{run['error']}" if run.get("error") else ""))
            elif run:
                message.content += "\n\n_Still running after the turn: follow it in the **Jobs** tab._"


def missing_credentials(config) -> str | None:
    """Why a turn with `config` cannot reach its LLM, in words that fit where the user is; None when it can."""
    where_key = ("paste your own key in **Settings**" if on_space() else
                 "set `ANTHROPIC_API_KEY` in the environment before `python app.py`, or paste a key in **Settings**")
    if config.backend == "anthropic" and not config.anthropic_api_key:
        return f"No Anthropic API key yet: {where_key}, or choose another LLM backend there."
    if config.backend == "hf-inference" and not (config.hf_token or (not on_space() and _saved_hf_token())):
        where = ("sign in with Hugging Face (button at the top)" if on_space() else
                 "set `HF_TOKEN` in the environment (or run `hf auth login`), or paste a token in **Settings**")
        return f"Inference Providers need a Hugging Face token: {where}."
    if config.backend == "scripted" and not config.scripted_plan:
        return ("The scripted backend replays a plan file: the server's owner sets `ML_INTERN_SCRIPTED_PLAN`. "
                "Or choose another LLM backend in **Settings**.")
    return None


def _saved_hf_token() -> bool:
    """Whether this machine has a Hugging Face token saved by `hf auth login`."""
    from huggingface_hub import get_token

    return bool(get_token())


def _refusal(messages, live, cursor, text: str, box: str, fix: bool = False):
    messages.append(gr.ChatMessage(role="assistant", content=text))
    return outputs(messages, live, cursor, box=box, fix=fix)


def auto_approver(cap_usd: float, ask):
    """Approve a paid action whose estimate is at most `cap_usd` without asking; ask for the rest."""
    def approve(action: str, details: dict) -> bool:
        estimate = details.get("max_cost_usd")
        if isinstance(estimate, int | float) and estimate <= cap_usd:
            return True
        return ask(action, details)
    return approve


def _lower(a: float | None, b: float | None) -> float | None:
    return None if a is None and b is None else min(x for x in (a, b) if x is not None)


def new_live(who, prefs: dict | None, title: str):
    """A new session for `who` with this browser session's turn options, live (not yet running a turn)."""
    from agent.session import Session
    from agent.target import Budget

    options = turn_options(prefs)
    budget = options.budget
    if who.budget:  # a visitor on the owner's keys: their own budget may only be lower
        budget = Budget(usd=_lower(budget.usd, who.budget.usd), hours=_lower(budget.hours, who.budget.hours))
    session = Session(who.config, ledger=ledger(who.config.settings.data_dir), title=title[:80], user=who.user,
                      targets=list(options.targets) or None, budget=budget or None)
    if options.auto_approve_usd is not None:
        session.ctx.approve = auto_approver(options.auto_approve_usd, session.ctx.approve)
    live = live_turns.LiveSession(session, on_end=functools.partial(live_turns.end_of_turn, push=options.push,
                                                                     repo_id=options.hub_repo))
    live.options = options
    return live


def first_output_first(handler):
    """A streaming handler whose first output goes out before any turn starts (`agent.live.ahead_of_turns`)."""
    @functools.wraps(handler)
    def streaming(*args, **kwargs):
        yield from live_turns.ahead_of_turns(handler(*args, **kwargs))
    return streaming


@first_output_first
def chat(message: str, history: list, live_id, cursor, prefs: dict, profile: gr.OAuthProfile | None = None,
         token: gr.OAuthToken | None = None, request: gr.Request | None = None):
    """Start a turn and follow it (see the module docstring)."""
    messages = _messages(history)
    who = caller(prefs, profile, token, request)
    live = live_turns.find(live_id, who.user if who else None)
    cursor = cursor or 0
    if not (message or "").strip():
        yield outputs(messages, live, cursor)
        return
    if who is None:
        yield _refusal(messages, None, cursor, SIGN_IN, message)
        return
    if live is not None and live.running:
        yield _refusal(messages, live, cursor, APPROVAL_PENDING if live.waiting_for_approval else BUSY, message)
        return
    problem = missing_credentials(who.config)
    if problem:
        yield _refusal(messages, live, cursor, error_content(problem), message, fix=True)
        return
    messages.append(gr.ChatMessage(role="user", content=message))  # shown at once; the turn's own user event
    yield outputs(messages, live, cursor, box="")                    # is then skipped (`_stream`)
    if live is None or live.session.config != who.config or (live.options is not None
                                                              and live.options != turn_options(prefs)):
        live = new_live(who, prefs, message)
    start = live.start(message)
    yield from _stream(live, messages, start, shown_running=False)


@first_output_first
def run_demo(history: list, live_id, prefs: dict, profile: gr.OAuthProfile | None = None,
             request: gr.Request | None = None):
    """The scripted offline demo, clearly labelled as such: anyone may run it, and it runs with no key at all."""
    from agent.config import AgentConfig
    from agent.demo import DEMO_TASK, prepare_demo
    from agent.session import Session

    messages = _messages(history)
    user = user_of(profile, request)
    current = live_turns.find(live_id, user)
    if user is None:
        yield _refusal(messages, None, 0, SIGN_IN, gr.update())
        return
    if current is not None and current.running:
        yield _refusal(messages, current, len(current.events), BUSY, gr.update())
        return
    config = AgentConfig.demo(settings=config_for(prefs or {}).settings.with_(hf_token=None, github_token=None))
    session = Session(config, ledger=ledger(config.settings.data_dir), title="offline demo", user=user)
    live = live_turns.LiveSession(session, on_end=live_turns.end_of_turn)
    live.record(Event("notice", "**Scripted offline demo** — a replayed plan, not an LLM. Tools, training and "
                                "evaluation are real.", data={"demo": True}))
    render_event(live.events[-1], messages)
    yield outputs(messages, live, len(live.events))
    variables = prepare_demo(config.settings.data_dir)
    start = live.start(DEMO_TASK, variables=variables)
    yield from _stream(live, messages, start, shown_running=False)


@first_output_first
def reattach(profile: gr.OAuthProfile | None = None, request: gr.Request | None = None):
    """On page load: the user's running (or last) session here, replayed, then followed while it runs."""
    live = live_turns.latest(user_of(profile, request))
    if live is None:
        yield outputs([], None, 0)
        return
    yield from replay_and_follow(live)


def replay_and_follow(live):
    messages: list[gr.ChatMessage] = []
    count = len(live.events)
    for event in live.events[:count]:
        render_event(event, messages)
    yield outputs(messages, live, count)
    if live.running and not live.waiting_for_approval:
        yield from _stream(live, messages, count, shown_running=True)


def _stop(live_id, cancel_jobs: bool, user: str | None) -> str:
    live = live_turns.find(live_id, user)
    if live is None or not live.running:
        return "Nothing is running."
    live.stop(cancel_jobs=cancel_jobs)
    return "Stopping after the current step" + (" and cancelling its jobs…" if cancel_jobs else "…")


def stop(live_id, profile: gr.OAuthProfile | None = None, request: gr.Request | None = None) -> str:
    """The Stop button and `/stop`: the turn ends between steps, its jobs keep running; the followers see it end."""
    return _stop(live_id, False, user_of(profile, request))


def stop_and_cancel(live_id, profile: gr.OAuthProfile | None = None, request: gr.Request | None = None) -> str:
    """Stop the turn and cancel the session's running jobs."""
    return _stop(live_id, True, user_of(profile, request))


def answer_approval(approved: bool, history: list, live_id, cursor, reason: str = "",
                    profile: gr.OAuthProfile | None = None, request: gr.Request | None = None):
    """Answer the approval the turn waits for, then stream the rest of it: yields outputs plus a note."""
    messages = _messages(history)
    live = live_turns.find(live_id, user_of(profile, request))
    if live is None or not live.answer_approval(approved, reason or ""):
        yield (*outputs(messages, live, cursor or 0), "Nothing is waiting for approval.")
        return
    note = "Approved." if approved else "Rejected." + (" The agent reads your reason." if reason else "")
    for update in _stream(live, messages, cursor or 0):
        yield (*update, note)


@first_output_first
def approve(history: list, live_id, cursor, profile: gr.OAuthProfile | None = None,
            request: gr.Request | None = None):
    """The Approve button and the `/approve` endpoint."""
    yield from answer_approval(True, history, live_id, cursor, "", profile, request)


@first_output_first
def reject(history: list, live_id, cursor, reason: str = "", profile: gr.OAuthProfile | None = None,
           request: gr.Request | None = None):
    """The Reject button and the `/reject` endpoint: `reason` reaches the agent as the refused tool's error."""
    yield from answer_approval(False, history, live_id, cursor, reason, profile, request)


def tick(live_id, profile: gr.OAuthProfile | None = None, request: gr.Request | None = None):
    """The timer's refresh of the status line and the buttons (a run started or ended in another tab)."""
    live = live_turns.find(live_id, user_of(profile, request))
    running = live is not None and live.running
    return (status_line(live), gr.update(interactive=not running), gr.update(visible=running),
            gr.update(visible=running))
