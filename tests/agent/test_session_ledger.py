"""A turn's events reach the ledger file by the time the turn ends, for readers in other processes too."""

import yaml

from agent.config import AgentConfig
from agent.session import Session
from tests.ground.test_ledger_events import stored


def test_a_turns_events_are_visible_to_another_process_when_it_ends(tmp_path, settings, ledger):
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump([{"thought": "Count.", "code": "print(sum(range(10)))"},
                                    {"final_answer": "45"}]))
    config = AgentConfig(backend="scripted", model_id="scripted", scripted_plan=plan, settings=settings,
                         auto_approve=True)
    session = Session(config, ledger=ledger)
    events = [e.to_dict() for e in session.run("add up") if e.kind != "delta"]
    assert stored(ledger.path, session.id) == events  # committed: read at once by a connection of its own
