"""The Settings tab: a field for every setting the command line has, kept for this browser session only.

A bad value gives a message on the page and keeps the previous settings; keys are never written to disk. The model
id follows the backend: switching backends swaps a default model id for the new backend's default.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from agent.config import BACKENDS, visitor_endpoints_allowed
from agent.target import Budget
from tools.targets import Target, parse_targets
from ui.identity import INFERENCE_PROVIDERS_MODEL, endpoint_prefs, env_config, on_space

ENDPOINT_LOCK = ("Locked by this server's owner: an address typed here would make the server send requests, "
                 "with its keys, wherever a visitor chose. The owner unlocks it by setting "
                 "`ML_INTERN_ALLOW_VISITOR_ENDPOINTS=1`.")
LABELS = {"model_id": "Model id", "openai_base_url": "OpenAI-compatible base URL"}
MAX_STEPS_LIMIT = 1000


def default_models() -> dict[str, str]:
    """A sensible model id per backend."""
    from agent.models import DEFAULT_MODEL_ID

    return {"anthropic": DEFAULT_MODEL_ID, "hf-inference": INFERENCE_PROVIDERS_MODEL,
            "openai-compatible": "qwen3:8b", "scripted": "scripted"}


def model_for_backend(backend: str, model_id: str) -> str:
    """The model id once the backend changes: the new backend's default, unless the user typed their own."""
    defaults = default_models()
    if not (model_id or "").strip() or model_id.strip() in defaults.values():
        return defaults.get(backend, "")
    return model_id


@dataclass(frozen=True)
class TurnOptions:
    """What a browser session's settings ask of its turns besides the config."""
    targets: tuple[Target, ...] = ()
    budget: Budget = Budget()
    auto_approve_usd: float | None = None  # paid actions up to this estimate go ahead without asking
    push: bool = False
    hub_repo: str | None = None


def turn_options(prefs: dict | None) -> TurnOptions:
    """The turn options saved in `prefs` (checked when they were saved)."""
    prefs = prefs or {}
    return TurnOptions(targets=tuple(parse_targets(prefs["target"])) if prefs.get("target") else (),
                       budget=Budget(usd=prefs.get("budget_usd"), hours=prefs.get("budget_hours")),
                       auto_approve_usd=prefs.get("auto_approve_usd"), push=bool(prefs.get("push")),
                       hub_repo=prefs.get("hub_repo") or None)


def _number(value) -> float | None:
    return None if value in (None, "") else float(value)


def _checked(prefs: dict) -> str | None:
    """What is wrong with the typed values, in plain words; None when they are fine."""
    try:
        if prefs.get("target"):
            parse_targets(prefs["target"])
        Budget(usd=prefs.get("budget_usd"), hours=prefs.get("budget_hours"))
    except ValueError as err:
        return str(err).replace("--budget-usd", "Budget ($)").replace("--budget-hours", "Budget (hours)")
    steps = prefs.get("max_steps")
    if steps is not None and not (steps == int(steps) and 1 <= steps <= MAX_STEPS_LIMIT):
        return f"Max steps must be a whole number from 1 to {MAX_STEPS_LIMIT}, got {steps:g}."
    cap = prefs.get("auto_approve_usd")
    if cap is not None and cap < 0:
        return f"The auto-approve cap must be zero or more dollars, got {cap:g}."
    if prefs.get("backend") not in BACKENDS:
        return f"Unknown LLM backend {prefs.get('backend')!r}: choose one of {', '.join(BACKENDS)}."
    return None


