"""Many users of one Space: who runs on whose keys, whose experiments each one sees, approvals that wait alone.

The handlers are called as Gradio calls them, with the `gr.OAuthProfile`/`gr.OAuthToken` it injects for a
signed-in visitor (None for one who is not) and the `gr.Request` of their browser session.
"""

from __future__ import annotations

import json

import gradio as gr
import pytest
import yaml

import app
from agent import live as live_turns
from agent.target import Budget
from evals.fixture_data import TRAIN_FILE
from tests.fakes.jobs_api import serve_jobs_api
from ui import chat as chat_handlers
from ui import experiments, identity

OWNER_HF, OWNER_ANTHROPIC = "hf_owner_canary_5b1e0c9d7a", "sk-ant-owner-canary-3f8e2d"
ALICE_HF, BOB_HF = "hf_alice_canary_8c2f4a6e1b", "hf_bob_canary_4d9e7b3a5c"
JOB_PLAN = [  # a paid HF Jobs run: submit_job asks for approval
    {"code": 'run = write_training_script(model="Qwen/Qwen3-0.6B", dataset="trl-lib/Capybara", '
             'hub_model_id="fake-user/sft-1")\nprint(run["run_id"])'},
    {"code": 'job = submit_job(run_id=run["run_id"], flavor="a10g-small", timeout_minutes=30)\nprint(job["job_id"])'},
    {"final_answer": "submitted"},
]


def signed_in(username: str, token: str) -> tuple[gr.OAuthProfile, gr.OAuthToken]:
    profile = gr.OAuthProfile({"name": username.title(), "preferred_username": username,
                               "profile": f"https://huggingface.co/{username}", "picture": ""})
    return profile, gr.OAuthToken(token=token, scope="openid profile inference-api jobs", expires_at=0)


def browser(session_hash: str) -> gr.Request:
    return gr.Request(session_hash=session_hash)


def turn(*args) -> tuple[list, live_turns.LiveSession | None, str]:
    """Run `ui.chat.chat(*args)` to its last output: (messages, the live session it followed, text box)."""
    messages, live_id, _cursor, box, *_ = list(chat_handlers.chat(*args))[-1]
    user = identity.user_of(args[5] if len(args) > 5 else None, args[7] if len(args) > 7 else None)
    return messages, live_turns.find(live_id, user), box


def contents(messages) -> list[str]:
    return [str(m.content) for m in messages]


def write_plan(path, steps) -> str:
    path.write_text(yaml.safe_dump(steps))
    return str(path)


