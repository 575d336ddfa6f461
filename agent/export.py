"""A session as redacted JSONL: on disk, and with an explicit opt-in in a private Hub dataset.

    ml-intern export SESSION                          # writes <data_dir>/exports/SESSION.jsonl
    ml-intern export SESSION --out s.jsonl --upload   # with HF_TOKEN: also to <user>/ml-intern-sessions (private)

One JSON object per line, each with a "type": "session" first (id, title, created_at, config), then every
stored "event" in order, then the agent "memory" steps (agent/persistence.py). The ledger already holds them
redacted; they are redacted again on the way out with the exporting config's secrets, which also masks
anything shaped like a token.
"""

from __future__ import annotations

import json
from pathlib import Path

from tools.backends.hub import hf_api, hub_errors
from tools.ledger import Ledger
from tools.redact import redact
from tools.settings import Settings

SESSIONS_REPO = "ml-intern-sessions"


def session_records(ledger: Ledger, session_id: str, *, user: str, secrets: list[str]) -> list[dict]:
    """The export's lines as dicts; ValueError for a session `user` does not have."""
    row = ledger.get_session(session_id, user=user)
    if row is None:
        raise ValueError(f"there is no session {session_id!r} of user {user!r}; `ml-intern sessions` lists yours")
    records = [{"type": "session", "id": row["id"], "title": row["title"], "created_at": row["created_at"],
                "config": json.loads(row["config_json"] or "{}")}]
    records += [{"type": "event", **event["payload"]} for event in ledger.session_events(session_id, user=user)]
    records += [{"type": "memory", "turn": m["turn"], "kind": m["kind"], "number": m["number"], "step": m["step"]}
                for m in ledger.memory_steps(session_id, user=user)]
    return [redact(record, secrets) for record in records]


def write_export(ledger: Ledger, session_id: str, path: str | Path, *, user: str, secrets: list[str]) -> Path:
    """Write the session's JSONL to `path`; returns it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(record, default=str, ensure_ascii=False) for record in
             session_records(ledger, session_id, user=user, secrets=secrets)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def upload_export(path: str | Path, session_id: str, settings: Settings) -> dict:
    """Upload an export to the private dataset `<user>/ml-intern-sessions` as `sessions/<id>.jsonl` (the repo
    is created private on first use; an existing public one is refused). Needs an HF token with write access."""
    from huggingface_hub import CommitOperationAdd

    if not settings.hf_token:
        raise ValueError("uploading a session needs a Hugging Face token with write access: set HF_TOKEN")
    api = hf_api(settings)
    with hub_errors("upload the session export", settings.hf_endpoint):
        repo_id = f"{settings.hf_namespace or api.whoami()['name']}/{SESSIONS_REPO}"
        api.create_repo(repo_id, repo_type="dataset", private=True, exist_ok=True)
        if not api.dataset_info(repo_id).private:
            raise ValueError(f"the Hub dataset {repo_id} exists and is public; make it private (or delete it) "
                             "before uploading sessions there")
        path_in_repo = f"sessions/{session_id}.jsonl"
        commit = api.create_commit(repo_id, [CommitOperationAdd(path_in_repo, str(path))], repo_type="dataset",
                                   commit_message=f"ml-intern session {session_id}")
    return {"repo_id": repo_id, "path_in_repo": path_in_repo, "url": commit.commit_url}
