"""What ml-intern adds to each step of a long session, in ms per step; prints the numbers.

    python -m bench.step_overhead              # a scripted 300-step session
    python -m bench.step_overhead --steps 60

A ScriptedModel replays trivial code actions (each prints about 2 KB, like a real observation), so the model
and the code cost next to nothing and a step's time is smolagents' own work, the sandbox round trip and ours.
For steps 1-10 and the last ten it prints the mean per step of: the whole step (start to next start); the
ledger (every Ledger call made on the agent's threads, including waits for its lock); the session (its events:
redaction, caps and the ledger; every step callback: caps, spend, loop guard, context policy, memory persistence).
Goal (issue 11): session overhead at most 20 ms per step at step 300.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import tempfile
import time
from pathlib import Path

FAKE_KEY = "sk-ant-bench-0123456789abcdefghijklmnopqrstuvwxyz"  # so that redaction has a secret to look for


def plan(steps: int) -> list[dict]:
    return [{"thought": f"Step {i}: look at the next chunk.",
             "code": f"chunk = {i}\nprint(('row %d of the chunk; ' % chunk) * 90)"} for i in range(1, steps)] + [
        {"final_answer": "done"}]


def timed(fn, calls: list):
    """`fn`, recording (start, seconds) of each call in `calls`."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        began = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            calls.append((began, time.perf_counter() - began))
    return wrapper


def per_step(starts: list[float], end: float, calls: list) -> list[float]:
    """Seconds of `calls` falling in each step's span [its start, the next step's start)."""
    totals = [0.0] * len(starts)
    bounds = [*starts[1:], end]
    step = 0
    for began, seconds in sorted(calls):
        while step < len(starts) - 1 and began >= bounds[step]:
            step += 1
        if began >= starts[0]:
            totals[step] += seconds
    return totals


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)

    from smolagents.memory import ActionStep, CallbackRegistry

    from agent.config import AgentConfig
    from agent.models import ScriptedModel
    from agent.session import Session
    from tools.ledger import Ledger
    from tools.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", compute_backend="local")
        config = AgentConfig(backend="scripted", model_id="scripted", settings=settings, auto_approve=True,
                             max_steps=args.steps + 5, anthropic_api_key=FAKE_KEY)
        ledger = Ledger.in_dir(settings.data_dir)
        ledger_calls: list = []
        session_calls: list = []
        for name in [n for n in dir(Ledger) if not n.startswith("_") and callable(getattr(Ledger, n))]:
            setattr(ledger, name, timed(getattr(ledger, name), ledger_calls))
        session = Session(config, ledger=ledger, model=ScriptedModel(plan(args.steps)))
        session._push = timed(session._push, session_calls)
        CallbackRegistry.callback = timed(CallbackRegistry.callback, session_calls)  # every step callback
        began = time.perf_counter()
        events = sum(1 for _ in session.run("work through the chunks"))
        wall = time.perf_counter() - began
        steps = [s for s in session._agent.memory.steps if isinstance(s, ActionStep)]
        # smolagents times steps with time.time(); move them onto perf_counter's clock
        shift = time.perf_counter() - time.time()
        starts = [s.timing.start_time + shift for s in steps]
        end = steps[-1].timing.end_time + shift
        step_s = [b - a for a, b in zip(starts, [*starts[1:], end], strict=True)]
        ledger_s, session_s = per_step(starts, end, ledger_calls), per_step(starts, end, session_calls)
        stored = len(ledger.session_events(session.id, user="local"))
        session._agent.python_executor.cleanup()
        ledger.close()

    def window(values: list[float], first: int, last: int) -> float:
        return round(statistics.mean(values[first - 1:last]) * 1000, 2)

    n = len(steps)
    windows = {"steps_1_10": (1, min(10, n)), f"steps_{max(1, n - 9)}_{n}": (max(1, n - 9), n)}
    print(json.dumps({
        "steps": n, "events": events, "events_stored": stored, "wall_s": round(wall, 2),
        **{name: {"step_ms": window(step_s, a, b), "ledger_ms": window(ledger_s, a, b),
                  "session_ms": window(session_s, a, b)} for name, (a, b) in windows.items()},
        "goal": "session_ms <= 20 at step 300"}, indent=2))


if __name__ == "__main__":
    main()
