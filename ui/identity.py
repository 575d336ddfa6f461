"""Who runs a browser session's turn, on whose keys, with which settings.

Off a Space, the environment's keys serve the one local user. On a Space, visitors sign in with Hugging Face; a
signed-in visitor's own token serves their Hub, Jobs and LLM calls (Inference Providers) unless they paste their own
Anthropic key; the owner's secrets serve the owner, and serve visitors only where the owner sets
`ML_INTERN_SHARE_OWNER_KEYS=1`, under a per-visitor budget.

    who = caller(prefs, profile, token, request)   # Caller(user, config, budget) or None: sign in first
    config, problem = env_config()                 # the environment's config; a bad value is a message, not a crash
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import gradio as gr

from agent.config import BACKENDS, AgentConfig, visitor_endpoints_allowed
from agent.target import Budget
from tools.ledger import LOCAL_USER
from tools.settings import Settings

# The LLM of a signed-in visitor without an Anthropic key of their own: smolagents' InferenceClientModel default,
# served by Inference Providers on the visitor's token.
INFERENCE_PROVIDERS_MODEL = "Qwen/Qwen3-Next-80B-A3B-Thinking"
SIGN_IN = ("**Sign in with Hugging Face** (the button at the top) to chat: your own token then serves the Hub, "
           "Jobs and the LLM (through Inference Providers), or paste your own Anthropic key in Settings. "
           "The offline demo runs without signing in.")


def env_config() -> tuple[AgentConfig, str | None]:
    """The environment's config, and what is wrong with it (None when nothing): a bad value falls back to the
    defaults and the page says what to set, where the owner sets it."""
    try:
        return AgentConfig.from_env(), None
    except ValueError as err:
        where = ("in this Space's Settings → Variables and secrets, then restart the Space" if on_space()
                 else "in the environment (e.g. `export ML_INTERN_LLM_BACKEND=anthropic`) and restart `python app.py`")
        problem = (f"This server's configuration has a bad value: {err}. Fix it {where}. Until then the app "
                   f"uses the defaults (LLM backends: {', '.join(BACKENDS)}).")
        env = os.environ
        return AgentConfig(anthropic_api_key=env.get("ANTHROPIC_API_KEY") or None,
                           openai_api_key=env.get("OPENAI_API_KEY") or None, settings=Settings.from_env()), problem


def endpoint_prefs(prefs: dict) -> set[str]:
    """The settings in `prefs` that choose where the server sends requests, where the owner does not let
    a visitor choose (agent.config.visitor_endpoints_allowed): a base URL, or a URL as the model id
    (huggingface_hub's InferenceClient posts to a model id that is a URL, with the HF token)."""
    if visitor_endpoints_allowed():
        return set()
    refused = {"openai_base_url"} & prefs.keys()
    if "://" in (prefs.get("model_id") or ""):
        refused.add("model_id")
    return refused


def config_for(prefs: dict) -> AgentConfig:
    """The environment's config with this browser session's settings on top (less those `endpoint_prefs` refuses)."""
    base = env_config()[0]
    refused = endpoint_prefs(prefs)
    settings = base.settings
    if prefs.get("hf_token"):
        settings = settings.with_(hf_token=prefs["hf_token"])
    if prefs.get("github_token"):
        settings = settings.with_(github_token=prefs["github_token"])
    if prefs.get("compute"):
        settings = settings.with_(compute_backend=prefs["compute"])
    changes = {"settings": settings}
    if prefs.get("max_steps"):
        changes["max_steps"] = int(prefs["max_steps"])
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
    """What one visitor's session may spend on the owner's keys: `ML_INTERN_VISITOR_BUDGET_USD` (default 1) in LLM
    calls and jobs (agent/target.py, tools/spend.py) and `ML_INTERN_VISITOR_BUDGET_HOURS` (default 1) of wall time."""
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


def visitor_config(prefs: dict, token: str) -> AgentConfig:
    """A signed-in visitor's config: the environment's choices without the owner's keys. Their token (or one they
    pasted) serves the Hub and Jobs, and the LLM through Inference Providers where the LLM would need an owner's key."""
    config = config_for(prefs)
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
    session's settings, as `config_for` makes them. A signed-in visitor: their own token (`visitor_config`). Where the
    owner shares their keys (`owner_keys_shared`), any visitor runs on them, under `visitor_budget()`; a signed-in
    one still uses their own token for the Hub and Jobs."""
    prefs = prefs or {}
    user = user_of(profile, request)
    if not on_space() or (profile is not None and profile.username == os.environ.get("SPACE_AUTHOR_NAME")):
        return Caller(user, config_for(prefs))
    if user is None:
        return None
    if owner_keys_shared():
        config = config_for(prefs)
        if token is not None and profile is not None and not prefs.get("hf_token"):
            config = config.with_(settings=config.settings.with_(hf_token=token.token))
        return Caller(user, config, visitor_budget())
    if profile is None or token is None:
        return None
    return Caller(user, visitor_config(prefs, token.token))
