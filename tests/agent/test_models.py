"""agent/models.py against loopback fakes of the Anthropic and OpenAI-compatible APIs."""

from __future__ import annotations

import json
import time
import typing
from pathlib import Path
from types import SimpleNamespace

import pytest
from anthropic.types.model_param import ModelParam
from smolagents import CodeAgent, InferenceClientModel, OpenAIServerModel
from smolagents.models import ChatMessage, MessageRole, agglomerate_stream_deltas

from agent.models import (
    DEFAULT_MODEL_ID,
    AnthropicModel,
    ModelBackendError,
    ScriptedModel,
    build_model,
    call_usage,
)
from tests.fakes.anthropic_api import FAKE_KEY
from tests.fakes.server import FakeHandler, route, serve

PLAN = Path(__file__).parents[1] / "fixtures" / "scripted_plan_example.yaml"
EPHEMERAL = {"type": "ephemeral"}


def claude(fake, **kwargs) -> AnthropicModel:
    return AnthropicModel(api_key=kwargs.pop("api_key", FAKE_KEY), base_url=fake.url, **kwargs)


def text(role, value) -> ChatMessage:
    return ChatMessage(role=role, content=[{"type": "text", "text": value}])


CONVERSATION = [
    text(MessageRole.SYSTEM, "You are an ML engineer."),
    text(MessageRole.USER, "New task:\nCount to two."),
    text(MessageRole.ASSISTANT, "Thought: count.\n<code>\nprint(1, 2)\n</code>"),
    text(MessageRole.TOOL_CALL, "Calling tools:\n[{'name': 'python_interpreter'}]"),
    text(MessageRole.TOOL_RESPONSE, "Observation:\n1 2"),
    ChatMessage(role=MessageRole.USER, content="Now answer."),
]


def test_default_model_id_is_in_the_sdk_model_list():
    assert DEFAULT_MODEL_ID in typing.get_args(typing.get_args(ModelParam)[0])
    assert "sonnet" in DEFAULT_MODEL_ID


def test_generate_sends_cached_system_merged_roles_and_stop_sequences(fake):
    fake.state["replies"] = ["Thought: done.\n<code>\nfinal_answer('1 2')\n</code>\nObservation: never"]
    model = claude(fake, model_id="claude-opus-5-5", max_tokens=1234)

    message = model.generate(CONVERSATION, stop_sequences=["Observation:", "  \n", "</code>"])

    request = fake.requests[-1]
    assert request.headers["authorization"] == f"Bearer {FAKE_KEY}"  # anthropic 2.14 sends keys so
    body = request.json()
    assert body["model"] == "claude-opus-5-5"
    assert body["max_tokens"] == 1234
    assert body["stop_sequences"] == ["Observation:", "</code>"]
    assert body["system"] == [{"type": "text", "text": "You are an ML engineer.", "cache_control": EPHEMERAL}]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"] == [{"type": "text", "text": (
        "Thought: count.\n<code>\nprint(1, 2)\n</code>\nCalling tools:\n[{'name': 'python_interpreter'}]")}]
    assert body["messages"][2]["content"] == [
        {"type": "text", "text": "Observation:\n1 2\nNow answer.", "cache_control": EPHEMERAL}]
    # the server stopped at "</code>", as the real API does; the text is what it sent
    assert message.role == MessageRole.ASSISTANT
    assert message.content == "Thought: done.\n<code>\nfinal_answer('1 2')\n"
    assert FAKE_KEY not in json.dumps(model.to_dict())


def test_usage_reports_cache_write_then_cache_read(fake):
    fake.state["replies"] = ["first", "second"]
    model = claude(fake)
    first = model.generate(CONVERSATION[:2])
    written = dict(model.last_usage)
    second = model.generate(CONVERSATION)

    assert written["cache_creation_input_tokens"] > 0 and written["cache_read_input_tokens"] == 0
    assert model.last_usage["cache_read_input_tokens"] == written["cache_creation_input_tokens"]
    assert model.last_usage["cache_creation_input_tokens"] > 0
    for message, usage in ((first, written), (second, model.last_usage)):
        assert message.token_usage.output_tokens == usage["output_tokens"] > 0
        assert message.token_usage.input_tokens == (usage["input_tokens"] + usage["cache_read_input_tokens"]
                                                    + usage["cache_creation_input_tokens"])
    assert model.total_usage == {k: written[k] + model.last_usage[k] for k in written}
    assert call_usage(model, second) == model.last_usage
    assert model.last_cache_usage == {"cache_read_input_tokens": model.last_usage["cache_read_input_tokens"],
                                      "cache_creation_input_tokens": model.last_usage["cache_creation_input_tokens"]}


