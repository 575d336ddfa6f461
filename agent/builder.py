"""Build the smolagents CodeAgent that runs one session: model backend, tools, instructions."""

from __future__ import annotations

import functools
import importlib.resources
import io
import time
from collections.abc import Iterator
from pathlib import Path

import yaml
from rich.console import Console
from smolagents import CodeAgent
from smolagents.models import ChatMessageStreamDelta
from smolagents.monitoring import AgentLogger, LogLevel, TokenUsage

from agent.config import AgentConfig
from agent.models import build_model
from agent.sandbox import SandboxExecutor
from tools.confine import Limits
from tools.context import ToolContext
from tools.toolset import build_tools

PROMPTS_FILE = Path(__file__).parent / "prompts.yaml"
# Code actions may only import these; tools are the way out to files, network and processes.
AUTHORIZED_IMPORTS = ["json", "math", "statistics", "re", "datetime", "collections", "itertools"]
# Streamed pieces reach smolagents at most this often: it re-parses the whole reply as Markdown for its (silenced)
# display on every piece it gets, about 1 ms per piece per KB on the agent's thread; the chat gets fewer updates too.
STREAM_BATCH_S = 0.1


@functools.cache
def _prompts() -> dict:
    """prompts.yaml, read once per process (it ships with the code)."""
    return yaml.safe_load(PROMPTS_FILE.read_text())


def load_instructions() -> str:
    return _prompts()["instructions"]


@functools.cache
def _code_agent_templates() -> dict:
    return yaml.safe_load(importlib.resources.files("smolagents.prompts").joinpath("code_agent.yaml").read_text())


def prompt_templates() -> dict:
    """smolagents' CodeAgent prompt templates with the system prompt replaced by ml-intern's lean one."""
    return {**_code_agent_templates(), "system_prompt": _prompts()["system_prompt"]}


def joined(deltas: list[ChatMessageStreamDelta]) -> ChatMessageStreamDelta:
    """One stream piece holding `deltas` in order: their text, tool-call pieces and token counts."""
    if len(deltas) == 1:
        return deltas[0]
    usages = [d.token_usage for d in deltas if d.token_usage]
    return ChatMessageStreamDelta(
        content="".join(d.content or "" for d in deltas) or None,
        tool_calls=[call for d in deltas for call in d.tool_calls or []] or None,
        token_usage=TokenUsage(input_tokens=sum(u.input_tokens for u in usages),
                               output_tokens=sum(u.output_tokens for u in usages)) if usages else None)


class ObservedModel:
    """Delegates to a smolagents Model and keeps the text of its latest reply.

    The session reads `last_output` when a code action starts, so the thought that led to it
    is shown before the (possibly long) tool call finishes.
    """

    def __init__(self, model):
        self._model = model
        self.last_output = ""

    def generate(self, *args, **kwargs):
        message = self._model.generate(*args, **kwargs)
        self.last_output = message.content or ""
        return message

    def generate_stream(self, *args, **kwargs) -> Iterator:
        """The backend's stream with its pieces joined: the first at once, then at most one every STREAM_BATCH_S."""
        self.last_output = ""
        waiting: list[ChatMessageStreamDelta] = []
        passed_at = float("-inf")
        for delta in self._model.generate_stream(*args, **kwargs):
            self.last_output += delta.content or ""
            waiting.append(delta)
            if time.monotonic() - passed_at >= STREAM_BATCH_S:
                yield joined(waiting)
                waiting, passed_at = [], time.monotonic()
        if waiting:
            yield joined(waiting)

    def __getattr__(self, name):
        return getattr(self._model, name)


def build_executor(ctx: ToolContext) -> SandboxExecutor:
    """The sandbox that runs the session's code actions, with the limits from its settings."""
    settings = ctx.settings
    return SandboxExecutor(AUTHORIZED_IMPORTS, ctx.workspace, Limits.from_settings(settings),
                           timeout_s=settings.sandbox_timeout_s)


def build_agent(config: AgentConfig, ctx: ToolContext, model=None, step_callbacks: list | None = None,
                final_answer_checks: list | None = None) -> CodeAgent:
    """One CodeAgent for `config`, with the session's tools. `model` overrides the backend;
    `step_callbacks` and `final_answer_checks` go to smolagents as they are (the run guard's)."""
    observed = ObservedModel(model or build_model(config))
    quiet = AgentLogger(level=LogLevel.OFF, console=Console(file=io.StringIO()))
    return CodeAgent(
        tools=build_tools(ctx),
        model=observed,
        instructions=load_instructions(),
        prompt_templates=prompt_templates(),
        max_steps=config.max_steps,
        additional_authorized_imports=AUTHORIZED_IMPORTS,
        # Code actions run in a confined child process; tools (and their waiting) run here, uncounted.
        executor=build_executor(ctx),
        stream_outputs=hasattr(observed._model, "generate_stream"),
        logger=quiet,
        step_callbacks=step_callbacks,
        final_answer_checks=final_answer_checks,
    )

