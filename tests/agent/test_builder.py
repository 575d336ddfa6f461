"""Building the CodeAgent: code actions run in the sandbox process with the settings' limits, get the tools as
plain functions, import only the allowed modules, and the agent carries the instructions; the model wrapper
keeps the latest reply."""

from __future__ import annotations

import time

import pytest
import yaml
from smolagents.local_python_executor import InterpreterError
from smolagents.models import ChatMessage, ChatMessageStreamDelta, MessageRole, agglomerate_stream_deltas
from smolagents.monitoring import TokenUsage

from agent.builder import (
    AUTHORIZED_IMPORTS,
    PROMPTS_FILE,
    STREAM_BATCH_S,
    ObservedModel,
    build_agent,
    load_instructions,
)
from agent.config import AgentConfig
from agent.models import ScriptedModel
from agent.sandbox import SandboxExecutor
from tools.backends.jobs import LocalJobBackend
from tools.confine import Limits
from tools.context import ToolContext


@pytest.fixture
def agent(settings, ledger):
    ctx = ToolContext(settings=settings, ledger=ledger, jobs=LocalJobBackend(settings.data_dir))
    config = AgentConfig(backend="scripted", model_id="scripted", settings=settings, max_steps=7)
    built = build_agent(config, ctx, model=ScriptedModel([{"final_answer": "done"}]))
    built.python_executor.send_tools(built.tools)  # what CodeAgent.run does before the first step
    yield built
    built.cleanup()


def run_code(agent, code: str):
    return agent.python_executor(code)


def test_code_actions_run_in_the_sessions_sandbox_with_the_settings_limits(settings, ledger):
    settings = settings.with_(sandbox_timeout_s=9.0, sandbox_cpu_s=11, sandbox_memory_mb=512, sandbox_file_mb=3,
                              sandbox_processes=5)
    ctx = ToolContext(settings=settings, ledger=ledger, jobs=LocalJobBackend(settings.data_dir), session_id="s1")
    config = AgentConfig(backend="scripted", model_id="scripted", settings=settings)
    executor = build_agent(config, ctx, model=ScriptedModel([])).python_executor
    assert isinstance(executor, SandboxExecutor) and executor.authorized_imports == AUTHORIZED_IMPORTS
    assert executor.workspace == settings.data_dir / "workspaces" / "local" / "s1"  # per user, per session
    assert executor.limits == Limits(cpu_s=11, memory_mb=512, file_mb=3, processes=5) and executor.timeout_s == 9.0


def test_code_actions_get_plain_functions_that_call_the_tools(agent):
    assert run_code(agent, "print(callable(job_status), type(job_status))").logs == "True <class 'function'>\n"
    for attribute in ("ctx", "inputs", "forward"):
        with pytest.raises(InterpreterError, match=f"'function' object has no attribute '{attribute}'"):
            run_code(agent, f"job_status.{attribute}")
    with pytest.raises(InterpreterError, match="Forbidden access to dunder attribute: __closure__"):
        run_code(agent, "job_status.__closure__")
    with pytest.raises(InterpreterError, match="ToolError: unknown job id 'local-nope' on the local backend"):
        run_code(agent, "job_status(job_id='local-nope')")  # the call still reaches the tool
    answer = run_code(agent, "final_answer('all done')")
    assert answer.is_final_answer and answer.output == "all done"


def test_code_actions_import_only_the_allowed_modules(agent):
    assert run_code(agent, "import json, statistics\nprint(json.dumps([statistics.mean([1, 3])]))").logs == "[2]\n"
    assert {"json", "math", "statistics", "re", "datetime", "collections", "itertools"} == set(AUTHORIZED_IMPORTS)
    for module in ("os", "subprocess", "socket", "pathlib", "importlib"):
        with pytest.raises(InterpreterError, match=f"Import of {module} is not allowed"):
            run_code(agent, f"import {module}")


def test_the_agent_carries_the_instructions_limits_and_a_silent_logger(agent, capsys):
    instructions = load_instructions()
    assert instructions == yaml.safe_load(PROMPTS_FILE.read_text())["instructions"]
    assert instructions.startswith("You are ml-intern") and instructions in agent.system_prompt
    assert agent.max_steps == 7
    assert agent.run("go") == "done"
    assert capsys.readouterr().out == ""


class WholeRepliesModel:
    """A model backend that answers with fixed text in one piece."""

    model_id = "stub"

    def generate(self, messages, **kwargs):
        return ChatMessage(role=MessageRole.ASSISTANT, content="whole reply")


class StubModel(WholeRepliesModel):
    """A model backend that can also stream its reply in pieces."""

    def generate_stream(self, messages, **kwargs):
        yield from (ChatMessageStreamDelta(content=piece) for piece in ("Thought: ", None, "streamed"))


def test_observed_model_keeps_the_latest_reply_and_delegates_the_rest():
    observed = ObservedModel(StubModel())
    assert observed.generate([]).content == "whole reply" and observed.last_output == "whole reply"
    stream = observed.generate_stream([])
    assert observed.last_output == "whole reply"  # a generator: nothing happens before the first piece is read
    assert [delta.content for delta in stream] == ["Thought: ", "streamed"]  # the first at once, the rest joined
    assert observed.last_output == "Thought: streamed"
    assert observed.model_id == "stub"
    with pytest.raises(AttributeError):
        observed.no_such_attribute  # noqa: B018


class PacedModel(WholeRepliesModel):
    """Streams many small pieces with token counts, pausing once for longer than STREAM_BATCH_S."""

    def generate_stream(self, messages, **kwargs):
        for i in range(40):
            if i == 20:
                time.sleep(STREAM_BATCH_S * 1.5)
            yield ChatMessageStreamDelta(content=f"{i} ", token_usage=TokenUsage(input_tokens=10 if i == 0 else 0,
                                                                                output_tokens=1))


def test_observed_model_joins_quick_stream_pieces_and_keeps_text_and_token_counts():
    deltas = list(ObservedModel(PacedModel()).generate_stream([]))
    pieces = [d.content for d in deltas]
    assert pieces[0] == "0 " and "".join(pieces) == "".join(f"{i} " for i in range(40))
    # the first piece after the pause goes on at once, with those held since the last one passed
    assert any(piece.split()[-1] == "20" for piece in pieces)
    assert len(pieces) <= 6  # 3 on a quiet machine: "0", "1" to "20", "21" to "39"
    whole = agglomerate_stream_deltas(deltas)
    assert (whole.token_usage.input_tokens, whole.token_usage.output_tokens) == (10, 40)


def test_outputs_stream_only_when_the_backend_can_stream(settings, ledger):
    ctx = ToolContext(settings=settings, ledger=ledger, jobs=LocalJobBackend(settings.data_dir))
    config = AgentConfig(backend="scripted", model_id="scripted", settings=settings)
    assert build_agent(config, ctx, model=StubModel()).stream_outputs is True
    assert build_agent(config, ctx, model=WholeRepliesModel()).stream_outputs is False
