"""Held-out integrity: tampered eval data is refused, eval paths are protected, contamination is flagged."""

from __future__ import annotations

import json
import shutil

import pytest

from evals import fixture_data, integrity
from evals.catalogue import resolve_task
from evals.fixture_data import EVAL_DIR, TRAIN_FILE
from evals.runner import main
from evals.tasks import TASKS
from tests.fakes.hub_api import FIXTURES, hub_settings, serve_hub
from tools.context import ToolContext
from tools.errors import ToolError
from tools.evaluation.checks import check_contamination, training_runs
from tools.evaluation.evaluate import RunEvaluationTool
from tools.settings import Settings


def test_the_shipped_data_matches_its_pinned_manifest():
    entries = integrity.read_manifest()
    assert {"tiny_sentiment/test.jsonl", "tiny_sentiment_gen/test.jsonl"} <= set(entries)
    assert entries == integrity.manifest_entries(integrity.DATA_DIR)
    for task in ("tiny_sentiment", "tiny_sentiment_gen"):
        report = integrity.verify_data(TASKS[task]["data_path"])
        assert report["verified"] and report["files"] == 1 and len(report["data_sha256"]) == 64


@pytest.fixture
def copy(tmp_path, monkeypatch):
    """A copy of evals/data that the module (and TASKS) read instead of the real one."""
    data = tmp_path / "data"
    shutil.copytree(integrity.DATA_DIR, data)
    monkeypatch.setattr(integrity, "DATA_DIR", data)
    monkeypatch.setitem(TASKS["tiny_sentiment"], "data_path", data / "tiny_sentiment")
    return data


@pytest.mark.parametrize("change, problem", [
    (lambda d: (d / "tiny_sentiment" / "test.jsonl").write_text('{"review": "x", "label": "positive"}\n'),
     "tiny_sentiment/test.jsonl was modified"),
    (lambda d: (d / "tiny_sentiment" / "checkpoint").mkdir() or (d / "tiny_sentiment" / "checkpoint" / "w.bin")
     .write_bytes(b"0"), "tiny_sentiment/checkpoint/w.bin was added"),
    (lambda d: (d / "tiny_sentiment" / "test.jsonl").unlink(), "tiny_sentiment/test.jsonl is missing"),
])
def test_a_tampered_eval_set_is_refused(copy, change, problem):
    change(copy)
    with pytest.raises(integrity.TamperedEvalData, match=problem):
        integrity.verify_data(copy / "tiny_sentiment")
    integrity.verify_data(copy / "tiny_sentiment_gen")  # the other task is untouched


def test_a_rewritten_manifest_is_refused(copy):
    (copy / "tiny_sentiment" / "test.jsonl").write_text('{"review": "x", "label": "positive"}\n')
    integrity.write_manifest(copy)  # the tampering covered up in the manifest too
    with pytest.raises(integrity.TamperedEvalData, match="manifest .* was modified"):
        integrity.verify_data(copy / "tiny_sentiment")


def test_runner_and_tool_refuse_tampered_data_before_evaluating(copy, tmp_path, tiny_model_dir, settings, ledger,
                                                                capsys):
    with (copy / "tiny_sentiment" / "test.jsonl").open("a") as f:
        f.write(json.dumps({"review": "An extra easy item.", "label": "positive"}) + "\n")
    assert main(["--model", str(tiny_model_dir), "--output-dir", str(tmp_path / "out")]) == 2
    assert "refusing to evaluate on tampered data" in capsys.readouterr().err
    tool = RunEvaluationTool(ToolContext(settings=settings, ledger=ledger, jobs=None))
    with pytest.raises(ToolError, match="tiny_sentiment/test.jsonl was modified"):
        tool(model=str(tiny_model_dir), task="tiny_sentiment", is_baseline=True)
    assert ledger.list_evals(user="local") == []


