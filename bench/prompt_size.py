"""Measure the system prompt the agent is sent on every call; prints the numbers.

    python -m bench.prompt_size

Builds the real CodeAgent with every tool (offline: a scripted model, a temporary data directory,
the local job backend), renders its system prompt and reports total characters, approximate tokens
(characters / 4), the characters taken by tool descriptions (each tool as smolagents renders it:
signature, description and Args), and each tool's size, largest first. Goal: at most
`PROMPT_LIMIT_CHARS` characters in all.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from agent.builder import build_agent
from agent.config import AgentConfig
from agent.models import ScriptedModel
from tools.backends.jobs import LocalJobBackend
from tools.context import ToolContext
from tools.ledger import Ledger
from tools.settings import Settings

PROMPT_LIMIT_CHARS = 24_000


def measure(data_dir: Path) -> dict:
    """The rendered system prompt's size and each tool's share of it, for an agent built in `data_dir`."""
    settings = Settings(data_dir=data_dir, compute_backend="local")
    ctx = ToolContext(settings=settings, ledger=Ledger.in_dir(data_dir), jobs=LocalJobBackend(data_dir))
    config = AgentConfig(backend="scripted", model_id="scripted", settings=settings)
    agent = build_agent(config, ctx, model=ScriptedModel([]))
    prompt = agent.initialize_system_prompt()
    tools = {name: len(tool.to_code_prompt()) for name, tool in agent.tools.items() if name != "final_answer"}
    return {"chars": len(prompt), "tokens": len(prompt) // 4, "tool_chars": sum(tools.values()),
            "tools": dict(sorted(tools.items(), key=lambda item: -item[1]))}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(Path(tmp))
    verdict = "within" if result["chars"] <= PROMPT_LIMIT_CHARS else "OVER"
    print(f"system prompt: {result['chars']} chars (~{result['tokens']} tokens), "
          f"{verdict} the {PROMPT_LIMIT_CHARS} limit")
    print(f"tool descriptions: {result['tool_chars']} chars in {len(result['tools'])} tools")
    for name, chars in result["tools"].items():
        print(f"  {chars:6d}  {name}")


if __name__ == "__main__":
    main()
