"""The walking skeleton end to end: a scripted model drives the real CodeAgent and tools.

Fake Hub search and dataset viewer on loopback → baseline lighteval on a tiny model built here →
SFT script → local job → status → evaluation of the checkpoint → final answer. Once through the
Session directly and once through the launched Gradio app with gradio_client.
"""

from __future__ import annotations

import os
from pathlib import Path

from agent.config import AgentConfig
from agent.session import Session
from evals.fixture_data import TRAIN_FILE
from tests.fakes.hub_api import hub_settings
from tools.ledger import Ledger

PLAN = Path(__file__).parent / "fixtures" / "e2e_plan.yaml"
MIN_GAIN = 0.15


def write_plan(tmp_path: Path, model_dir: Path) -> Path:
    text = PLAN.read_text().replace("BASE_MODEL", str(model_dir)).replace("TRAIN_DATA", str(TRAIN_FILE))
    plan = tmp_path / "plan.yaml"
    plan.write_text(text)
    return plan


def message_text(message: dict) -> str:
    """A chat message's text; gradio 6 sends content as a list of typed parts."""
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def assert_trained_beats_baseline(ledger: Ledger) -> None:
    [experiment] = ledger.list_experiments(user="local")
    evals = ledger.evals_for(experiment["id"], user="local")
    baseline = [e for e in evals if e["is_baseline"]]
    trained = [e for e in evals if not e["is_baseline"]]
    assert len(baseline) == 1 and len(trained) == 1
    assert baseline[0]["task"] == trained[0]["task"] == "tiny_sentiment"
    assert trained[0]["value"] >= baseline[0]["value"] + MIN_GAIN, (baseline, trained)
    [run] = ledger.runs_for(experiment["id"], user="local")
    assert trained[0]["run_id"] == run["id"] and run["status"] == "completed"
    assert ledger.metric_series(run["id"], "loss", user="local")["loss"], "training metrics were not recorded"


def test_scripted_agent_runs_the_whole_loop(tmp_path, tiny_model_dir, settings, ledger, hub):
    config = AgentConfig(backend="scripted", model_id="scripted", scripted_plan=write_plan(tmp_path, tiny_model_dir),
                         settings=hub_settings(hub, settings), auto_approve=True)
    events = list(Session(config, ledger=ledger).run("improve the tiny model on tiny_sentiment"))

    assert not [e for e in events if e.kind == "error"], [e.text for e in events if e.kind == "error"]
    assert events[-1].kind == "final_answer" and events[-1].text.startswith("baseline")
    search = [r for r in hub.requests if r.path == "/api/datasets"]
    assert search and search[0].query["search"] == ["sentiment"]
    assert any(r.path == "/first-rows" for r in hub.requests)
    kinds = [e.kind for e in events]
    assert kinds.count("eval_result") == 2 and "run_created" in kinds and "job_update" in kinds
    assert_trained_beats_baseline(ledger)


def test_same_run_through_the_gradio_app(tmp_path, tiny_model_dir, data_dir, hub, monkeypatch, read_dirs):
    from gradio_client import Client

    import app

    monkeypatch.setenv("ML_INTERN_LLM_BACKEND", "scripted")
    monkeypatch.setenv("ML_INTERN_SCRIPTED_PLAN", str(write_plan(tmp_path, tiny_model_dir)))
    monkeypatch.setenv("ML_INTERN_DATA_DIR", str(data_dir))
    monkeypatch.setenv("ML_INTERN_READ_DIRS", os.pathsep.join(map(str, read_dirs)))
    monkeypatch.setenv("ML_INTERN_COMPUTE", "local")
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("ML_INTERN_DATASETS_SERVER", hub.url)

    blocks = app.build_app()
    blocks.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        client = Client(blocks.local_url, verbose=False)
        chat = client.predict("improve the tiny model on tiny_sentiment", [], api_name="/chat")[0]
        texts = [message_text(m) for m in chat]
        assert texts[0] == "improve the tiny model on tiny_sentiment"
        assert texts[-2].startswith("baseline") and texts[-1].startswith("**In short:**"), "answer, then summary"
        assert any("Evaluation" in (m.get("metadata") or {}).get("title", "") for m in chat)
        rows = client.predict(api_name="/experiments")
        assert rows["data"][0][0] == 1
    finally:
        blocks.close()
    assert_trained_beats_baseline(Ledger.in_dir(data_dir))
