"""The app for a new user: readable steps, plain errors with their fix, settings that follow the backend and refuse
bad values with a message, the jobs panel, and the session list that reopens a past session."""

from __future__ import annotations

import gradio as gr
import pytest
import yaml

from agent import live as live_turns
from agent.events import Event
from agent.models import DEFAULT_MODEL_ID
from ui import chat as chat_handlers
from ui import jobs as jobs_panel
from ui import sessions
from ui.identity import INFERENCE_PROVIDERS_MODEL, env_config
from ui.render import readable_observation, render_event
from ui.settings import model_for_backend, save_settings, turn_options

OBSERVATION = ("Execution logs:\n{'run_id': 3, 'score': 0.9916666666666667, 'flags': {'packing': True}, "
               "'log': 'line one\\nline two'}\nplain 0.123456789 v1.2.3\nLast output from code snippet:\nNone")


@pytest.fixture
def local(monkeypatch, data_dir, tmp_path):
    for name, value in (("ML_INTERN_DATA_DIR", str(data_dir)), ("ML_INTERN_LLM_BACKEND", "scripted"),
                        ("ML_INTERN_COMPUTE", "local")):
        monkeypatch.setenv(name, value)
    for name in ("SPACE_ID", "ANTHROPIC_API_KEY", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(live_turns, "_REGISTRY", {})
    plan = tmp_path / "plan.yaml"
    monkeypatch.setenv("ML_INTERN_SCRIPTED_PLAN", str(plan))
    return plan


def test_observations_read_as_markdown_without_executor_boilerplate():
    text = readable_observation(OBSERVATION)
    assert "Execution logs" not in text and "Last output" not in text and "None" not in text
    assert "- **run_id**: 3\n- **score**: 0.992\n- **flags**: packing=True" in text
    assert "```\nline one\nline two\n```" in text, "multi-line values stay readable"
    assert "plain 0.123 v1.2.3" in text, "long decimals rounded, versions left alone"


def test_no_empty_cards_and_errors_are_open_plain_words_with_the_fix():
    messages = []
    render_event(Event("tool_result", "Execution logs:\n\nLast output from code snippet:\nNone", step=1), messages)
    render_event(Event("notice", ""), messages)
    assert messages == []
    render_event(Event("error", "ValueError: No Anthropic API key: set the ANTHROPIC_API_KEY environment variable"),
                 messages)
    [error] = messages
    assert not error.metadata.get("title"), "shown open, not folded into a step"
    assert error.content.startswith("✗ **No Anthropic API key") and "ValueError" not in error.content
    assert "**Settings**" in error.content and "offline demo" in error.content


def test_a_job_card_ends_in_its_final_state():
    messages = []
    update = {"job_id": "j1", "run_id": 1, "backend": "hf-jobs", "progress": {"step": 35, "max_steps": 150,
                                                                           "eta_minutes": 4.16666}}
    render_event(Event("job_update", data={**update, "stage": "running"}), messages)
    render_event(Event("thought", "meanwhile", step=3), messages)
    render_event(Event("job_update", data={**update, "stage": "completed", "progress": {}}), messages)
    assert len(messages) == 2 and "**completed**" in messages[0].content
    assert "step 35/150" not in messages[0].content


def test_the_model_id_follows_the_backend_unless_the_user_typed_one():
    assert model_for_backend("hf-inference", DEFAULT_MODEL_ID) == INFERENCE_PROVIDERS_MODEL
    assert model_for_backend("anthropic", INFERENCE_PROVIDERS_MODEL) == DEFAULT_MODEL_ID
    assert model_for_backend("openai-compatible", "") == "qwen3:8b"
    assert model_for_backend("hf-inference", "my-org/my-model") == "my-org/my-model"


@pytest.mark.parametrize("changes, problem", [
    ({"target": "gsm8k>>1"}, "cannot read the target"), ({"budget_usd": -3}, "Budget ($) must be a positive"),
    ({"max_steps": 0}, "Max steps must be a whole number from 1 to 1000"), ({"max_steps": "many"}, "must be numbers"),
    ({"auto_approve": True, "auto_approve_usd": -1}, "auto-approve cap must be zero or more")])
def test_a_bad_setting_gives_a_message_and_keeps_the_previous_settings(local, changes, problem):
    values = {"max_steps": 300, "target": "", "budget_usd": 0, "budget_hours": 0, "auto_approve": False,
              "auto_approve_usd": 1, "hub_repo": "", "push": False, **changes}
    previous = {"backend": "scripted", "target": "gsm8k>=0.6"}
    prefs, note = save_settings("scripted", "scripted", "", "", "", "local", "", **values, previous=previous)
    assert prefs is previous and note.startswith("**Not saved:**") and problem in note


def test_saved_turn_options_hold_the_target_budget_and_auto_approve_cap(local):
    prefs, note = save_settings("scripted", "scripted", "", "", "", "local", "", 40, "tiny_sentiment>=0.6", 5, 0,
                                True, 2.5)
    options = turn_options(prefs)
    assert note.startswith("Saved") and prefs["max_steps"] == 40
    assert ([str(t) for t in options.targets], options.budget.usd, options.budget.hours, options.auto_approve_usd) \
        == (["tiny_sentiment>=0.6"], 5.0, None, 2.5)


def test_a_bad_server_setting_is_a_message_that_fits_where_the_app_runs(monkeypatch):
    monkeypatch.setenv("ML_INTERN_LLM_BACKEND", "bogus")
    monkeypatch.delenv("SPACE_ID", raising=False)
    config, problem = env_config()
    assert config.backend == "anthropic" and "export ML_INTERN_LLM_BACKEND=anthropic" in problem
    monkeypatch.setenv("SPACE_ID", "owner/ml-intern")
    assert "Space's Settings → Variables and secrets" in env_config()[1]


def test_without_a_key_the_message_says_what_to_do_here_and_offers_the_fix(local, monkeypatch):
    monkeypatch.setenv("ML_INTERN_LLM_BACKEND", "anthropic")
    out = list(chat_handlers.chat("improve Qwen3-1.7B on GSM8K", [], None, 0, {}))[-1]
    messages, live_id, box, fix = out[0], out[1], out[3], out[-1]
    assert live_id is None and box == "improve Qwen3-1.7B on GSM8K", "nothing started, the goal kept"
    assert "set `ANTHROPIC_API_KEY` in the environment" in messages[-1].content and fix["visible"] is True
    monkeypatch.setenv("SPACE_ID", "owner/ml-intern")
    monkeypatch.setenv("SPACE_AUTHOR_NAME", "owner")
    profile = gr.OAuthProfile({"name": "Owner", "preferred_username": "owner", "profile": "", "picture": ""})
    messages = list(chat_handlers.chat("go", [], None, 0, {}, profile, None, gr.Request(session_hash="o1")))[-1][0]
    assert "paste your own key in **Settings**" in messages[-1].content and "environment" not in messages[-1].content


def test_an_empty_message_runs_nothing(local):
    messages, live_id, *_ = list(chat_handlers.chat("   ", [], None, 0, {}))[-1]
    assert messages == [] and live_id is None and live_turns.latest("local") is None


def test_a_message_during_a_run_is_refused_and_the_run_goes_on(local):
    local.write_text(yaml.safe_dump([{"code": "print(sum(range(10**7)))"}] * 30 + [{"final_answer": "done"}]))
    chat = chat_handlers.chat("count", [], None, 0, {})
    next(chat), next(chat)  # the turn has started
    live = live_turns.latest("local")
    assert live.running
    messages, live_id, _, box, status, send, stop, *_ = list(chat_handlers.chat("another", [], live.session.id,
                                                                               0, {}))[-1]
    assert messages[-1].content == chat_handlers.BUSY and box == "another" and live_id == live.session.id
    assert send["interactive"] is False and stop["visible"] is True and "running · step" in status
    assert chat_handlers.stop(live.session.id).startswith("Stopping")
    rest = list(chat)
    assert not live.running and "Stopped by the user" in str(rest[-1][0][-1].content)


def test_the_jobs_panel_and_the_session_list(local, tiny_model_dir, data_dir):
    local.write_text(yaml.safe_dump([{"final_answer": "hello"}]))
    list(chat_handlers.chat("say hello", [], None, 0, {}))
    live = live_turns.latest("local")
    session = live.session
    run_id = session.ledger.create_run("sft", str(tiny_model_dir), "data.jsonl", user="local",
                                       experiment_id=session.ctx.current_experiment(), status="completed",
                                       job_id="local-77", backend="local", hardware="local", cost_usd=0.0)
    session.ledger.record_metrics(run_id, [(5, "loss", 2.0), (10, "loss", 1.5), (5, "learning_rate", 1e-3),
                                           (10, "reward", 0.5)])
    rows, picker, loss, learning, log = jobs_panel.refresh(session.id, None)
    assert rows == [[run_id, "train", "local-77", "completed", "step 10", "", "local", "$0.00"]]
    assert picker.value == run_id
    assert sorted(loss.itertuples(index=False, name=None)) == [(5, 2.0, "loss"), (10, 0.5, "reward"),
                                                              (10, 1.5, "loss")]
    assert list(learning.itertuples(index=False, name=None)) == [(5, 0.001, "learning_rate")]
    assert jobs_panel.refresh(session.id, None, None, gr.Request(session_hash="x"))[0] == rows  # local user
    assert jobs_panel.cancel(session.id, None) == "Pick a job first."

    [row] = sessions.session_rows()
    assert row[:3] == [session.id, "say hello", "open"] and row[4] == "$0.00"
    live_turns._REGISTRY.clear()  # as after a restart: the session is resumed from the ledger
    reopened = list(sessions.open_session(session.id, {}))[-1]
    shown = [m.content for m in reopened[0]]
    assert shown[0] == "say hello" and "hello" in shown and reopened[1] == session.id, "its events replayed"
    assert live_turns.find(session.id, "local").session is not session
    assert "There is no session" in list(sessions.open_session("nope", {}))[-1][0][-1].content
