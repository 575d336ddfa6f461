"""Events: the kinds a turn can produce, which of them are stored, and their round trip through the ledger."""

from __future__ import annotations

import json

import pytest

from agent.events import EVENT_KINDS, PERSISTED_KINDS, Event


def test_every_kind_is_known_and_only_deltas_are_not_stored():
    assert len(set(EVENT_KINDS)) == len(EVENT_KINDS)
    assert {"user", "thought", "code", "tool_result", "error", "final_answer", "approval"} <= set(EVENT_KINDS)
    assert set(EVENT_KINDS) - PERSISTED_KINDS == {"delta"}


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown event kind 'telemetry'"):
        Event("telemetry", "x")


def test_an_event_has_a_timestamp_and_its_own_data():
    first, second = Event("notice", "one"), Event("notice", "two")
    first.data["job_id"] = "local-1"
    assert second.data == {} and first.step is None
    assert 0 < first.ts <= second.ts


def test_events_round_trip_through_json_and_the_ledger(ledger):
    event = Event("eval_result", "acc 0.71", data={"task": "tiny_sentiment", "value": 0.71, "run_id": 2}, step=4)
    payload = event.to_dict()
    assert payload == {"kind": "eval_result", "text": "acc 0.71", "step": 4, "ts": event.ts,
                       "data": {"task": "tiny_sentiment", "value": 0.71, "run_id": 2}}
    assert Event.from_dict(json.loads(json.dumps(payload))) == event
    session = ledger.create_session("scripted", user="local")
    ledger.record_event(session, event.kind, payload)
    [stored] = ledger.session_events(session, user="local")
    assert stored["kind"] == "eval_result" and Event.from_dict(stored["payload"]) == event
    with pytest.raises(ValueError, match="unknown event kind"):
        Event.from_dict({**payload, "kind": "bogus"})
