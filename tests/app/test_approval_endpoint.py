"""Through the launched app: a turn that waits for approval ends its chat event, so it holds no worker; another
browser session's turn runs meanwhile, and the waiting one goes on when `/approve` or `/reject` answers it."""

from __future__ import annotations

import time

import pytest
import yaml
from gradio_client import Client

import app
from tests.app.test_users import JOB_PLAN
from tests.fakes.jobs_api import serve_jobs_api

TOKEN = "hf_local_canary_2e7c9a1f3b"


@pytest.fixture
def launched(monkeypatch, data_dir, tmp_path):
    """The app on loopback, scripted, with HF Jobs (the loopback fake) as its compute."""
    jobs = serve_jobs_api(token=TOKEN)
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump(JOB_PLAN))
    for name, value in (("ML_INTERN_DATA_DIR", str(data_dir)), ("ML_INTERN_LLM_BACKEND", "scripted"),
                        ("ML_INTERN_SCRIPTED_PLAN", str(plan)), ("HF_ENDPOINT", jobs.url), ("HF_TOKEN", TOKEN),
                        ("ML_INTERN_COMPUTE", "hf-jobs")):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SPACE_ID", raising=False)
    blocks = app.build_app()
    blocks.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    yield blocks, jobs
    blocks.close()
    jobs.close()


def text_of(message: dict) -> str:
    """A chat message's text as the API returns it (a list of parts in Gradio 6)."""
    content = message["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def last_message(chat: list[dict]) -> str:
    return text_of(chat[-1])


def test_an_approval_waits_alone_and_is_answered_through_its_endpoint(launched):
    blocks, jobs = launched
    waiting, other = Client(blocks.local_url, verbose=False), Client(blocks.local_url, verbose=False)

    waiting_chat = waiting.predict("first goal", [], api_name="/chat")[0]
    assert "Approve" in last_message(waiting_chat) and "a10g-small" in last_message(waiting_chat), \
        "the chat event ends at the approval request"

    started = time.monotonic()
    chat = other.predict("second goal", [], api_name="/chat")[0]
    assert "a10g-small" in last_message(chat)
    answered = other.predict(chat, api_name="/approve")
    rest, note = answered[0], answered[-1]
    assert note == "Approved." and "submitted" in map(text_of, rest)
    assert time.monotonic() - started < 60
    assert len([r for r in jobs.requests if r.method == "POST"]) == 1, "only the approved job was submitted"

    answered = waiting.predict(waiting_chat, "", api_name="/reject")
    rest, note = answered[0], answered[-1]
    assert note == "Rejected." and "did not approve" in " ".join(map(text_of, rest))
    assert len([r for r in jobs.requests if r.method == "POST"]) == 1
    assert other.predict([], api_name="/approve")[-1] == "Nothing is waiting for approval."
