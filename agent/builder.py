"""Build the smolagents CodeAgent that runs one session: model backend, tools, instructions."""

from __future__ import annotations

import importlib.resources
import io
from collections.abc import Iterator
from pathlib import Path

import yaml
from rich.console import Console
from smolagents import CodeAgent
from smolagents.monitoring import AgentLogger, LogLevel

from agent.config import AgentConfig
from agent.models import build_model
from agent.sandbox import SandboxExecutor
from tools.confine import Limits
from tools.context import ToolContext
from tools.toolset import build_tools

PROMPTS_FILE = Path(__file__).parent / "prompts.yaml"
# Code actions may only import these; tools are the way out to files, network and processes.
AUTHORIZED_IMPORTS = ["json", "math", "statistics", "re", "datetime", "collections", "itertools"]


def load_instructions() -> str:
    return yaml.safe_load(PROMPTS_FILE.read_text())["instructions"]


def prompt_templates() -> dict:
    """smolagents' CodeAgent prompt templates with the system prompt replaced by ml-intern's lean one."""
    templates = yaml.safe_load(importlib.resources.files("smolagents.prompts").joinpath("code_agent.yaml").read_text())
    return {**templates, "system_prompt": yaml.safe_load(PROMPTS_FILE.read_text())["system_prompt"]}


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
        self.last_output = ""
        for delta in self._model.generate_stream(*args, **kwargs):
            self.last_output += delta.content or ""
            yield delta

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

