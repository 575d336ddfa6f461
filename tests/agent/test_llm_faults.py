"""LLM faults (issue 11.6): timeouts, retries with backoff, broken streams, and a session that survives them.

Every fault is scripted in the loopback Anthropic fake and reaches our code through the real `anthropic`
client; short timeouts keep the tests fast.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import httpx
import pytest
from smolagents.models import agglomerate_stream_deltas

from agent.config import AgentConfig
from agent.llm_faults import ModelBackendError
from agent.models import AnthropicModel, build_model
from agent.session import Session
from tests.agent.test_models import CONVERSATION
from tests.fakes.anthropic_api import FAKE_KEY

REPLY = "Thought: the run is done.\n<code>\nfinal_answer('accuracy rose from 0.41 to 0.71')\n</code>"
CHUNK = 7  # characters per text delta in the fake's streams


def claude(fake, **limits) -> AnthropicModel:
    limits = {"max_retries": 1, "connect_timeout_s": 2.0, "read_timeout_s": 0.5, "stream_idle_timeout_s": 0.5,
              **limits}
    return AnthropicModel(api_key=FAKE_KEY, base_url=fake.url, **limits)


def stream_text(model) -> str:
    return agglomerate_stream_deltas(list(model.generate_stream(CONVERSATION))).content


@pytest.mark.parametrize("streamed", [True, False])
def test_an_endpoint_that_never_answers_times_out_and_is_reported(fake, streamed):
    fake.state["replies"] = [{"hang_s": 5}, {"hang_s": 5}]
    model = claude(fake)
    started = time.monotonic()
    with pytest.raises(ModelBackendError, match=r"did not answer within 0.5 s \(2 tries\)"):
        stream_text(model) if streamed else model.generate(CONVERSATION)
    assert time.monotonic() - started < 3.5  # two timeouts and one backoff, not the 5 s the server stalls
    assert len(fake.requests) == 2


def test_429_waits_as_long_as_retry_after_says(fake):
    fake.state["replies"] = [{"status": 429, "error": "rate_limit_error", "message": "slow down", "retry_after": "1.2"},
                             REPLY]
    started = time.monotonic()
    assert stream_text(claude(fake)) == REPLY
    assert time.monotonic() - started >= 1.2  # longer than the SDK's own first backoff (at most 0.5 s)
    assert len(fake.requests) == 2


def test_529_overloaded_then_success(fake):
    fake.state["replies"] = [{"status": 529, "error": "overloaded_error", "message": "Overloaded"}, REPLY]
    assert stream_text(claude(fake)) == REPLY
    assert len(fake.requests) == 2


def test_500s_back_off_exponentially_then_succeed(fake):
    fake.state["replies"] = [{"status": 500, "error": "api_error"}, {"status": 500, "error": "api_error"}, "ok"]
    started = time.monotonic()
    assert claude(fake, max_retries=2).generate(CONVERSATION).content == "ok"
    assert time.monotonic() - started >= 0.375 + 0.75  # 0.5 s then 1 s, less at most 25% jitter
    assert len(fake.requests) == 3


def test_overload_that_persists_says_so(fake):
    fake.state["replies"] = [{"status": 529, "error": "overloaded_error", "message": "Overloaded"}] * 2
    with pytest.raises(ModelBackendError, match=r"overloaded \(529\)"):
        stream_text(claude(fake))


@pytest.mark.parametrize("fault, cause", [
    ({"cut_after": 3}, "the connection dropped"),
    ({"cut_after": 3, "cut": "close"}, r"the stream ended before the reply was complete \(no message_stop\)"),
    ({"error_after": 3}, r"Anthropic sent overloaded_error mid-stream \(Overloaded\)"),
    ({"stall_after": 3, "stall_s": 3}, "Anthropic sent nothing for 0.5 s"),
])
def test_a_stream_broken_after_text_is_an_error_never_an_answer(fake, fault, cause):
    fake.state["replies"] = [{"text": REPLY, **fault}, REPLY]
    model = claude(fake)
    deltas = []
    with pytest.raises(ModelBackendError, match=f"broke off after {3 * CHUNK} characters: {cause}") as raised:
        for delta in model.generate_stream(CONVERSATION):
            deltas.append(delta)
    assert "".join(d.content or "" for d in deltas) == REPLY[:3 * CHUNK]  # what was shown before the break
    assert all(d.token_usage is None for d in deltas)
    assert "partial reply was discarded" in str(raised.value)
    assert len(fake.requests) == 1  # text already handed on cannot be taken back, so no silent retry
    assert stream_text(model) == REPLY  # the same model serves the next call


@pytest.mark.parametrize("fault", [{"cut_after": 0}, {"cut_after": 0, "cut": "close"}, {"error_after": 0},
                                   {"stall_after": 0, "stall_s": 3}])
def test_a_stream_broken_before_any_text_is_retried(fake, fault):
    fake.state["replies"] = [{"text": REPLY, **fault}, REPLY]
    model = claude(fake)
    deltas = list(model.generate_stream(CONVERSATION))
    assert agglomerate_stream_deltas(deltas).content == REPLY
    assert len(fake.requests) == 2
    assert deltas[-1].token_usage.output_tokens == model.last_usage["output_tokens"] > 0


def test_a_stream_that_keeps_breaking_gives_up_in_plain_words(fake):
    fake.state["replies"] = [{"text": REPLY, "error_after": 0}] * 3
    with pytest.raises(ModelBackendError, match=r"broke off before any text arrived: Anthropic sent "
                                                r"overloaded_error mid-stream .*\(tried 3 times\)"):
        stream_text(claude(fake, max_retries=2))
    assert len(fake.requests) == 3


def test_an_invalid_request_error_mid_stream_is_not_retried(fake):
    fake.state["replies"] = [{"text": REPLY, "error_after": 0, "error": "invalid_request_error",
                              "message": "prompt is too long"}, REPLY]
    with pytest.raises(ModelBackendError, match="invalid_request_error mid-stream \\(prompt is too long\\)"):
        stream_text(claude(fake))
    assert len(fake.requests) == 1


def test_the_limits_come_from_the_config_for_every_backend(fake, monkeypatch):
    for name, value in (("CONNECT_TIMEOUT_S", "1.5"), ("READ_TIMEOUT_S", "30"), ("STREAM_IDLE_TIMEOUT_S", "4"),
                        ("MAX_RETRIES", "5")):
        monkeypatch.setenv(f"ML_INTERN_LLM_{name}", value)
    config = AgentConfig.from_env(anthropic_api_key=FAKE_KEY, anthropic_base_url=fake.url)
    assert (config.llm_connect_timeout_s, config.llm_read_timeout_s, config.llm_stream_idle_timeout_s,
            config.llm_max_retries) == (1.5, 30.0, 4.0, 5)

    model = build_model(config)
    assert model.client.max_retries == 5
    assert (model.client.timeout.connect, model.client.timeout.read) == (1.5, 30.0)
    assert (model.stream_timeout.connect, model.stream_timeout.read) == (1.5, 4.0)

    local = build_model(config.with_(backend="openai-compatible", model_id="qwen3:8b",
                                     openai_base_url="http://127.0.0.1:11434/v1"))
    assert local.client.max_retries == 5
    assert (local.client.timeout.connect, local.client.timeout.read) == (1.5, 30.0)

    hf = build_model(SimpleNamespace(backend="hf-inference", model_id="Qwen/Qwen3-8B", llm_connect_timeout_s=1.5,
                                     llm_read_timeout_s=30.0))
    assert hf.client.timeout == httpx.Timeout(30.0, connect=1.5)


def test_the_default_limits_bound_every_wait():
    model = build_model(SimpleNamespace(backend="anthropic", anthropic_api_key=FAKE_KEY))
    assert model.client.max_retries == 3
    assert (model.client.timeout.connect, model.client.timeout.read) == (10.0, 600.0)
    assert model.stream_timeout.read == 60.0


def session_on(fake, settings, ledger) -> Session:
    config = AgentConfig(backend="anthropic", anthropic_api_key=FAKE_KEY, anthropic_base_url=fake.url,
                         llm_stream_idle_timeout_s=0.5, llm_max_retries=1, settings=settings, auto_approve=True)
    return Session(config, ledger=ledger)


def kinds_and_errors(events) -> tuple[list[str], list[str]]:
    return [e.kind for e in events], [e.text for e in events if e.kind == "error"]


def test_a_session_turn_whose_stream_is_cut_reports_it_and_the_next_turn_works(fake, settings, ledger):
    fake.state["replies"] = [{"text": REPLY, "cut_after": 4, "cut": "close"}, REPLY]
    session = session_on(fake, settings, ledger)

    kinds, errors = kinds_and_errors(list(session.run("How did the second run do?")))
    assert "final_answer" not in kinds and session.final_answer is None
    assert errors == [f"Claude's reply broke off after {4 * CHUNK} characters: the stream ended before the reply "
                      "was complete (no message_stop). The partial reply was discarded and nothing of it was run; "
                      "send the message again to continue."]
    stored = [row for row in ledger.session_events(session.id, user="local") if row["kind"] == "error"]
    assert len(stored) == 1 and "broke off" in str(stored[0])

    events = list(session.run("Try again, please."))
    assert events[-1].kind == "final_answer" and events[-1].text == "accuracy rose from 0.41 to 0.71"
    assert len(fake.requests) == 2


def test_a_session_turn_on_an_endpoint_that_never_answers_ends_and_the_next_turn_works(fake, settings, ledger):
    fake.state["replies"] = [{"hang_s": 5}, {"hang_s": 5}, REPLY]
    session = session_on(fake, settings, ledger)

    started = time.monotonic()
    kinds, errors = kinds_and_errors(list(session.run("How did the second run do?")))
    assert time.monotonic() - started < 4
    assert "final_answer" not in kinds
    assert len(errors) == 1 and errors[0].startswith("The Anthropic API did not answer within 0.5 s (2 tries)")

    events = list(session.run("And now?"))
    assert events[-1].kind == "final_answer" and events[-1].text == "accuracy rose from 0.41 to 0.71"


def test_a_session_turn_with_an_error_event_mid_stream_reports_overload(fake, settings, ledger):
    fake.state["replies"] = [{"text": REPLY, "error_after": 2}, REPLY]
    session = session_on(fake, settings, ledger)

    _, errors = kinds_and_errors(list(session.run("How did the second run do?")))
    assert len(errors) == 1 and "overloaded_error mid-stream (Overloaded)" in errors[0]
    assert list(session.run("again"))[-1].kind == "final_answer"
