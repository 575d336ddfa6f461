"""Measure what the code-action sandbox costs; prints the numbers.

    python -m bench.sandbox_roundtrip

Times, through `agent.sandbox.SandboxExecutor` and, for comparison, smolagents' in-process
LocalPythonExecutor: the first action (the child's start, importing smolagents), a trivial code action,
and a code action making one tool call (the tool runs in the parent). Medians and 95th percentiles over
`ROUNDS` actions, in milliseconds. Also says what confinement held on this machine.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from smolagents import tool
from smolagents.local_python_executor import LocalPythonExecutor

from agent.builder import AUTHORIZED_IMPORTS
from agent.sandbox import SandboxExecutor

ROUNDS = 200
TRIVIAL = "x = 1 + 1"
ONE_TOOL_CALL = "r = echo(text='hi')\nprint(r['text'])"


@tool
def echo(text: str) -> dict:
    """Returns its input.

    Args:
        text: any text
    """
    return {"text": text}


def timed(executor, code: str, rounds: int = ROUNDS) -> tuple[float, float]:
    """(median, 95th percentile) milliseconds of `rounds` runs of `code`."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        executor(code)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), statistics.quantiles(times, n=20)[-1]


def main() -> None:
    with tempfile.TemporaryDirectory() as workspace:
        sandbox = SandboxExecutor(AUTHORIZED_IMPORTS, Path(workspace))
        started = time.perf_counter()
        sandbox.send_tools({"echo": echo})
        sandbox(TRIVIAL)
        print(f"first action (child start):  {(time.perf_counter() - started) * 1000:8.1f} ms")
        print(f"network namespace held: {sandbox.network_isolated}; Landlock held: {sandbox.filesystem_restricted}")
        local = LocalPythonExecutor(AUTHORIZED_IMPORTS, timeout_seconds=None)
        local.send_tools({"echo": echo})
        for label, code in (("trivial action", TRIVIAL), ("one tool call", ONE_TOOL_CALL)):
            for name, executor in (("sandbox", sandbox), ("in-process", local)):
                median, p95 = timed(executor, code)
                print(f"{label:15s} {name:10s} median {median:7.2f} ms   p95 {p95:7.2f} ms")
        sandbox.cleanup()


if __name__ == "__main__":
    main()
