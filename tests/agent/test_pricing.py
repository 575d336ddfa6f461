"""LLM prices (agent/pricing.py) and a session's LLM spend: each call priced from its tokens into the spend ledger
and onto its token_usage event; a model without a price is refused under a cap; the cap stops a session."""

from __future__ import annotations

import json
from typing import get_args

import pytest
from anthropic.types.model_param import ModelParam

from agent.config import AgentConfig, budget_from_env
from agent.models import DEFAULT_MODEL_ID, ScriptedModel
from agent.pricing import BUILTIN_PRICES, PRICES_ENV, Price, load_prices, price_of
from agent.session import Session
from tests.fakes.anthropic_api import FAKE_KEY, start_fake_anthropic

STEP = "Thought: look at the data first.\n<code>\nprint('rows: 600')\n</code>"
ANSWER = "Thought: done.\n<code>\nfinal_answer('the data has 600 rows')\n</code>"


def test_price_arithmetic_counts_uncached_input_output_and_both_cache_rates():
    price = price_of("claude-sonnet-5-5")
    assert (price.input, price.output, price.cache_write, price.cache_read) == pytest.approx((3.0, 15.0, 3.75, 0.3))
    usd = price.cost(input_tokens=1_000, output_tokens=500, cache_write_tokens=2_000, cache_read_tokens=10_000)
    assert usd == pytest.approx((1_000 * 3 + 500 * 15 + 2_000 * 3.75 + 10_000 * 0.3) / 1e6)  # $0.021
    # the same prompt read from the cache costs a tenth of sending it again uncached
    assert price.cost(cache_read_tokens=100_000) == pytest.approx(price.cost(input_tokens=100_000) / 10)
    assert price_of("claude-opus-5-5").cost(output_tokens=1_000_000) == pytest.approx(25.0)


def test_builtin_claude_prices_name_models_the_installed_sdk_lists():
    listed = set(get_args(get_args(ModelParam)[0]))
    claude = {model for model in BUILTIN_PRICES if model.startswith("claude")}
    assert DEFAULT_MODEL_ID in claude and claude <= listed, claude - listed
    assert price_of("Qwen/Qwen3-Next-80B-A3B-Thinking") is not None  # the app's and smolagents' HF default
    assert price_of("Qwen/Qwen3-8B:together") == BUILTIN_PRICES["Qwen/Qwen3-8B"]  # a provider suffix is ignored
    assert price_of("scripted:demo_plan.yaml") == Price(0, 0, 0, 0)  # a replayed plan calls no LLM
    assert price_of("qwen3:8b") is None and price_of("claude-mythos-5") is None and price_of(None) is None


def test_prices_are_overridden_from_json_or_a_file_and_bad_ones_say_why(tmp_path):
    prices = load_prices({PRICES_ENV: json.dumps({"qwen3:8b": {"input": 0, "output": 0},
                                                  "claude-sonnet-5-5": [2, 10, 2.5, 0.2]})})
    assert price_of("qwen3:8b", prices) == Price(0, 0, 0, 0)
    assert price_of("claude-sonnet-5-5", prices) == Price(2, 10, 2.5, 0.2)
    assert price_of("claude-haiku-5-5", prices) == BUILTIN_PRICES["claude-haiku-5-5"]
    file = tmp_path / "prices.json"
    file.write_text(json.dumps({"my/model": {"input": 1, "output": 2, "cache_read": 0.5}}))
    assert price_of("my/model", load_prices({PRICES_ENV: str(file)})) == Price(1, 2, 1, 0.5)
    for bad, message in (("{not json", "not valid JSON"), (str(tmp_path / "missing.json"), "neither JSON nor"),
                         ('{"m": {"input": 1}}', "needs at least input and output"),
                         ('{"m": {"input": 1, "output": 2, "cached": 1}}', "unknown price keys"),
                         ('{"m": {"input": -1, "output": 2}}', "dollars per million tokens")):
        with pytest.raises(ValueError, match=message):
            load_prices({PRICES_ENV: bad})


