"""Session export: redacted JSONL of the session's events and memory, and the opt-in upload to a private Hub
dataset through the real huggingface_hub client against the fake Hub."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from agent.cli import main
from agent.export import SESSIONS_REPO, upload_export, write_export
from agent.session import Session
from tests.agent.session_helpers import scripted_config
from tests.fakes.hub_api import FIXTURE_USER, GRANTED_TOKEN, hub_settings, serve_hub

CANARY = "canary-export-secret-3c4d5e6f"


@pytest.fixture
def session(tmp_path, settings, ledger):
    config = scripted_config(tmp_path, settings.with_(hf_token=CANARY), [
        {"thought": f"Use {CANARY} quietly.", "code": f"print('token {CANARY}')"},
        {"thought": "Done.", "code": "final_answer('exported')"},
    ])
    session = Session(config, ledger=ledger, title="export me")
    list(session.run(f"a task mentioning {CANARY}"))
    return session


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_export_writes_the_sessions_events_and_memory_without_secrets(tmp_path, session, ledger):
    late = "canary-added-after-the-fact-77"  # a secret the ledger never saw redacted: the export masks it too
    ledger.record_event(session.id, "notice", {"kind": "notice", "text": f"old row with {late} and hf_" + "a" * 30,
                                               "data": {}, "step": None, "ts": 0.0})
    path = write_export(ledger, session.id, tmp_path / "out" / "s.jsonl", user="local",
                        secrets=[*session.config.secrets, late])
    text = path.read_text()
    assert CANARY not in text and late not in text and "hf_" + "a" * 30 not in text
    records = read_jsonl(path)
    assert records[0]["type"] == "session" and records[0]["id"] == session.id and records[0]["title"] == "export me"
    events = [r for r in records if r["type"] == "event"]
    assert [e["kind"] for e in events] == [row["kind"] for row in ledger.session_events(session.id, user="local")]
    assert events[-1]["text"].startswith("old row with [REDACTED]")
    memory = [r for r in records if r["type"] == "memory"]
    assert [m["kind"] for m in memory] == ["task", "action", "action"]
    assert memory[-1]["step"]["is_final_answer"] is True


def test_export_of_someone_elses_session_is_refused(tmp_path, session, ledger):
    with pytest.raises(ValueError, match="there is no session"):
        write_export(ledger, session.id, tmp_path / "x.jsonl", user="mallory", secrets=[])


def test_upload_goes_to_a_private_sessions_dataset_only_when_asked(tmp_path, session, ledger, settings):
    server = serve_hub()
    try:
        hub = hub_settings(server, settings, token=GRANTED_TOKEN)
        path = write_export(ledger, session.id, tmp_path / "s.jsonl", user="local", secrets=session.config.secrets)
        uploaded = upload_export(path, session.id, hub)
        repo_id = f"{FIXTURE_USER}/{SESSIONS_REPO}"
        assert uploaded["repo_id"] == repo_id and uploaded["path_in_repo"] == f"sessions/{session.id}.jsonl"
        repo = server.state["repos"][repo_id]
        assert repo["type"] == "dataset" and repo["private"] is True
        assert repo["files"][f"sessions/{session.id}.jsonl"] == path.read_bytes()
        assert CANARY.encode() not in repo["files"][f"sessions/{session.id}.jsonl"]

        upload_export(path, session.id, hub)  # a second export goes to the same repo
        assert len(repo["commits"]) == 2

        repo["private"] = False  # someone made it public: refuse rather than publish
        with pytest.raises(ValueError, match="is public"):
            upload_export(path, session.id, hub)
        with pytest.raises(ValueError, match="set HF_TOKEN"):
            upload_export(path, session.id, hub.with_(hf_token=None))
    finally:
        server.close()


def test_cli_export_writes_the_file_and_uploads_only_with_the_flag(tmp_path, session, settings, monkeypatch):
    server = serve_hub()
    try:
        monkeypatch.setenv("HF_TOKEN", GRANTED_TOKEN)
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        out_file = tmp_path / "cli.jsonl"
        for argv, uploads in ((["--out", str(out_file)], 0), (["--out", str(out_file), "--upload"], 1)):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                code = main(["export", session.id, "--data-dir", str(settings.data_dir), *argv])
            assert code == 0 and f"wrote {out_file}" in out.getvalue()
            assert len(server.state.get("repos", {})) == uploads
        assert read_jsonl(out_file)[0]["id"] == session.id
        assert CANARY not in out_file.read_text()
    finally:
        server.close()
