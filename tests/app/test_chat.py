"""How the app renders the event stream as chat messages."""

from agent.events import Event
from ui.render import render_event


def test_steps_render_as_collapsible_messages_that_finish():
    messages = []
    for event in [Event("user", "go"), Event("delta", "Thinking "), Event("delta", "aloud"),
                  Event("thought", "Look first.", step=1), Event("code", "print(1)", step=1),
                  Event("tool_result", "1", step=1, data={"duration_s": 0.5}),
                  Event("eval_result", data={"task": "t", "metric": "acc", "value": 0.9, "stderr": 0.02,
                                             "n_samples": 120, "is_baseline": True}),
                  Event("code", "final_answer('done')", step=2), Event("final_answer", "done")]:
        render_event(event, messages)

    assert [m.role for m in messages] == ["user"] + ["assistant"] * 6
    titles = [m.metadata.get("title", "") for m in messages]
    assert titles[1].startswith("💭 Thought") and titles[2].startswith("⌨ Code")
    assert not any(m.metadata.get("id") == "streaming" for m in messages), "the streamed draft is replaced"
    assert all(m.metadata.get("status") != "pending" for m in messages), "every code step ends done"
    assert messages[2].metadata["duration"] == 0.5
    assert "**baseline**" in messages[4].content and "0.9" in messages[4].content
    assert messages[-1].content == "done" and not messages[-1].metadata


def test_approval_requests_are_shown_with_their_cost():
    messages = []
    render_event(Event("approval", "Approve submit_job?", data={"action": "submit_job", "max_cost_usd": 2.5}),
                 messages)
    assert "at most **$2.50**" in messages[0].content and "Approve" in messages[0].content


def test_repeated_job_polls_update_one_message():
    messages = []
    for step in (10, 20):
        render_event(Event("job_update", data={"job_id": "local-1", "backend": "local", "stage": "running",
                                               "progress": {"step": step, "max_steps": 150}}), messages)
    render_event(Event("job_update", data={"job_id": "local-1", "backend": "local", "stage": "completed"}), messages)
    assert len(messages) == 1 and "**completed**" in messages[0].content