def save_settings(backend, model_id, anthropic_key, hf_token, github_token, compute, openai_url, max_steps=None,
                  target="", budget_usd=None, budget_hours=None, auto_approve=False, auto_approve_usd=None,
                  hub_repo="", push=False, previous: dict | None = None):
    """(this browser session's settings, a note): what was saved, or why nothing was."""
    texts = {"model_id": model_id, "anthropic_api_key": anthropic_key, "hf_token": hf_token,
             "github_token": github_token, "openai_base_url": openai_url, "target": target, "hub_repo": hub_repo}
    prefs = {"backend": backend, "compute": compute, "push": bool(push),
             **{key: (value or "").strip() for key, value in texts.items()}}
    try:
        prefs.update(max_steps=_number(max_steps), budget_usd=_number(budget_usd) or None,  # 0 or empty: no budget
                     budget_hours=_number(budget_hours) or None,
                     auto_approve_usd=_number(auto_approve_usd) if auto_approve else None)
    except (TypeError, ValueError):
        return previous or {}, "**Not saved:** the budget, the cap and max steps must be numbers."
    problem = _checked(prefs)
    if problem:
        return previous or {}, f"**Not saved:** {problem}"
    if prefs["max_steps"] is not None:
        prefs["max_steps"] = int(prefs["max_steps"])
    note = "Saved for this browser session only: keys are never written to disk or the ledger."
    owners, refused = env_config()[0], endpoint_prefs(prefs)
    typed = [LABELS[key] for key in sorted(refused) if prefs[key] and prefs[key] != (getattr(owners, key) or "")]
    if typed:
        note += f"\n\nNot saved: {' and '.join(typed)}. {ENDPOINT_LOCK}"
    return {key: value for key, value in prefs.items() if key not in refused}, note


def settings_tab(prefs: gr.State, problem: str | None) -> None:
    """The tab's fields and its Save button (inside a `gr.Tab`); `problem` is what is wrong with the server's own
    configuration, shown at the top."""
    env = env_config()[0]
    if problem:
        gr.Markdown(f"⚠ {problem}", elem_id="config-problem")
    key_where = "this browser session only" if on_space() else "this browser session; or set it in the environment"
    backend = gr.Dropdown(list(BACKENDS), value=env.backend, label="LLM backend")
    locked = not visitor_endpoints_allowed()
    model_id = gr.Textbox(value=env.model_id, label=LABELS["model_id"],
                          info="A model name: URLs are refused on this server." if locked else
                          "Follows the backend: each has a sensible default.")
    backend.change(model_for_backend, [backend, model_id], model_id, api_name=False, queue=False)
    anthropic_key = gr.Textbox("", type="password", label=f"ANTHROPIC_API_KEY ({key_where})")
    hf_token = gr.Textbox("", type="password", label=f"HF_TOKEN ({key_where})")
    github_token = gr.Textbox("", type="password", label=f"GITHUB_TOKEN ({key_where})")
    compute = gr.Dropdown(["auto", "local", "hf-jobs"], value=env.settings.compute_backend,
                          label="Compute backend (auto: HF Jobs when an HF token is set)")
    openai_url = gr.Textbox(value=env.openai_base_url or "", label=LABELS["openai_base_url"],
                            interactive=not locked, info=ENDPOINT_LOCK if locked else None)
    with gr.Row():
        max_steps = gr.Number(value=env.max_steps, label="Max steps per turn", precision=0)
        target = gr.Textbox("", label="Target", placeholder="e.g. gsm8k>=0.60 (keep iterating until met)")
        budget_usd = gr.Number(0, label="Budget ($, jobs and LLM; 0 = none)")
        budget_hours = gr.Number(0, label="Budget (hours; 0 = none)")
    with gr.Row():
        auto_approve = gr.Checkbox(False, label="Auto-approve paid jobs up to a cap")
        auto_approve_usd = gr.Number(label="Auto-approve cap ($ per job estimate)", value=1.0)
    with gr.Row():
        push = gr.Checkbox(False, label="At the end of a turn, push the best checkpoint to the Hub (needs an HF token)")
        hub_repo = gr.Textbox("", label="Hub repo for the best checkpoint", placeholder="default <user>/ml-intern-"
                              "experiment-ID")
    gr.Markdown(f"Data directory: `{env.settings.data_dir}` (set by the server's owner: `ML_INTERN_DATA_DIR`)."
                + (f" Scripted plan: `{env.scripted_plan}` (`ML_INTERN_SCRIPTED_PLAN`)." if env.scripted_plan else ""))
    saved = gr.Markdown(elem_id="settings-note")
    gr.Button("Save", elem_id="save-settings").click(
        save_settings, [backend, model_id, anthropic_key, hf_token, github_token, compute, openai_url, max_steps,
                        target, budget_usd, budget_hours, auto_approve, auto_approve_usd, hub_repo, push, prefs],
        [prefs, saved], api_name="settings")