def test_default_cap_of_the_app_and_cli_comes_from_the_environment():
    assert budget_from_env({}) == 20.0 and budget_from_env({"ML_INTERN_BUDGET_USD": "5.5"}) == 5.5
    assert budget_from_env({"ML_INTERN_BUDGET_USD": "none"}) is None
    with pytest.raises(ValueError, match="positive number of dollars"):
        budget_from_env({"ML_INTERN_BUDGET_USD": "-3"})
    assert AgentConfig().budget_usd is None  # a config built in code has no cap unless it says so


def test_a_model_without_a_price_is_refused_under_a_cap_before_any_call(settings, ledger):
    model = ScriptedModel([{"code": "print('it ran')"}], model_id="qwen3:8b")
    capped = Session(AgentConfig(backend="scripted", settings=settings, budget_usd=5.0), ledger=ledger, model=model)
    events = list(capped.run("count the rows"))
    [error] = [e for e in events if e.kind == "error"]
    assert "price of the LLM 'qwen3:8b' is unknown" in error.text and PRICES_ENV in error.text
    assert model.calls == 0 and not [e for e in events if e.kind in ("code", "tool_result")]

    free = Session(AgentConfig(backend="scripted", settings=settings), ledger=ledger,
                   model=ScriptedModel([{"code": "print('it ran')"}], model_id="qwen3:8b"))
    assert "it ran" in "".join(e.text for e in free.run("count the rows") if e.kind == "tool_result")


@pytest.fixture
def claude_fake():
    server = start_fake_anthropic()
    yield server
    server.close()


def claude_session(fake, settings, ledger, cap: float | None) -> Session:
    config = AgentConfig(backend="anthropic", anthropic_api_key=FAKE_KEY, anthropic_base_url=fake.url,
                         settings=settings, auto_approve=True, budget_usd=cap)
    return Session(config, ledger=ledger)


def test_llm_spend_is_counted_per_call_after_a_turn(claude_fake, settings, ledger):
    claude_fake.state["replies"] = [STEP, ANSWER]
    session = claude_session(claude_fake, settings, ledger, cap=20.0)
    events = list(session.run("How many rows has the data?"))

    usage = [e.data for e in events if e.kind == "token_usage"]
    assert len(usage) == 2 and events[-1].kind == "final_answer"
    price = BUILTIN_PRICES[DEFAULT_MODEL_ID]
    for data in usage:
        read, write = data["cache_read_input_tokens"], data["cache_creation_input_tokens"]
        expected = price.cost(data["input_tokens"] - read - write, data["output_tokens"], write, read)
        assert data["call_usd"] == pytest.approx(expected, abs=1e-6) and data["call_usd"] > 0
        assert data["cap_usd"] == 20.0
    assert usage[1]["cache_read_input_tokens"] > 0  # the second call reads the cached prefix: cheaper input
    # each figure is rounded to the micro-dollar on its own, so the sum of two may differ from the total by 1e-6
    assert usage[1]["spent_usd"] == pytest.approx(usage[0]["call_usd"] + usage[1]["call_usd"], abs=2e-6)
    spend = ledger.session_spend(session.id, user="local")
    assert spend["llm_usd"] == pytest.approx(usage[1]["spent_usd"], abs=1e-6)
    assert (spend["jobs_usd"], spend["reserved_usd"], spend["unpriced_calls"]) == (0.0, 0.0, 0)
    assert spend["total_usd"] == spend["llm_usd"]
    assert ledger.session_spend(session.id, user="someone-else")["llm_usd"] == 0.0  # only the owner's rows


def test_a_session_without_a_guard_stops_once_its_cap_is_spent(claude_fake, settings, ledger):
    claude_fake.state["replies"] = [STEP, STEP, ANSWER]
    session = claude_session(claude_fake, settings, ledger, cap=0.001)  # less than one call of the system prompt
    events = list(session.run("How many rows has the data?"))

    [stop] = [e for e in events if e.kind == "notice" and e.text.startswith("Stopping")]
    assert "budget spent" in stop.text and "of $0.001" in stop.text
    assert len([e for e in events if e.kind == "token_usage"]) == 1 and len(claude_fake.requests) == 1
    assert not [e for e in events if e.kind in ("error", "final_answer")], [e.text for e in events]
    assert ledger.session_spend(session.id, user="local")["llm_usd"] > 0.001
