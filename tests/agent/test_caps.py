"""Size caps: a 10 MB string reaches neither the next LLM request nor the ledger whole, and the cut is said.

Through the real agent loop (agent.Session, smolagents' CodeAgent and executor, a scripted model that
keeps every request it is sent): a code action that passes 10 MB to a tool whose error quotes it,
one that prints 10 MB, and one whose own code holds a 500 KB literal (about the longest reply an LLM
writes; smolagents' own rendering of a streamed reply takes minutes at 10 MB).
"""

from __future__ import annotations

import json
import re

import pytest

from agent.caps import cap, cap_values, cut_note
from agent.config import AgentConfig
from agent.session import Session
from tests.fakes.recording_model import RecordingModel

BIG = 10_000_000
LONGEST_REPLY = 500_000
LIMIT = 20_000
NOTE = re.compile(r"… \[cut ([\d,]+) characters\] …")


def texts_of(messages) -> list[str]:
    """The text of each message as the LLM backend would send it."""
    out = []
    for message in messages:
        content = message.content
        out.append(content if isinstance(content, str) else "".join(p.get("text", "") for p in content or []))
    return out


def cut_counts(text: str) -> list[int]:
    return [int(n.replace(",", "")) for n in NOTE.findall(text)]


def run(settings, ledger, code: str):
    model = RecordingModel([{"thought": "Try a big string.", "code": code}, {"final_answer": "done"}])
    config = AgentConfig(backend="scripted", model_id="scripted", auto_approve=True, settings=settings)
    session = Session(config, ledger=ledger, model=model)
    events = list(session.run("go"))
    assert events[-1].kind == "final_answer" and events[-1].text == "done"
    assert len(model.inputs) == 2
    return session, model, events


def assert_bounded(session, model, events, ledger):
    """Every message of the next request, every event string and every ledger row stays near the cap."""
    for text in texts_of(model.inputs[1]):
        assert len(text) <= LIMIT + 6_000, text[:200]  # the system prompt is the longest uncapped message
    for event in events:
        assert len(event.text) <= LIMIT + 100
        assert all(len(v) <= LIMIT + 100 for v in event.data.values() if isinstance(v, str))
    rows = ledger.session_events(session.id, user="local")
    assert rows and max(len(json.dumps(row)) for row in rows) <= LIMIT + 1_000
    stored = sum(p.stat().st_size for p in ledger.path.parent.glob("ledger.sqlite*"))
    assert stored < 2_000_000, stored


def test_cap_keeps_head_and_tail_around_a_note():
    assert cap("short", 10) == "short"
    text = "a" * 50 + "b" * 50
    capped = cap(text, 20)
    assert capped == "a" * 10 + f"\n{cut_note(80)}\n" + "b" * 10
    assert cut_note(9_980_000) == "… [cut 9,980,000 characters] …"
    value = {"text": "x" * 30, "items": ["y" * 30, 3, ("z" * 5,)], "n": None}
    assert cap_values(value, 10) == {"text": cap("x" * 30, 10), "items": [cap("y" * 30, 10), 3, ("z" * 5,)],
                                     "n": None}


def test_a_tool_argument_of_10_mb_is_cut_in_the_next_request_the_events_and_the_ledger(settings, ledger):
    code = f'big = "x" * {BIG}\nsearch_code_examples(query="GRPOConfig", library=big)'
    session, model, events = run(settings, ledger, code)

    [error] = [e for e in events if e.kind == "error"]
    assert "Unknown library 'xxxx" in error.text and cut_counts(error.text)
    [echoed] = [t for t in texts_of(model.inputs[1]) if "Unknown library" in t]
    assert echoed.startswith("Call id: ") and "xxxx" in echoed
    [cut] = cut_counts(echoed)
    assert cut >= BIG - LIMIT and len(echoed) <= LIMIT + 1_000
    [row] = [r for r in ledger.session_events(session.id, user="local") if r["kind"] == "error"]
    assert cut_counts(row["payload"]["text"]) == cut_counts(error.text)
    assert_bounded(session, model, events, ledger)


def test_printing_10_mb_is_cut_in_the_next_request_the_events_and_the_ledger(settings, ledger):
    session, model, events = run(settings, ledger, f'print("y" * {BIG})')

    [observation] = [t for t in texts_of(model.inputs[1]) if t.startswith("Observation:")]
    assert "yyyy" in observation and cut_counts(observation) and len(observation) <= LIMIT + 200
    [result] = [e for e in events if e.kind == "tool_result"]
    assert cut_counts(result.text) and len(result.text) <= LIMIT + 100
    [row] = [r for r in ledger.session_events(session.id, user="local") if r["kind"] == "tool_result"]
    assert row["payload"]["text"] == result.text
    assert_bounded(session, model, events, ledger)


def test_a_long_literal_in_the_models_own_code_is_cut_in_its_memory_and_the_events(settings, ledger):
    session, model, events = run(settings, ledger, f'data = "{"z" * LONGEST_REPLY}"\nprint(len(data))')

    replayed = [t for t in texts_of(model.inputs[1]) if "zzzz" in t]
    assert len(replayed) == 2  # the model's own output and smolagents' "Calling tools" echo of its code
    for text in replayed:
        [cut] = cut_counts(text)
        assert cut >= LONGEST_REPLY - LIMIT
    [observation] = [t for t in texts_of(model.inputs[1]) if t.startswith("Observation:")]
    assert str(LONGEST_REPLY) in observation, "the code ran whole: only what is replayed to the LLM is cut"
    code = next(e for e in events if e.kind == "code")
    assert cut_counts(code.text) and code.text.startswith('data = "zzz')
    assert_bounded(session, model, events, ledger)


@pytest.mark.parametrize("name, value", [("ML_INTERN_MAX_OBSERVATION_CHARS", 5_000),
                                         ("ML_INTERN_MAX_EVENT_CHARS", 7_000)])
def test_the_caps_are_settings(monkeypatch, name, value):
    monkeypatch.setenv(name, str(value))
    config = AgentConfig.from_env()
    caps = {"ML_INTERN_MAX_OBSERVATION_CHARS": config.max_observation_chars,
            "ML_INTERN_MAX_EVENT_CHARS": config.max_event_chars}
    assert caps[name] == value and AgentConfig().max_observation_chars == AgentConfig().max_event_chars == LIMIT
