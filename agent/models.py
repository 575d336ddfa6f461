"""The LLM backends the agent can think with, all `smolagents.Model`s.

- `AnthropicModel`: Claude through the `anthropic` SDK, with prompt caching on the system
  prompt and on the growing prefix of the memory.
- Hugging Face Inference Providers (`InferenceClientModel`) and any OpenAI-compatible server
  (`OpenAIServerModel`: Ollama, vLLM, llama.cpp), straight from smolagents.
- `ScriptedModel`: replays a fixed list of code actions from a YAML plan, for tests and the
  clearly labelled offline demo.

`build_model(config)` picks one. Every call's token counts (input, output, cache read, cache
write) are available from `call_usage(model, message)`.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import yaml
from smolagents import ChatMessage, InferenceClientModel, Model, OpenAIServerModel, TokenUsage
from smolagents.models import ChatMessageStreamDelta, MessageRole

DEFAULT_MODEL_ID = "claude-sonnet-5-5"  # listed in anthropic 2.14's types/model_param.py
BACKENDS = ("anthropic", "hf-inference", "openai-compatible", "scripted")
CACHE_KEYS = ("cache_read_input_tokens", "cache_creation_input_tokens")
USAGE_KEYS = ("input_tokens", "output_tokens", *CACHE_KEYS)
EPHEMERAL = {"type": "ephemeral"}


class ModelBackendError(RuntimeError):
    """The LLM backend refused or failed a call; the message says what to do about it."""


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


def to_anthropic_messages(messages: list[ChatMessage | dict]) -> tuple[list[dict], list[dict]]:
    """Split smolagents messages into Anthropic's `system` blocks and user/assistant `messages`.

    System messages become system blocks; tool calls are the assistant's and tool responses
    the user's; consecutive messages of one role merge into one, as the Messages API requires.
    The last system block and the last block of the last message carry `cache_control`, so
    the system prompt and the memory up to this call are cached for the next call.
    """
    system: list[dict] = []
    turns: list[dict] = []
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
        if turns and turns[-1]["role"] == role:
            last = turns[-1]["content"]
            if last[-1]["type"] == "text" and blocks[0]["type"] == "text":
                last[-1] = {"type": "text", "text": last[-1]["text"] + "\n" + blocks.pop(0)["text"]}
            last.extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    if system:
        system[-1]["cache_control"] = EPHEMERAL
    if turns:
        turns[-1]["content"][-1]["cache_control"] = EPHEMERAL
    return system, turns


def explain_api_error(error: Exception, model_id: str) -> ModelBackendError:
    """Turn an `anthropic` SDK error into one that says what went wrong and what to do."""
    import anthropic

    if isinstance(error, anthropic.APIConnectionError):
        return ModelBackendError(
            f"Could not reach the Anthropic API ({error}): check the network connection or "
            "the Anthropic base URL setting.")
    status = getattr(error, "status_code", None)
    kind = getattr(error, "type", None)
    detail = getattr(error, "api_message", None) or str(error)
    if status == 401 or kind == "authentication_error":
        text = "ANTHROPIC_API_KEY was rejected (401): set a valid key in Settings or the environment."
    elif status == 403 or kind == "permission_error":
        text = f"The Anthropic API key may not use {model_id} (403): use another key or model."
    elif status == 404 or kind == "not_found_error":
        text = f"Anthropic does not know the model {model_id!r} (404): pick another model id in Settings."
    elif status == 429 or kind == "rate_limit_error":
        text = "Anthropic rate limit reached (429) after retries: wait a minute, or raise the key's limits."
    elif status == 529 or kind == "overloaded_error":
        text = "Anthropic is overloaded (529) after retries: try again in a few minutes."
    elif status == 400 or kind == "invalid_request_error":
        text = "Anthropic rejected the request (400)."
    else:
        text = f"The Anthropic API failed ({status or kind or type(error).__name__})."
    return ModelBackendError(f"{text} Anthropic said: {detail}")


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
                 base_url: str | None = None, max_tokens: int = 8192, max_retries: int = 2,
                 timeout: float | None = None, **kwargs):
        import anthropic

        super().__init__(model_id=model_id, **kwargs)
        self.max_tokens = max_tokens
        options: dict[str, Any] = {"api_key": api_key, "base_url": base_url, "max_retries": max_retries}
        if timeout is not None:
            options["timeout"] = timeout
        self.client = anthropic.Anthropic(**options)
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
            raise explain_api_error(error, self.model_id) from error
        text = "".join(block.text for block in response.content if block.type == "text")
        usage = self._record(response.usage.model_dump())
        return ChatMessage(role=MessageRole.ASSISTANT, content=text, raw=response, token_usage=usage)

    def generate_stream(self, messages, stop_sequences=None, response_format=None,
                        tools_to_call_from=None, **kwargs) -> Generator[ChatMessageStreamDelta]:
        import anthropic

        request = self._request(messages, stop_sequences, response_format, tools_to_call_from, kwargs)
        usage: dict[str, int] = {}
        try:
            for event in self.client.messages.create(**request, stream=True):
                if event.type == "message_start":
                    usage.update(event.message.usage.model_dump(include=set(USAGE_KEYS)))
                elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                    yield ChatMessageStreamDelta(content=event.delta.text)
                elif event.type == "message_delta" and event.usage:
                    usage.update(event.usage.model_dump(include=set(USAGE_KEYS), exclude_none=True))
        except anthropic.APIError as error:
            raise explain_api_error(error, self.model_id) from error
        yield ChatMessageStreamDelta(content="", token_usage=self._record(usage))


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
    """
    def setting(name: str):
        return getattr(config, name, None) or None

    backend = setting("backend") or "anthropic"
    model_id = setting("model_id")
    if backend == "anthropic":
        if not setting("anthropic_api_key"):
            raise ValueError("No Anthropic API key: set the ANTHROPIC_API_KEY environment variable "
                             "(a Space secret) or paste a key in the app's Settings panel, or choose "
                             "another model backend there.")
        return AnthropicModel(model_id or DEFAULT_MODEL_ID, api_key=setting("anthropic_api_key"),
                              base_url=setting("anthropic_base_url"))
    if backend == "hf-inference":
        extra = {"model_id": model_id} if model_id else {}
        return InferenceClientModel(provider=setting("hf_provider"), token=setting("hf_token"), **extra)
    if backend == "openai-compatible":
        if not model_id:
            raise ValueError("The openai-compatible backend needs a model id (for Ollama e.g. "
                             "'qwen3:8b'): set it in Settings.")
        return OpenAIServerModel(model_id, api_base=setting("openai_base_url"),
                                 api_key=setting("openai_api_key") or "not-needed")
    if backend == "scripted":
        if not setting("scripted_plan"):
            raise ValueError("The scripted backend needs a plan: set scripted_plan to a YAML file "
                             "of steps (see tests/fixtures/scripted_plan_example.yaml).")
        return ScriptedModel.from_file(setting("scripted_plan"))
    raise ValueError(f"Unknown model backend {backend!r}: choose one of {', '.join(BACKENDS)}.")
