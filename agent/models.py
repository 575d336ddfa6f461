"""The LLM backends the agent can think with, all `smolagents.Model`s.

- `AnthropicModel`: Claude through the `anthropic` SDK, with prompt caching on the system
  prompt and on the growing prefix of the memory.
- Hugging Face Inference Providers (`InferenceClientModel`) and any OpenAI-compatible server
  (`OpenAIServerModel`: Ollama, vLLM, llama.cpp), straight from smolagents.
- `ScriptedModel`: replays a fixed list of code actions from a YAML plan, for tests and the
  clearly labelled offline demo.

`build_model(config)` picks one. Every call's token counts (input, output, cache read, cache
write) are available from `call_usage(model, message)`.

Faults: every backend has a connect timeout and a read timeout, and its client's retries (429,
5xx and Anthropic's 529 overloaded, with exponential backoff that honours Retry-After). Claude's
streamed replies also have an idle timeout, and a stream that breaks off (dropped connection,
silence, no `message_stop`, an `error` event) is retried while none of its text was handed on,
else raised as `ModelBackendError`: a partial reply is never taken for an answer.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import yaml
from smolagents import ChatMessage, InferenceClientModel, Model, OpenAIServerModel, TokenUsage
from smolagents.models import ChatMessageStreamDelta, MessageRole

from agent.llm_faults import (
    CONNECT_TIMEOUT_S,
    MAX_RETRIES,
    READ_TIMEOUT_S,
    RETRYABLE_STREAM_ERRORS,
    STREAM_IDLE_TIMEOUT_S,
    ModelBackendError,  # noqa: F401  (callers catch it from here)
    backoff_s,
    broken_stream_error,
    explain_api_error,
)

DEFAULT_MODEL_ID = "claude-sonnet-5-5"  # listed in anthropic 2.14's types/model_param.py
BACKENDS = ("anthropic", "hf-inference", "openai-compatible", "scripted")
CACHE_KEYS = ("cache_read_input_tokens", "cache_creation_input_tokens")
USAGE_KEYS = ("input_tokens", "output_tokens", *CACHE_KEYS)
EPHEMERAL = {"type": "ephemeral"}


def _zero_usage() -> dict[str, int]:
    return dict.fromkeys(USAGE_KEYS, 0)


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content if part.get("type") == "text")


def _blocks(content: Any) -> list[dict]:
    """smolagents message content (a string or a list of parts) as Anthropic content blocks."""
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
    blocks = []
    for part in parts:
        if part.get("type") == "text" and part.get("text", "").strip():
            blocks.append({"type": "text", "text": part["text"]})
        elif part.get("type") == "image":
            from smolagents.utils import encode_image_base64

            data = part["image"] if isinstance(part["image"], str) else encode_image_base64(part["image"])
            blocks.append({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}})
    return blocks


class StableBlock(ChatMessage):
    """A message of the memory's stable prefix (agent/context_policy.py's condensed steps): Claude gets it as a
    block of its own, and the last one carries a cache breakpoint, so the prefix up to it is read from the cache
    after the steps behind it change."""


class UncachedBlock(ChatMessage):
    """A message that changes on every call (agent/context_policy.py's pinned state, sent last): a block of its
    own after the memory's cache breakpoint, so it never invalidates the cached prefix."""


def to_anthropic_messages(messages: list[ChatMessage | dict]) -> tuple[list[dict], list[dict]]:
    """Split smolagents messages into Anthropic's `system` blocks and user/assistant `messages`.

    System messages become system blocks; tool calls are the assistant's and tool responses
    the user's; consecutive messages of one role merge into one, as the Messages API requires.
    The last system block and the last block of the last message carry `cache_control`, so
    the system prompt and the memory up to this call are cached for the next call.
    A `StableBlock` or `UncachedBlock` keeps its own content block; the last `StableBlock` gets
    a breakpoint too, and the memory's breakpoint goes on the last block before any `UncachedBlock`.
    """
    system: list[dict] = []
    turns: list[dict] = []
    stable_end = cache_end = None  # the blocks that carry the memory's breakpoints
    kept_apart = False
    for message in messages:
        role = message["role"] if isinstance(message, dict) else message.role
        content = message.get("content") if isinstance(message, dict) else message.content
        role = MessageRole(role).value
        blocks = _blocks(content)
        if role == "system":
            system.extend(blocks)
            continue
        role = "assistant" if role in ("assistant", "tool-call") else "user"
        if not blocks:
            continue
        apart = isinstance(message, (StableBlock, UncachedBlock))
        if turns and turns[-1]["role"] == role:
            last = turns[-1]["content"]
            if not (apart or kept_apart) and last[-1]["type"] == "text" and blocks[0]["type"] == "text":
                last[-1] = {"type": "text", "text": last[-1]["text"] + "\n" + blocks.pop(0)["text"]}
            last.extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
        kept_apart = apart
        if isinstance(message, StableBlock):
            stable_end = turns[-1]["content"][-1]
        if not isinstance(message, UncachedBlock):
            cache_end = turns[-1]["content"][-1]
    if system:
        system[-1]["cache_control"] = EPHEMERAL
    for block in (stable_end, cache_end):
        if block is not None:
            block["cache_control"] = EPHEMERAL
    return system, turns


class AnthropicModel(Model):
    """Claude through the Messages API, for a smolagents agent.

    Token counts: each `ChatMessage.token_usage` has `input_tokens` = all prompt tokens
    (uncached + cache read + cache write) and `output_tokens`. The split lives on the model:
    `last_usage` (the latest call) and `total_usage` (since creation), dicts with `USAGE_KEYS`
    (`input_tokens` there is the uncached part only, as Anthropic counts it), and
    `last_cache_usage`, just the two cache counts of the latest call.
    """

    label = "anthropic"

    def __init__(self, model_id: str = DEFAULT_MODEL_ID, api_key: str | None = None,
                 base_url: str | None = None, max_tokens: int = 8192, max_retries: int = MAX_RETRIES,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S, read_timeout_s: float = READ_TIMEOUT_S,
                 stream_idle_timeout_s: float = STREAM_IDLE_TIMEOUT_S, **kwargs):
        import anthropic

        super().__init__(model_id=model_id, **kwargs)
        self.max_tokens = max_tokens
        self.max_retries = max_retries
        self.read_timeout_s, self.stream_idle_timeout_s = read_timeout_s, stream_idle_timeout_s
        # The SDK retries 429, 408, 409, 5xx (529 included) and dropped or timed-out connections with
        # exponential backoff, honouring retry-after; a stream's body is ours to check (`generate_stream`).
        self.client = anthropic.Anthropic(api_key=api_key, base_url=base_url, max_retries=max_retries,
                                          timeout=anthropic.Timeout(read_timeout_s, connect=connect_timeout_s))
        self.stream_timeout = anthropic.Timeout(stream_idle_timeout_s, connect=connect_timeout_s)
        self.last_usage = _zero_usage()
        self.total_usage = _zero_usage()

    def _request(self, messages, stop_sequences, response_format, tools_to_call_from, kwargs) -> dict:
        if tools_to_call_from:
            raise ValueError("AnthropicModel writes code actions for a CodeAgent; "
                             "JSON tool calling (ToolCallingAgent) is not supported.")
        system, turns = to_anthropic_messages(messages)
        request: dict[str, Any] = {"model": self.model_id, "max_tokens": self.max_tokens, "messages": turns}
        if system:
            request["system"] = system
        stops = [s for s in stop_sequences or [] if s.strip()]  # the API rejects whitespace-only ones
        if stops:
            request["stop_sequences"] = stops
        if response_format and response_format.get("type") == "json_schema":
            schema = response_format["json_schema"]["schema"]
            request["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        request.update(kwargs)
        request.update(self.kwargs)
        return request

    @property
    def last_cache_usage(self) -> dict[str, int]:
        return {key: self.last_usage[key] for key in CACHE_KEYS}

    def _record(self, usage: dict[str, int]) -> TokenUsage:
        self.last_usage = {key: int(usage.get(key) or 0) for key in USAGE_KEYS}
        for key in USAGE_KEYS:
            self.total_usage[key] += self.last_usage[key]
        prompt = sum(self.last_usage[k] for k in ("input_tokens", *CACHE_KEYS))
        return TokenUsage(input_tokens=prompt, output_tokens=self.last_usage["output_tokens"])

    def generate(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None,
                 **kwargs) -> ChatMessage:
        import anthropic

        request = self._request(messages, stop_sequences, response_format, tools_to_call_from, kwargs)
        try:
            response = self.client.messages.create(**request)
        except anthropic.APIError as error:
            raise explain_api_error(error, self.model_id, self.read_timeout_s, self.max_retries + 1) from error
        text = "".join(block.text for block in response.content if block.type == "text")
        usage = self._record(response.usage.model_dump())
        return ChatMessage(role=MessageRole.ASSISTANT, content=text, raw=response, token_usage=usage)

    def generate_stream(self, messages, stop_sequences=None, response_format=None,
                        tools_to_call_from=None, **kwargs) -> Generator[ChatMessageStreamDelta]:
        import anthropic
        import httpx2

        request = self._request(messages, stop_sequences, response_format, tools_to_call_from, kwargs)
        for attempt in range(self.max_retries + 1):
            sent = 0  # characters of this attempt already handed on: those cannot be taken back
            usage: dict[str, int] = {}
            try:
                stream = self.client.messages.create(**request, stream=True, timeout=self.stream_timeout)
            except anthropic.APIError as error:  # the SDK has retried what can be retried
                raise explain_api_error(error, self.model_id, self.stream_idle_timeout_s,
                                        self.max_retries + 1) from error
            try:
                with stream:
                    for event in stream:
                        if event.type == "message_start":
                            usage.update(event.message.usage.model_dump(include=set(USAGE_KEYS)))
                        elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                            sent += len(event.delta.text)
                            yield ChatMessageStreamDelta(content=event.delta.text)
                        elif event.type == "message_delta" and event.usage:
                            usage.update(event.usage.model_dump(include=set(USAGE_KEYS), exclude_none=True))
                        elif event.type == "message_stop":
                            yield ChatMessageStreamDelta(content="", token_usage=self._record(usage))
                            return
                cause, retryable = "the stream ended before the reply was complete (no message_stop)", True
            except anthropic.APIStatusError as error:  # an `error` event inside the stream
                cause = f"Anthropic sent {error.type or 'an error'} mid-stream ({error.api_message or error})"
                retryable = error.type in RETRYABLE_STREAM_ERRORS
            except httpx2.TimeoutException:
                cause, retryable = f"Anthropic sent nothing for {self.stream_idle_timeout_s:g} s", True
            except httpx2.TransportError as error:
                cause, retryable = f"the connection dropped ({error})", True
            if sent or not retryable or attempt == self.max_retries:
                raise broken_stream_error(cause, sent, attempt + 1)
            time.sleep(backoff_s(attempt))


def _step_text(step: dict) -> str:
    if "final_answer" in step:
        code = f"final_answer({step['final_answer']!r})"
    elif "code" in step:
        code = str(step["code"]).strip()
    else:
        raise ValueError(f"A scripted step needs `code` or `final_answer`, got keys {sorted(step)}.")
    thought = str(step.get("thought") or "Next step of the scripted plan.").strip()
    return f"Thought: {thought}\n<code>\n{code}\n</code>"


class ScriptedModel(Model):
    """Replays a fixed plan of code actions, one per call; for tests and the offline demo.

    A plan is a list of steps, each `{thought, code}` or `{thought, final_answer}` (thought is
    optional). When the plan is exhausted every call answers with a final_answer saying so.
    Planning calls (stop sequence `<end_plan>`) get a short fixed plan and use no step.
    Token usage is always 0.
    """

    label = "scripted"

    def __init__(self, steps: list[dict], model_id: str = "scripted", **kwargs):
        super().__init__(model_id=model_id, **kwargs)
        self.replies = [_step_text(step) for step in steps]
        self.calls = 0

    @classmethod
    def from_file(cls, path: str | Path) -> ScriptedModel:
        steps = yaml.safe_load(Path(path).read_text())
        if not isinstance(steps, list) or not all(isinstance(step, dict) for step in steps):
            raise ValueError(f"{path}: a scripted plan is a YAML list of steps, "
                             "each a mapping with `code` or `final_answer` and an optional `thought`.")
        return cls(steps, model_id=f"scripted:{Path(path).name}")

    def next_reply(self, stop_sequences: list[str] | None = None) -> str:
        if "<end_plan>" in (stop_sequences or []):
            return "1. Follow the scripted plan step by step.\n<end_plan>"
        if self.calls < len(self.replies):
            self.calls += 1
            return self.replies[self.calls - 1]
        message = f"The scripted plan ended after {len(self.replies)} steps."
        return _step_text({"thought": message, "final_answer": message})

    def generate(self, messages, stop_sequences=None, response_format=None, tools_to_call_from=None,
                 **kwargs) -> ChatMessage:
        return ChatMessage(role=MessageRole.ASSISTANT, content=self.next_reply(stop_sequences),
                           token_usage=TokenUsage(input_tokens=0, output_tokens=0))

    def generate_stream(self, messages, stop_sequences=None, response_format=None,
                        tools_to_call_from=None, **kwargs) -> Generator[ChatMessageStreamDelta]:
        yield ChatMessageStreamDelta(content=self.next_reply(stop_sequences),
                                     token_usage=TokenUsage(input_tokens=0, output_tokens=0))


def call_usage(model: Model, message: ChatMessage | None = None) -> dict[str, int]:
    """Input, output, cache-read and cache-write tokens of the model's latest call.

    `AnthropicModel` keeps the split in `last_usage`; for the other models it comes from the
    message's `token_usage` (and OpenAI's `cached_tokens` where the raw response has them),
    with `input_tokens` counting uncached prompt tokens only, as Anthropic does.
    """
    if hasattr(model, "last_usage"):
        return dict(model.last_usage)
    usage = _zero_usage()
    if message is not None and message.token_usage is not None:
        details = getattr(getattr(message.raw, "usage", None), "prompt_tokens_details", None)
        cached = int(getattr(details, "cached_tokens", 0) or 0)
        usage.update(input_tokens=message.token_usage.input_tokens - cached, cache_read_input_tokens=cached,
                     output_tokens=message.token_usage.output_tokens)
    return usage


def build_model(config) -> Model:
    """The model `config.backend` names, built from the config's model and credential settings.

    `config` is any object with the attributes `backend` (one of `BACKENDS`), `model_id`,
    `anthropic_api_key`, `anthropic_base_url`, `hf_token`, `hf_provider`, `openai_base_url`,
    `openai_api_key` and `scripted_plan` (a YAML file); missing attributes count as unset.
    The call limits `llm_connect_timeout_s`, `llm_read_timeout_s`, `llm_stream_idle_timeout_s` and
    `llm_max_retries` default to this module's constants. The OpenAI-compatible and HF clients
    have one read timeout for streamed and whole replies alike: `llm_read_timeout_s`, as a local
    server on a CPU may think for minutes before its first token.
    """
    def setting(name: str):
        return getattr(config, name, None) or None

    def limit(name: str, default):
        value = getattr(config, name, None)
        return default if value is None else value

    connect_s, read_s = limit("llm_connect_timeout_s", CONNECT_TIMEOUT_S), limit("llm_read_timeout_s", READ_TIMEOUT_S)
    retries = limit("llm_max_retries", MAX_RETRIES)
    backend = setting("backend") or "anthropic"
    model_id = setting("model_id")
    if backend == "anthropic":
        if not setting("anthropic_api_key"):
            raise ValueError("No Anthropic API key: set the ANTHROPIC_API_KEY environment variable "
                             "(a Space secret) or paste a key in the app's Settings panel, or choose "
                             "another model backend there.")
        return AnthropicModel(model_id or DEFAULT_MODEL_ID, api_key=setting("anthropic_api_key"),
                              base_url=setting("anthropic_base_url"), max_retries=retries,
                              connect_timeout_s=connect_s, read_timeout_s=read_s,
                              stream_idle_timeout_s=limit("llm_stream_idle_timeout_s", STREAM_IDLE_TIMEOUT_S))
    if backend == "hf-inference":
        import httpx  # huggingface_hub's HTTP client; InferenceClient hands `timeout` to it

        extra = {"model_id": model_id} if model_id else {}
        return InferenceClientModel(provider=setting("hf_provider"), token=setting("hf_token"),
                                    timeout=httpx.Timeout(read_s, connect=connect_s), **extra)
    if backend == "openai-compatible":
        import openai

        if not model_id:
            raise ValueError("The openai-compatible backend needs a model id (for Ollama e.g. "
                             "'qwen3:8b'): set it in Settings.")
        return OpenAIServerModel(model_id, api_base=setting("openai_base_url"),
                                 api_key=setting("openai_api_key") or "not-needed",
                                 client_kwargs={"timeout": openai.Timeout(read_s, connect=connect_s),
                                                "max_retries": retries})
    if backend == "scripted":
        if not setting("scripted_plan"):
            raise ValueError("The scripted backend needs a plan: set scripted_plan to a YAML file "
                             "of steps (see tests/fixtures/scripted_plan_example.yaml).")
        return ScriptedModel.from_file(setting("scripted_plan"))
    raise ValueError(f"Unknown model backend {backend!r}: choose one of {', '.join(BACKENDS)}.")
