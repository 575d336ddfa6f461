"""Everything that configures one agent: which LLM, which keys, which compute, which limits.

Read from the environment by `AgentConfig.from_env()`; the app overrides fields per browser
session (keys typed into the settings panel live only in that session's config object).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from tools.settings import Settings

BACKENDS = ("anthropic", "hf-inference", "openai-compatible", "scripted")
DEMO_PLAN = Path(__file__).parent / "demo_plan.yaml"
DEFAULT_BUDGET_USD = 20.0  # what an app or CLI session may spend unless ML_INTERN_BUDGET_USD or --budget-usd say


def visitor_endpoints_allowed() -> bool:
    """Whether a visitor of the app may choose where the server sends LLM requests (the OpenAI-compatible
    base URL, a URL as the model id): the owner's `ML_INTERN_ALLOW_VISITOR_ENDPOINTS` (1 or 0) decides;
    unset, it is allowed when running locally and refused on a Space (`SPACE_ID` set), where any visitor
    could make the server POST to an address of their choosing."""
    value = os.environ.get("ML_INTERN_ALLOW_VISITOR_ENDPOINTS", "").strip().lower()
    if value:
        return value in ("1", "true", "yes", "on")
    return not os.environ.get("SPACE_ID")


def budget_from_env(env) -> float | None:
    """The default spending cap of the app's and the CLI's sessions: `ML_INTERN_BUDGET_USD` dollars (default
    `DEFAULT_BUDGET_USD`); "none" or "0" for no cap."""
    text = str(env.get("ML_INTERN_BUDGET_USD", "")).strip().lower()
    if not text:
        return DEFAULT_BUDGET_USD
    if text in ("none", "0", "off"):
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise ValueError(f"ML_INTERN_BUDGET_USD must be a positive number of dollars, or none; got {text!r}")
    return value


def default_model_id() -> str:
    from agent.models import DEFAULT_MODEL_ID

    return DEFAULT_MODEL_ID


@dataclass(frozen=True)
class AgentConfig:
    backend: str = "anthropic"
    model_id: str = field(default_factory=default_model_id)
    anthropic_api_key: str | None = field(default=None, repr=False)
    anthropic_base_url: str | None = None
    hf_provider: str | None = None
    openai_base_url: str | None = None
    openai_api_key: str | None = field(default=None, repr=False)
    scripted_plan: Path | None = None
    max_steps: int = 300
    auto_approve: bool = False
    max_observation_chars: int = 20_000  # what one step hands back to the LLM (agent/caps.py)
    max_event_chars: int = 20_000  # each string of an event shown or stored in the ledger
    budget_usd: float | None = None  # the session's spending cap (LLM calls and jobs); from_env: DEFAULT_BUDGET_USD
    # LLM call limits; None takes agent/llm_faults.py's default (10 s, 600 s, 60 s, 3 retries)
    llm_connect_timeout_s: float | None = None
    llm_read_timeout_s: float | None = None  # a reply that is not streamed; the whole stream elsewhere than Claude
    llm_stream_idle_timeout_s: float | None = None  # silence inside a streamed Claude reply
    llm_max_retries: int | None = None  # on 429, 5xx, 529 overloaded, timeouts and broken streams
    settings: Settings = field(default_factory=Settings)

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown LLM backend {self.backend!r}: choose one of {', '.join(BACKENDS)}")

    @classmethod
    def from_env(cls, **overrides) -> AgentConfig:
        env = os.environ
        values = dict(
            backend=env.get("ML_INTERN_LLM_BACKEND", "anthropic"),
            anthropic_api_key=env.get("ANTHROPIC_API_KEY") or None,
            anthropic_base_url=env.get("ANTHROPIC_BASE_URL") or None,
            hf_provider=env.get("ML_INTERN_HF_PROVIDER") or None,
            openai_base_url=env.get("ML_INTERN_OPENAI_BASE_URL") or None,
            openai_api_key=env.get("OPENAI_API_KEY") or None,
            settings=Settings.from_env(),
        )
        if env.get("ML_INTERN_MODEL"):
            values["model_id"] = env["ML_INTERN_MODEL"]
        if env.get("ML_INTERN_SCRIPTED_PLAN"):
            values["scripted_plan"] = Path(env["ML_INTERN_SCRIPTED_PLAN"])
        if env.get("ML_INTERN_MAX_STEPS"):
            values["max_steps"] = int(env["ML_INTERN_MAX_STEPS"])
        if env.get("ML_INTERN_MAX_OBSERVATION_CHARS"):
            values["max_observation_chars"] = int(env["ML_INTERN_MAX_OBSERVATION_CHARS"])
        if env.get("ML_INTERN_MAX_EVENT_CHARS"):
            values["max_event_chars"] = int(env["ML_INTERN_MAX_EVENT_CHARS"])
        for name, cast in (("llm_connect_timeout_s", float), ("llm_read_timeout_s", float),
                           ("llm_stream_idle_timeout_s", float), ("llm_max_retries", int)):
            if env.get(f"ML_INTERN_{name.upper()}"):
                values[name] = cast(env[f"ML_INTERN_{name.upper()}"])
        values["budget_usd"] = budget_from_env(env)
        values.update(overrides)
        return cls(**values)

    @classmethod
    def demo(cls, settings: Settings | None = None, plan: Path = DEMO_PLAN) -> AgentConfig:
        """The offline demo: a scripted model replaying `plan`, the local compute backend."""
        settings = settings or Settings.from_env()
        return cls(backend="scripted", model_id="scripted-demo", scripted_plan=plan,
                   auto_approve=True, settings=settings.with_(compute_backend="local"))

    def with_(self, **changes) -> AgentConfig:
        return replace(self, **changes)

    @property
    def hf_token(self) -> str | None:
        return self.settings.hf_token

    @property
    def secrets(self) -> list[str]:
        """Every secret this config holds, for redaction."""
        return [s for s in (self.anthropic_api_key, self.openai_api_key) if s] + self.settings.secrets