def test_generate_stream_assembles_text_and_usage(fake):
    reply = "Thought: stream me, in several small chunks.\n<code>\nfinal_answer(3)\n</code>"
    fake.state["replies"] = [reply]
    model = claude(fake)

    deltas = list(model.generate_stream(CONVERSATION, stop_sequences=["Observation:"]))

    assert fake.requests[-1].json()["stream"] is True
    assert len([d for d in deltas if d.content]) > 3
    message = agglomerate_stream_deltas(deltas)
    assert message.content == reply
    assert message.token_usage.output_tokens == model.last_usage["output_tokens"] > 0
    assert model.last_usage["cache_creation_input_tokens"] > 0
    assert message.token_usage.input_tokens == sum(
        v for k, v in model.last_usage.items() if k != "output_tokens")


def test_rejected_key_says_what_to_set(fake):
    model = claude(fake, api_key="sk-ant-wrong")
    with pytest.raises(ModelBackendError, match=r"ANTHROPIC_API_KEY was rejected \(401\): set a valid key"):
        model.generate(CONVERSATION)
    with pytest.raises(ModelBackendError, match="401"):
        list(model.generate_stream(CONVERSATION))
    assert len(fake.requests) == 2  # a 401 is not retried


def test_rate_limit_is_retried_after_the_servers_delay(fake):
    fake.state.update(replies=["ok"], rate_limit_next=1, retry_after="0.2")
    started = time.monotonic()
    assert claude(fake).generate(CONVERSATION).content == "ok"
    assert time.monotonic() - started >= 0.2
    assert len(fake.requests) == 2


@pytest.mark.parametrize("state, expected", [
    ({"rate_limit_next": 5, "retry_after": "0.01"}, r"rate limit reached \(429\)"),
    ({"fail": (529, "overloaded_error", "Overloaded")}, r"overloaded \(529\).*try again"),
    ({"fail": (404, "not_found_error", "model: claude-nope")}, r"does not know the model 'claude-nope'"),
])
def test_api_errors_say_what_to_do(fake, state, expected):
    fake.state.update(state)
    model = claude(fake, model_id="claude-nope", max_retries=1)
    with pytest.raises(ModelBackendError, match=expected):
        model.generate(CONVERSATION)


@pytest.mark.parametrize("stream_outputs", [False, True])
def test_code_agent_runs_a_task_on_claude(fake, stream_outputs):
    fake.state["replies"] = [
        "Thought: multiply first.\n<code>\nx = 6 * 7\nprint(x)\n</code>",
        "Thought: the observation shows 42.\n<code>\nfinal_answer(x)\n</code>",
    ]
    model = claude(fake)
    agent = CodeAgent(tools=[], model=model, add_base_tools=False, max_steps=4,
                      stream_outputs=stream_outputs, verbosity_level=-1)

    assert agent.run("What is 6 times 7?") == 42

    bodies = [r.json() for r in fake.requests]
    assert len(bodies) == 2 and all(b.get("stream", False) is stream_outputs for b in bodies)
    assert "</code>" in bodies[0]["stop_sequences"]
    assert bodies[0]["system"][0]["cache_control"] == EPHEMERAL
    last_turn = bodies[1]["messages"][-1]["content"][-1]
    assert "42" in last_turn["text"] and last_turn["cache_control"] == EPHEMERAL
    assert model.last_usage["cache_read_input_tokens"] > 0  # the second step reuses the first's prefix
    assert [s.token_usage.output_tokens > 0 for s in agent.memory.steps[1:]] == [True, True]


def test_scripted_model_drives_a_code_agent_through_the_example_plan():
    model = ScriptedModel.from_file(PLAN)
    agent = CodeAgent(tools=[], model=model, add_base_tools=False, max_steps=5, verbosity_level=-1)

    assert agent.run("How many warmup steps?") == "100 warmup steps"

    assert model.label == "scripted" and model.calls == 2
    steps = agent.memory.steps[1:]
    assert "warmup steps: 100" in steps[0].observations
    assert steps[0].model_output.startswith("Thought: Work out how many warmup steps")
    assert all(s.token_usage.input_tokens == s.token_usage.output_tokens == 0 for s in steps)
    assert set(call_usage(model, steps[-1].model_output_message).values()) == {0}


