"""Every tool the agent gets is a valid smolagents Tool with a description written for the LLM."""

from smolagents import CodeAgent
from smolagents.models import Model

from tools.backends.jobs import LocalJobBackend
from tools.context import ToolContext
from tools.toolset import build_tools


def test_tools_have_unique_names_and_usable_descriptions(settings, ledger):
    ctx = ToolContext(settings=settings, ledger=ledger, jobs=LocalJobBackend(settings.data_dir))
    tools = build_tools(ctx)
    names = [t.name for t in tools]
    assert len(names) == len(set(names))
    for tool in tools:
        tool.validate_arguments()
        assert len(tool.description) > 80, f"{tool.name} needs a description the LLM can act on"
        assert "example" in tool.description.lower() or ">>>" in tool.description or "(" in tool.description


def test_the_code_agent_accepts_the_whole_toolset(settings, ledger):
    ctx = ToolContext(settings=settings, ledger=ledger, jobs=LocalJobBackend(settings.data_dir))
    agent = CodeAgent(tools=build_tools(ctx), model=Model(model_id="unused"))
    prompt = agent.initialize_system_prompt()
    for name in ("write_training_script", "run_evaluation", "wait_for_job", "inspect_dataset"):
        assert name in prompt
