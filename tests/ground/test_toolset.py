"""Every tool the agent gets is a valid smolagents Tool, described once for the LLM, in a prompt that stays lean."""

import re

import pytest
from smolagents import CodeAgent
from smolagents.models import Model

from agent.builder import build_agent, load_instructions
from agent.config import AgentConfig
from agent.models import ScriptedModel
from bench.prompt_size import PROMPT_LIMIT_CHARS, measure
from evals.catalogue import CATALOGUE
from tools.backends.jobs import LocalJobBackend
from tools.context import ToolContext
from tools.toolset import build_tools


@pytest.fixture
def tools(settings, ledger):
    return build_tools(ToolContext(settings=settings, ledger=ledger, jobs=LocalJobBackend(settings.data_dir)))


def test_tools_have_unique_names_and_valid_inputs(tools):
    names = [t.name for t in tools]
    assert len(names) == len(set(names))
    for tool in tools:
        tool.validate_arguments()
        for name, spec in tool.inputs.items():
            assert len(spec["description"]) > 5, f"{tool.name}.{name} needs a description"


def test_each_description_says_what_the_tool_returns_and_shows_one_example_of_it(tools):
    for tool in tools:
        description = tool.description
        assert len(description.split("\nReturns")[0]) > 40, f"{tool.name}: say what the tool does"
        assert re.search(r"^Returns ", description, re.M), f"{tool.name}: say what it returns"
        assert description.count("Example:") == 1, f"{tool.name}: give exactly one example"
        assert re.search(rf"^Example: .*\b{tool.name}\(\w+=", description, re.M), \
            f"{tool.name}: the example calls the tool with named arguments"


def test_inputs_are_described_once_by_args_not_again_in_the_description(tools):
    for tool in tools:
        description = tool.description
        assert "Inputs:" not in description and "Input:" not in description, tool.name
        listed = [name for name in tool.inputs if re.search(rf"^\s*- {name}:", description, re.M)]
        assert not listed, f"{tool.name} lists inputs {listed} that Args already describes"
        rendered = tool.to_code_prompt()
        for name in tool.inputs:
            assert rendered.count(f"\n        {name}: ") == 1, f"{tool.name}.{name} is rendered once, in Args"


def test_the_rendered_system_prompt_with_every_tool_fits_the_limit(tmp_path, tools):
    result = measure(tmp_path / "data")
    assert set(result["tools"]) == {t.name for t in tools}
    assert result["chars"] <= PROMPT_LIMIT_CHARS, (
        f"the system prompt is {result['chars']} characters, over {PROMPT_LIMIT_CHARS}: {result['tools']}")
    assert result["tool_chars"] < result["chars"]


def test_the_lean_system_prompt_keeps_the_code_action_format_and_rules(settings, ledger):
    ctx = ToolContext(settings=settings, ledger=ledger, jobs=LocalJobBackend(settings.data_dir))
    agent = build_agent(AgentConfig(backend="scripted", model_id="scripted", settings=settings), ctx,
                        model=ScriptedModel([]))
    prompt = agent.system_prompt
    assert "Thought:" in prompt and "Observation:" in prompt and "final_answer(" in prompt
    assert prompt.count("<code>") == prompt.count("</code>") >= 4
    assert str(agent.authorized_imports) in prompt and load_instructions() in prompt
    assert "{{" not in prompt and "{%" not in prompt


def test_the_workflow_names_the_current_tools_and_catalogue_tasks(tools):
    instructions = load_instructions()
    for name in ("search_papers", "inspect_dataset", "check_dataset_quality", "reformat_dataset", "run_evaluation",
                 "write_training_script", "smoke_run", "preflight_check", "submit_job", "diagnose_run",
                 "collect_evaluation", "is_baseline=True", "SFT first", "custom:"):
        assert name in instructions, name
    named_calls = set(re.findall(r"\b([a-z]+(?:_[a-z]+)+)\(", instructions))
    assert named_calls <= {t.name for t in tools}, named_calls
    for task in ("gsm8k", "gpqa:diamond"):
        assert task in instructions and task in CATALOGUE, task


def test_the_code_agent_accepts_the_whole_toolset(tools):
    agent = CodeAgent(tools=tools, model=Model(model_id="unused"))
    prompt = agent.initialize_system_prompt()
    for tool in tools:
        assert f"def {tool.name}(" in prompt