@pytest.fixture
def space(monkeypatch, data_dir):
    """A Space whose owner set an HF token and an Anthropic key as secrets and shares neither."""
    for name, value in (("SPACE_ID", "owner/ml-intern"), ("SPACE_AUTHOR_NAME", "owner"),
                        ("ML_INTERN_DATA_DIR", str(data_dir)), ("HF_TOKEN", OWNER_HF),
                        ("ANTHROPIC_API_KEY", OWNER_ANTHROPIC)):
        monkeypatch.setenv(name, value)
    for name in ("ML_INTERN_SHARE_OWNER_KEYS", "ML_INTERN_VISITOR_BUDGET_USD", "ML_INTERN_VISITOR_BUDGET_HOURS",
                 "ML_INTERN_LLM_BACKEND", "ML_INTERN_COMPUTE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def keys(who: identity.Caller) -> tuple:
    config = who.config
    return config.anthropic_api_key, config.settings.hf_token


def test_locally_the_environment_serves_the_one_local_user(space):
    space.delenv("SPACE_ID")
    who = identity.caller({}, None, None, None)
    assert (who.user, keys(who), who.budget) == ("local", (OWNER_ANTHROPIC, OWNER_HF), None)
    assert not any(isinstance(b, gr.LoginButton) for b in app.build_app().blocks.values())


def test_the_owner_signed_in_gets_the_spaces_secrets(space):
    who = identity.caller({}, *signed_in("owner", "hf_owner_oauth"), browser("o1"))
    assert (who.user, keys(who), who.budget, who.config.backend) == ("owner", (OWNER_ANTHROPIC, OWNER_HF), None,
                                                                      "anthropic")


def test_sign_in_is_offered_on_a_space_with_an_oauth_app(space):
    """What a Space with `hf_oauth: true` sets: SYSTEM and the OAuth app's variables (gradio.oauth reads them)."""
    assert not any(isinstance(b, gr.LoginButton) for b in app.build_app().blocks.values()), "no OAuth app yet"
    oauth_app = {"OAUTH_CLIENT_ID": "client-id", "OAUTH_CLIENT_SECRET": "client-secret",
                 "OAUTH_SCOPES": "openid profile inference-api jobs", "OPENID_PROVIDER_URL": "https://huggingface.co"}
    for name, value in {"SYSTEM": "spaces", **oauth_app}.items():
        space.setenv(name, value)
    for name, value in oauth_app.items():
        space.setattr(gr.oauth, name, value)
    blocks = app.build_app()
    assert any(isinstance(b, gr.LoginButton) for b in blocks.blocks.values())
    assert {"/login/huggingface", "/login/callback", "/logout"} <= {getattr(r, "path", "") for r in blocks.app.routes}


def test_a_signed_in_visitor_runs_on_their_own_token_or_their_own_key(space):
    who = identity.caller({}, *signed_in("alice", ALICE_HF), browser("a1"))
    assert (who.user, keys(who), who.budget) == ("alice", (None, ALICE_HF), None)
    assert (who.config.backend, who.config.model_id) == ("hf-inference", identity.INFERENCE_PROVIDERS_MODEL)
    assert who.config.settings.resolved_compute_backend == "hf-jobs", "their token serves their Jobs"
    assert OWNER_HF not in who.config.secrets and OWNER_ANTHROPIC not in who.config.secrets

    own = identity.caller({"anthropic_api_key": "sk-ant-alice-own"}, *signed_in("alice", ALICE_HF), browser("a1"))
    assert (own.config.backend, keys(own)) == ("anthropic", ("sk-ant-alice-own", ALICE_HF))


def test_without_sign_in_a_visitor_gets_the_owners_keys_only_where_the_owner_opts_in_and_then_a_budget(space):
    assert identity.caller({}, None, None, browser("anon1")) is None
    messages, live, box = turn("train something", [], None, 0, {}, None, None, browser("anon1"))
    assert live is None and box == "train something"
    assert "Sign in with Hugging Face" in messages[-1].content and "offline demo" in messages[-1].content

    space.setenv("ML_INTERN_SHARE_OWNER_KEYS", "1")
    who = identity.caller({}, None, None, browser("anon1"))
    assert (who.user, keys(who), who.budget) == ("visitor-anon1", (OWNER_ANTHROPIC, OWNER_HF), Budget(usd=1, hours=1))
    space.setenv("ML_INTERN_VISITOR_BUDGET_USD", "0.25")
    assert identity.caller({}, None, None, browser("anon1")).budget == Budget(usd=0.25, hours=1)
    alice = identity.caller({}, *signed_in("alice", ALICE_HF), browser("a1"))
    assert (keys(alice), alice.budget) == ((OWNER_ANTHROPIC, ALICE_HF), Budget(usd=0.25, hours=1)), \
        "a signed-in visitor's Hub and Jobs stay on their own token"


def test_a_shared_key_turn_runs_under_the_visitor_budget(space, tmp_path):
    space.setenv("ML_INTERN_SHARE_OWNER_KEYS", "1")
    space.setenv("ML_INTERN_LLM_BACKEND", "scripted")
    space.setenv("ML_INTERN_SCRIPTED_PLAN", write_plan(tmp_path / "plan.yaml", [{"final_answer": "hello"}]))
    messages, live, _ = turn("hi", [], None, 0, {}, None, None, browser("anon2"))
    session = live.session
    assert session.guard.budget == Budget(usd=1, hours=1) and session.ctx.user == "visitor-anon2"
    assert any("Budget: $1, 1 h" in text for text in contents(messages)) and "hello" in contents(messages)
    assert not live.running and messages[-1].content.startswith("**In short:**"), "a plain summary ends the turn"


def test_two_signed_in_users_see_only_their_own_and_an_approval_waits_without_holding_the_other(
        space, tmp_path, tiny_model_dir):
    jobs = serve_jobs_api(token=ALICE_HF)
    space.setenv("HF_ENDPOINT", jobs.url)
    space.setenv("ML_INTERN_LLM_BACKEND", "scripted")
    space.setenv("ML_INTERN_READ_DIRS", str(tiny_model_dir))
    alice, bob = signed_in("alice", ALICE_HF), signed_in("bob", BOB_HF)
    try:
        space.setenv("ML_INTERN_SCRIPTED_PLAN", write_plan(tmp_path / "alice.yaml", JOB_PLAN))
        a_out = list(chat_handlers.chat("alice's goal", [], None, 0, {}, *alice, browser("a1")))[-1]
        a_messages, a_live_id, a_cursor = a_out[:3]
        a_live = live_turns.find(a_live_id, "alice")
        assert a_live.waiting_for_approval and "Approval needed" in a_messages[-1].metadata["title"]
        assert not [r for r in jobs.requests if r.method == "POST"], "nothing is submitted before the answer"
        refused, _, _, box = list(chat_handlers.chat("next", a_messages, a_live_id, a_cursor, {}, *alice,
                                                     browser("a1")))[-1][:4]
        assert (refused[-1].content, box) == (chat_handlers.APPROVAL_PENDING, "next"), "refused, never detached"
        assert live_turns.find(a_live_id, "bob") is None, "bob cannot reach alice's live session"

        space.setenv("ML_INTERN_SCRIPTED_PLAN", write_plan(tmp_path / "bob.yaml", [
            {"code": f'run = write_training_script(model="{tiny_model_dir}", dataset="{TRAIN_FILE}", max_steps=2)'
                     '\nprint(run["run_id"])'},
            {"final_answer": "written"}]))
        b_messages, b_live, _ = turn("bob's goal", [], None, 0, {"compute": "local"}, *bob, browser("b1"))
        assert not b_live.running and "written" in contents(b_messages), "bob's turn ran while alice's waited"

        out = list(chat_handlers.approve(a_messages, a_live_id, a_cursor, *alice[:1], browser("a1")))[-1]
        a_messages, note = out[0], out[-1]
        assert note == "Approved." and not a_live.running and "submitted" in contents(a_messages)
        [spec] = [r.json() for r in jobs.requests if r.method == "POST"]
        assert spec["secrets"] == {"HF_TOKEN": ALICE_HF}, "alice's job runs on her own token"
        assert list(chat_handlers.approve(b_messages, b_live.session.id, 0, *bob[:1], browser("b1")))[-1][-1] == \
            "Nothing is waiting for approval."
        assert list(chat_handlers.approve(b_messages, a_live_id, 0, *bob[:1], browser("b1")))[-1][-1] == \
            "Nothing is waiting for approval.", "bob cannot answer alice's approval"
        a_session, b_session = a_live.session, b_live.session
    finally:
        jobs.close()

    for (profile, _), request, goal, other in ((alice, browser("a1"), "alice's goal", b_session),
                                               (bob, browser("b1"), "bob's goal", a_session)):
        rows = experiments.experiments_rows(profile, request)
        assert [row[-1] for row in rows] == [goal]
        choices = experiments.experiment_choices(profile, request).choices
        assert [label for label, _ in choices] == [f"{rows[0][0]}: {goal}"]
        foreign = other.ctx.experiment_id
        assert experiments.experiment_detail(foreign, profile, request)[0] == f"There is no experiment {foreign}."
    assert experiments.experiments_rows(None, browser("someone")) == []
    shown = json.dumps([str(m.content) for m in a_messages + b_messages])
    assert not any(secret in shown for secret in (ALICE_HF, BOB_HF, OWNER_HF, OWNER_ANTHROPIC))

