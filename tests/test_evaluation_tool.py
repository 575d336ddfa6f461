"""run_evaluation end to end: a real lighteval subprocess on the tiny model, writing the real ledger."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from evals.tiny_model import build_tiny_model
from tools.context import ToolContext
from tools.errors import ToolError
from tools.evaluation import RunEvaluationTool


@pytest.fixture
def events():
    return []


@pytest.fixture
def tool(settings, ledger, events):
    ctx = ToolContext(settings=settings, ledger=ledger, jobs=None, emit=lambda kind, p: events.append((kind, p)),
                      goal="improve tiny on tiny_sentiment")
    return RunEvaluationTool(ctx)


def test_tool_is_described_for_the_llm(tool):
    assert tool.name == "run_evaluation" and tool.output_type == "object"
    assert set(tool.inputs) == {"model", "task", "is_baseline", "run_id", "max_samples"}
    assert all(tool.inputs[k].get("nullable") for k in ("task", "is_baseline", "run_id", "max_samples"))
    assert "tiny_sentiment" in tool.description and "Example:" in tool.description
    assert "run_evaluation(model=" in tool.description


def test_baseline_then_checkpoint_records_both_and_reports_the_delta(tool, ledger, events, tiny_model_dir, tmp_path):
    base = tool(model=str(tiny_model_dir), task="tiny_sentiment", is_baseline=True)
    assert set(base) == {"eval_id", "task", "metric", "value", "stderr", "n_samples", "is_baseline", "model",
                         "command"}
    assert base["is_baseline"] is True and base["n_samples"] == 120 and base["metric"] == "acc"
    assert 0.3 <= base["value"] <= 0.7 and 0 < base["stderr"] < 0.1
    assert base["command"].startswith("python -m evals.runner --model ")

    exp_id = tool.ctx.experiment_id
    experiment = ledger.get_experiment(exp_id)
    assert experiment["task"] == "tiny_sentiment" and experiment["base_model"] == base["model"]
    run_id = ledger.create_run("sft", str(tiny_model_dir), "demo", experiment_id=exp_id)
    checkpoint = build_tiny_model(tmp_path / "checkpoint", seed=3)

    after = tool(model=str(checkpoint), run_id=run_id)
    assert after["baseline"] == base["value"]
    assert after["delta"] == pytest.approx(after["value"] - base["value"])
    assert after["is_baseline"] is False and "note" not in after

    rows = ledger.evals_for(exp_id)
    assert [r["id"] for r in rows] == [base["eval_id"], after["eval_id"]]
    assert [r["is_baseline"] for r in rows] == [1, 0] and rows[1]["run_id"] == run_id
    assert rows[1]["checkpoint"] == str(Path(checkpoint).resolve()) and rows[1]["n_samples"] == 120
    assert rows[1]["command"] == after["command"] and rows[1]["value"] == after["value"]
    details = json.loads(rows[1]["details_json"])
    assert details["task_spec"] == "tiny_sentiment|0" and details["lighteval_version"] == "0.13.0"
    assert len(Path(details["details_path"]).read_text().splitlines()) == 120
    assert [kind for kind, _ in events] == ["eval_result", "eval_result"]
    assert events[1][1]["delta"] == after["delta"] and events[1][1]["run_id"] == run_id


def test_subset_evaluation_is_flagged_as_not_comparable(tool, tiny_model_dir):
    tool(model=str(tiny_model_dir), is_baseline=True, max_samples=24)
    quick = tool(model=str(tiny_model_dir), max_samples=12)
    assert quick["n_samples"] == 12 and "not a fair comparison" in quick["note"]


@pytest.mark.parametrize("model, message", [
    ("/no/such/checkpoint", "does not exist"),
    ("EMPTY", "has no config.json"),
    ("ADAPTER", "LoRA adapter"),
])
def test_bad_model_paths(tool, tmp_path, model, message):
    if model == "EMPTY":
        model = str(tmp_path)
    elif model == "ADAPTER":
        (tmp_path / "adapter_config.json").write_text("{}")
        model = str(tmp_path)
    with pytest.raises(ToolError, match=message):
        tool(model=model)


def test_unknown_task_run_or_sample_count(tool, tiny_model_dir, ledger):
    with pytest.raises(ToolError, match="unknown task 'gsm8k'; known tasks: tiny_sentiment"):
        tool(model=str(tiny_model_dir), task="gsm8k")
    with pytest.raises(ToolError, match="there is no run 999"):
        tool(model=str(tiny_model_dir), run_id=999)
    with pytest.raises(ToolError, match="max_samples must be a positive integer"):
        tool(model=str(tiny_model_dir), max_samples=0)
    assert ledger.list_evals() == []


def test_failed_evaluation_shows_the_end_of_its_output(tool, tiny_model_dir, tmp_path, ledger):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ToolError) as err:
        tool(model=str(broken))
    text = str(err.value)
    assert "failed (exit code 1)" in text and "Last lines of its output" in text
    assert "Error" in text and len(text.splitlines()) <= 25
    assert ledger.list_evals() == []
