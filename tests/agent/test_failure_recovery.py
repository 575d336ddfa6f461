"""Issue 4's loop offline: a job fails on injected bad data, the agent keeps working meanwhile,
is told why, fixes the config and reruns it; the ledger records both runs as parent and child."""

import json
from pathlib import Path

from agent.config import AgentConfig
from agent.session import Session
from evals.fixture_data import TRAIN_FILE
from tests.fakes.hub_api import hub_settings, serve_hub

PLAN = Path(__file__).parents[1] / "fixtures" / "recovery_plan.yaml"


def test_agent_diagnoses_an_injected_failure_and_reruns_fixed(tmp_path, tiny_model_dir, settings, ledger):
    rows = [json.loads(line) for line in TRAIN_FILE.read_text().splitlines()[:200]]
    rows[150] = {"prompt": rows[150]["prompt"], "answer": "positive"}  # a malformed row past preflight's sample
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN.read_text().replace("BASE_MODEL", str(tiny_model_dir)).replace("BAD_DATA", str(bad))
                    .replace("GOOD_DATA", str(TRAIN_FILE)))
    hub = serve_hub()
    try:
        config = AgentConfig(backend="scripted", model_id="scripted", scripted_plan=plan,
                             settings=hub_settings(hub, settings), auto_approve=True)
        events = list(Session(config, ledger=ledger).run("train the tiny model; recover from failures"))
    finally:
        hub.close()

    errors = [e.text for e in events if e.kind == "error"]
    assert not errors, errors
    assert events[-1].kind == "final_answer" and events[-1].text == "dataset_format -> completed"
    diagnosis = next(e for e in events if e.kind == "diagnosis")
    assert diagnosis.data["failure"] == "dataset_format"
    [experiment] = ledger.list_experiments(user="local")
    first, second = ledger.runs_for(experiment["id"], user="local")
    assert first["status"] == "failed" and second["status"] == "completed"
    assert second["parent_run_id"] == first["id"] and "clean file" in second["change"]
    assert ledger.metric_series(second["id"], "loss", user="local")["loss"]
    kinds = [e.kind for e in events]
    first_job_done = next(i for i, e in enumerate(events) if e.kind == "job_update"
                          and e.data.get("stage") == "failed")
    lookup = next(i for i, e in enumerate(events) if e.kind == "code" and "lookup_api" in e.text)
    assert lookup < first_job_done, "the agent kept working while the first job ran"
    assert kinds.count("run_created") == 2