def test_nothing_under_evals_is_writable_through_the_tools(tiny_model_dir, ledger, read_dirs):
    assert integrity.is_protected(integrity.DATA_DIR / "tiny_sentiment" / "test.jsonl")
    assert integrity.is_protected(integrity.EVALS_DIR / "runner.py")
    assert not integrity.is_protected(integrity.EVALS_DIR.parent / "tools" / "evaluation.py")
    with pytest.raises(ValueError, match="nothing may be written there"):
        integrity.refuse_protected(integrity.DATA_DIR / "new_task", "output_dir")
    inside = Settings(data_dir=integrity.DATA_DIR / "scratch", compute_backend="local", extra_read_dirs=read_dirs)
    tool = RunEvaluationTool(ToolContext(settings=inside, ledger=ledger, jobs=None))
    with pytest.raises(ToolError, match="holds the evaluation code and held-out data"):
        tool(model=str(tiny_model_dir), task="tiny_sentiment", is_baseline=True)
    assert not (integrity.DATA_DIR / "scratch").exists()


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_contamination_of_a_run_and_of_its_ancestors(tmp_path, settings, ledger):
    ctx = ToolContext(settings=settings, ledger=ledger, jobs=None)
    exp = ctx.current_experiment()
    leaked = [{"prompt": f"Review: {r['review']}\nSentiment:", "completion": " " + r["label"]}
              for r in fixture_data.test_rows()[:6]]
    dirty = write_jsonl(tmp_path / "dirty.jsonl", leaked + [{"prompt": "Review: fine.", "completion": " positive"}])
    ref = resolve_task("tiny_sentiment")

    clean_run = ledger.create_run("sft", "base", str(TRAIN_FILE), experiment_id=exp, user="local")
    clean = check_contamination(ctx, ref, clean_run)
    assert clean["checked"] and clean["contaminated"] is False and clean["contaminated_items"] == 0
    assert clean["train_rows_read"] == 600 and clean["eval_items"] == 120

    dirty_run = ledger.create_run("sft", "base", dirty, experiment_id=exp, user="local")
    report = check_contamination(ctx, ref, dirty_run)
    assert report["contaminated"] is True and report["contaminated_items"] >= 6
    assert set(range(6)) <= set(report["eval_indices"]) and report["train_rows_matching"] == 6

    child = ledger.create_run("sft", "base", str(TRAIN_FILE), experiment_id=exp, parent_run_id=dirty_run, user="local")
    assert [r["id"] for r in training_runs(ledger, child, user="local")] == [child, dirty_run]
    assert check_contamination(ctx, ref, child)["contaminated"] is True
    unknown = check_contamination(ctx, ref, None)
    assert unknown["checked"] is False and unknown["reason"].startswith("no run_id")


def test_a_contaminated_run_is_flagged_and_a_clean_one_is_not(tmp_path, tiny_model_dir, settings, ledger):
    events = []
    tool = RunEvaluationTool(ToolContext(settings=settings, ledger=ledger, jobs=None,
                                         emit=lambda kind, p: events.append(p)))
    tool(model=str(tiny_model_dir), task="tiny_sentiment", is_baseline=True, max_samples=8)
    exp = tool.ctx.experiment_id
    eval_copy = write_jsonl(tmp_path / "copied.jsonl", [json.loads(line) for line in
                                                        (EVAL_DIR / "test.jsonl").read_text().splitlines()])
    dirty_run = ledger.create_run("sft", str(tiny_model_dir), eval_copy, experiment_id=exp, user="local")
    clean_run = ledger.create_run("sft", str(tiny_model_dir), str(TRAIN_FILE), experiment_id=exp, user="local")

    dirty = tool(model=str(tiny_model_dir), task="tiny_sentiment", run_id=dirty_run, max_samples=8)
    assert dirty["contaminated"] is True and dirty["warning"].startswith("CONTAMINATED: 120 of 120")
    assert dirty["contamination"]["fraction"] == 1.0 and events[-1]["contaminated"] is True
    clean = tool(model=str(tiny_model_dir), task="tiny_sentiment", run_id=clean_run, max_samples=8)
    assert clean["contaminated"] is False and "warning" not in clean

    rows = {r["run_id"]: json.loads(r["details_json"]) for r in ledger.evals_for(exp, user="local")
            if not r["is_baseline"]}
    assert rows[dirty_run]["contaminated"] is True and rows[dirty_run]["contamination"]["contaminated_items"] == 120
    assert rows[clean_run]["contaminated"] is False and rows[clean_run]["contamination"]["checked"] is True


def test_contamination_reads_hub_datasets_through_the_dataset_viewer(tmp_path, settings, ledger):
    server = serve_hub()
    try:
        ctx = ToolContext(settings=hub_settings(server, settings), ledger=ledger, jobs=None)
        exp = ctx.current_experiment()
        hub_task = resolve_task("custom:ml-intern-fixtures/tiny-sentiment",
                                {"kind": "generative", "question": "prompt", "answer": "completion"})
        leak = write_jsonl(tmp_path / "leak.jsonl", [{"text": r["prompt"] + r["completion"]}
                                                     for r in viewer_rows("default/test")[:3]])
        leaky = ledger.create_run("sft", "base", leak, experiment_id=exp, user="local")
        report = check_contamination(ctx, hub_task, leaky)
        assert report["contaminated"] is True and report["contaminated_items"] == 3
        assert report["eval_source"]["source"] == "hub" and report["eval_source"]["split"] == "test"
        assert any(r.path == "/rows" for r in server.requests)

        hub_run = ledger.create_run("sft", "base", "ml-intern-fixtures/tiny-sentiment", experiment_id=exp, user="local")
        report = check_contamination(ctx, resolve_task("tiny_sentiment"), hub_run)
        assert report["checked"] and report["contaminated"] is False
        assert report["train_sources"][0]["source"] == "hub" and report["train_sources"][0]["split"] == "train"
    finally:
        server.close()


def viewer_rows(key: str) -> list[dict]:
    fixture = json.loads((FIXTURES / "viewer_tiny-sentiment.json").read_text())
    return [r["row"] for r in fixture["first-rows"][key]["rows"]]
