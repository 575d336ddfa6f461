"""Session: the event stream a turn produces, persistence, redaction and failure handling."""

import yaml

from agent.config import AgentConfig
from agent.session import Session, thought_of


def scripted_config(tmp_path, settings, steps):
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump(steps))
    return AgentConfig(backend="scripted", model_id="scripted", scripted_plan=plan, settings=settings,
                       auto_approve=True)


def test_turn_yields_typed_events_in_order_and_persists_them(tmp_path, settings, ledger):
    config = scripted_config(tmp_path, settings, [
        {"thought": "Compute something first.", "code": "x = 6 * 7\nprint(x)"},
        {"thought": "Done.", "code": "final_answer(f'answer {x}')"},
    ])
    session = Session(config, ledger=ledger)
    events = list(session.run("what is six times seven?"))
    kinds = [e.kind for e in events]

    assert kinds[0] == "user"
    assert kinds.index("thought") < kinds.index("code") < kinds.index("tool_result")
    assert events[-1].kind == "final_answer" and events[-1].text == "answer 42"
    assert "42" in next(e.text for e in events if e.kind == "tool_result")
    stored = [row["kind"] for row in ledger.session_events(session.id, user="local")]
    assert stored == [k for k in kinds if k != "delta"]


def test_a_failing_code_action_is_an_error_event_and_the_run_goes_on(tmp_path, settings, ledger):
    config = scripted_config(tmp_path, settings, [
        {"thought": "Try a missing tool.", "code": "nonexistent_tool()"},
        {"thought": "Recover.", "code": "final_answer('recovered')"},
    ])
    events = list(Session(config, ledger=ledger).run("go"))
    errors = [e for e in events if e.kind == "error"]
    assert errors and "nonexistent_tool" in errors[0].text
    assert events[-1].kind == "final_answer" and events[-1].text == "recovered"


def test_second_turn_keeps_the_agent_memory(tmp_path, settings, ledger):
    config = scripted_config(tmp_path, settings, [
        {"thought": "Remember.", "code": "memo = 'kept'\nfinal_answer('first')"},
        {"thought": "Recall.", "code": "final_answer(memo)"},
    ])
    session = Session(config, ledger=ledger)
    assert list(session.run("one"))[-1].text == "first"
    assert list(session.run("two"))[-1].text == "kept"


def test_missing_anthropic_key_is_reported_and_the_session_survives(settings, ledger):
    config = AgentConfig(backend="anthropic", anthropic_api_key=None, settings=settings)
    session = Session(config, ledger=ledger)
    events = list(session.run("hello"))
    assert events[-1].kind == "error" and "ANTHROPIC_API_KEY" in events[-1].text
    assert list(session.run("again"))[-1].kind == "error"


def test_secrets_never_reach_events_or_ledger(tmp_path, settings, ledger):
    canary = "canary-secret-value-9f8e7d"
    config = scripted_config(tmp_path, settings.with_(hf_token=canary), [
        {"thought": f"I should not say {canary}.", "code": f"print('{canary}')\nfinal_answer('{canary}')"},
    ])
    session = Session(config, ledger=ledger)
    events = list(session.run(f"leak {canary}"))
    assert all(canary not in e.text and canary not in str(e.data) for e in events)
    assert canary not in str(ledger.session_events(session.id, user="local"))
    for stored_file in ledger.path.parent.glob("ledger.sqlite*"):
        assert canary.encode() not in stored_file.read_bytes()


def test_thought_of_strips_the_code_block():
    assert thought_of("Thought: look first.\n<code>\nprint(1)\n</code>") == "look first."


def test_paid_actions_wait_for_the_users_answer(tmp_path, settings, ledger):
    import threading

    config = scripted_config(tmp_path, settings, [{"code": "final_answer('x')"}]).with_(auto_approve=False)
    session = Session(config, ledger=ledger)
    for answer in (True, False):
        result: dict = {}

        def ask(result=result):
            result["ok"] = session.ctx.ask_approval("submit_job", {"flavor": "a10g-small", "max_cost_usd": 1.5})

        asker = threading.Thread(target=ask)
        asker.start()
        event = session._queue.get(timeout=10)
        assert event.kind == "approval" and event.data == {"action": "submit_job", "flavor": "a10g-small",
                                                           "max_cost_usd": 1.5}
        assert asker.is_alive(), "the tool must wait for the answer"
        session.answer_approval(answer)
        asker.join(10)
        assert result["ok"] is answer