def test_scripted_model_ends_when_the_plan_runs_out_and_streams():
    model = ScriptedModel([{"code": "print('only step')"}])
    agent = CodeAgent(tools=[], model=model, add_base_tools=False, max_steps=5, verbosity_level=-1,
                      stream_outputs=True, planning_interval=5)
    assert agent.run("Do one thing.") == "The scripted plan ended after 1 steps."
    with pytest.raises(ValueError, match="needs `code` or `final_answer`"):
        ScriptedModel([{"thought": "no action"}])


def test_scripted_plan_file_must_be_a_list(tmp_path):
    bad = tmp_path / "plan.yaml"
    bad.write_text("thought: not a list\n")
    with pytest.raises(ValueError, match="YAML list of steps"):
        ScriptedModel.from_file(bad)


def config(**values):
    names = ("backend", "model_id", "anthropic_api_key", "anthropic_base_url", "hf_token", "hf_provider",
             "openai_base_url", "openai_api_key", "scripted_plan")
    return SimpleNamespace(**{**dict.fromkeys(names), **values})


def test_build_model_picks_the_backend(fake):
    claude_model = build_model(config(backend="anthropic", anthropic_api_key=FAKE_KEY, anthropic_base_url=fake.url))
    assert isinstance(claude_model, AnthropicModel) and claude_model.model_id == DEFAULT_MODEL_ID
    assert str(claude_model.client.base_url).startswith(fake.url)

    hf = build_model(config(backend="hf-inference", model_id="Qwen/Qwen3-8B", hf_provider="together",
                            hf_token="hf_fake"))
    assert isinstance(hf, InferenceClientModel)
    assert (hf.model_id, hf.client_kwargs["provider"], hf.client_kwargs["token"]) == (
        "Qwen/Qwen3-8B", "together", "hf_fake")

    local = build_model(config(backend="openai-compatible", model_id="qwen3:8b",
                               openai_base_url="http://127.0.0.1:11434/v1"))
    assert isinstance(local, OpenAIServerModel) and local.client_kwargs["api_key"] == "not-needed"

    scripted = build_model(config(backend="scripted", scripted_plan=str(PLAN)))
    assert isinstance(scripted, ScriptedModel) and len(scripted.replies) == 2


@pytest.mark.parametrize("values, message", [
    ({"backend": "anthropic"}, "set the ANTHROPIC_API_KEY environment variable .* Settings panel"),
    ({"backend": "openai-compatible"}, "needs a model id"),
    ({"backend": "scripted"}, "needs a plan"),
    ({"backend": "gpt-in-a-box"}, "Unknown model backend 'gpt-in-a-box'"),
])
def test_build_model_errors_say_what_to_set(values, message):
    with pytest.raises(ValueError, match=message):
        build_model(config(**values))


class ChatCompletions(FakeHandler):
    @route("POST", "/v1/chat/completions")
    def complete(self):
        body = self.request_record.json()
        self.send_json({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1767225600, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": self.state["replies"].pop(0)}}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 12, "total_tokens": 132,
                      "prompt_tokens_details": {"cached_tokens": 64}},
        })


def test_openai_compatible_backend_drives_a_code_agent():
    server = serve(ChatCompletions, {"replies": ["Thought: easy.\n<code>\nfinal_answer(2 + 2)\n</code>"]})
    try:
        model = build_model(config(backend="openai-compatible", model_id="qwen3:8b",
                                   openai_base_url=f"{server.url}/v1"))
        agent = CodeAgent(tools=[], model=model, add_base_tools=False, max_steps=2, verbosity_level=-1)
        assert agent.run("What is 2 + 2?") == 4
        body = server.requests[-1].json()
        assert body["model"] == "qwen3:8b" and "</code>" in body["stop"]
        assert server.requests[-1].headers["authorization"] == "Bearer not-needed"
        step = agent.memory.steps[-1]
        assert call_usage(model, step.model_output_message) == {
            "input_tokens": 56, "output_tokens": 12, "cache_read_input_tokens": 64,
            "cache_creation_input_tokens": 0}
    finally:
        server.close()
