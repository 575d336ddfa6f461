"""agent/loop_guard.py through the real CodeAgent loop: note, refusal, stop; progress is not a loop."""

from __future__ import annotations

import pytest
import yaml
from smolagents import CodeAgent, tool
from smolagents.memory import ActionStep
from smolagents.utils import AgentError

from agent.config import AgentConfig
from agent.loop_guard import LoopGuard, normalise_result
from agent.models import ScriptedModel
from agent.session import Session

CALLS = {"load_split": 0, "job_status": 0}
PROGRESS = {"moves": True}


@tool
def load_split(name: str) -> str:
    """Load a dataset split.

    Args:
        name: the split.
    """
    CALLS["load_split"] += 1
    raise ValueError(f"dataset openai/gsm8k has no split {name!r}; its splits are 'train' and 'test'")


@tool
def job_status(job_id: str) -> str:
    """A job's stage and progress.

    Args:
        job_id: the job.
    """
    CALLS["job_status"] += 1
    step = 10 * CALLS["job_status"] if PROGRESS["moves"] else 40
    calls = CALLS["job_status"]
    return (f"job {job_id}: stage running, step {step}/500, loss {2 - step / 1000:.3f}, "
            f"elapsed {calls}m{calls * 7 % 60}s, checked at 12:0{calls % 10}:00")


@pytest.fixture(autouse=True)
def fresh_counters():
    CALLS.update(load_split=0, job_status=0)
    PROGRESS["moves"] = True


def run(codes: list[str], guard: LoopGuard, reset: bool = True, agent: CodeAgent | None = None):
    steps = [{"thought": f"Attempt {i}.", "code": code} for i, code in enumerate(codes)] + [{"final_answer": "done"}]
    if agent is None:
        agent = CodeAgent(tools=[load_split, job_status], model=ScriptedModel(steps), max_steps=len(steps) + 1,
                          verbosity_level=-1, step_callbacks=[guard])
    else:
        agent.model.replies, agent.model.calls = ScriptedModel(steps).replies, 0
    try:
        return agent, agent.run("Load GSM8K and watch job j-1.", reset=reset)
    except AgentError as error:
        return agent, error


def notices(emitted: list) -> list[tuple[str, int]]:
    return [(payload["level"], payload["step"]) for kind, payload in emitted
            if kind == "notice" and payload["guard"] == "loop"]


def action_steps(agent) -> list[ActionStep]:
    return [s for s in agent.memory.steps if isinstance(s, ActionStep)]


def test_the_same_failing_code_is_noted_then_refused_then_stopped():
    emitted = []
    guard = LoopGuard(emit=lambda kind, payload: emitted.append((kind, payload)))
    agent, outcome = run(["print(load_split('tets'))"] * 8, guard)

    assert isinstance(outcome, AgentError) and "interrupted" in str(outcome)
    assert notices(emitted) == [("note", 3), ("refused", 4), ("stop", 6)]
    assert CALLS["load_split"] == 3  # the refused repeats never ran
    steps = action_steps(agent)
    assert len(steps) == 6
    assert "Loop guard: you are repeating yourself (the same code failed" in steps[2].observations
    assert "Loop guard refused this code: it already ran 3 times" in str(steps[3].error)
    assert guard.stopped and "was stopped" in guard.stopped and "load_split('tets')" in guard.stopped
    assert "The agent was repeating itself and was stopped" in emitted[-1][1]["text"]


def test_the_same_error_from_different_code_is_noted_and_stopped():
    emitted = []
    guard = LoopGuard(emit=lambda kind, payload: emitted.append((kind, payload)))
    _, outcome = run([f"print(load_split('tets{i}'))" for i in range(8)], guard)

    assert isinstance(outcome, AgentError)
    assert notices(emitted) == [("note", 3), ("stop", 6)]
    assert CALLS["load_split"] == 6
    assert "the same error came back" in guard.stopped


def test_polling_a_job_whose_progress_moves_is_not_a_loop():
    emitted = []
    guard = LoopGuard(emit=lambda kind, payload: emitted.append((kind, payload)))
    _, answer = run(["print(job_status('j-1'))"] * 10, guard)

    assert answer == "done" and notices(emitted) == [] and CALLS["job_status"] == 10


def test_polling_a_stuck_job_is_a_loop_even_as_the_clock_moves():
    PROGRESS["moves"] = False
    emitted = []
    guard = LoopGuard(emit=lambda kind, payload: emitted.append((kind, payload)))
    agent, outcome = run(["print(job_status('j-1'))"] * 8, guard)

    assert isinstance(outcome, AgentError)
    assert notices(emitted)[:2] == [("note", 3), ("refused", 4)] and CALLS["job_status"] == 3
    assert "the same code gave the same result" in action_steps(agent)[2].observations


def test_an_agent_that_changes_course_after_the_note_goes_on_and_the_user_is_told():
    emitted = []
    guard = LoopGuard(emit=lambda kind, payload: emitted.append((kind, payload)))
    _, answer = run(["print(load_split('tets'))"] * 3 + ["print(load_split.__doc__ and 'train')"], guard)

    assert answer == "done"
    assert notices(emitted) == [("note", 3), ("changed_course", 4)]
    assert emitted[-1][1]["text"] == "The agent was repeating itself and changed course."


def test_a_new_turn_starts_afresh():
    guard = LoopGuard()
    agent, _ = run(["print(load_split('tets'))"] * 6, guard)
    assert guard.stopped and CALLS["load_split"] == 3

    run(["print(load_split('tets'))"], guard, reset=False, agent=agent)  # the user fixed something; retry once
    assert CALLS["load_split"] == 4 and guard.stopped is None


def test_timestamps_and_durations_do_not_count_as_change():
    assert normalise_result("stage running, elapsed 3m12s, 12:03:01, took 4.2 s") == \
        normalise_result("stage running, elapsed 3m19s, 12:03:09, took 5.0 s")
    assert normalise_result("step 40/500") != normalise_result("step 50/500")


def test_a_session_stopped_by_the_loop_guard_says_so_in_plain_words(tmp_path, settings, ledger):
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump([{"thought": "Read it.", "code": "print(read_missing_file)"}] * 8))
    config = AgentConfig(backend="scripted", model_id="scripted", scripted_plan=plan, settings=settings,
                         auto_approve=True)
    events = list(Session(config, ledger=ledger).run("Summarise the file."))

    loop = [e for e in events if e.kind == "notice" and e.data.get("guard") == "loop"]
    assert [e.data["level"] for e in loop] == ["note", "refused", "stop"]
    assert loop[-1].text.startswith("The agent was repeating itself and was stopped")
    assert not any(e.kind == "error" and "interrupted" in e.text.lower() for e in events)
    assert not any(e.kind == "final_answer" for e in events)
