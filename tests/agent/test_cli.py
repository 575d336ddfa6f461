"""The command line: the iterating demo end to end (real SFT + lighteval on the tiny model), headless runs
held to a target, argument errors, and the `experiments` views of the ledger."""

from __future__ import annotations

import contextlib
import io
import shutil

import pytest
import yaml

from agent.cli import main
from agent.demo import DEMO_TARGET, FIRST_RUN_MAX_STEPS
from tools.ledger import Ledger
from tools.lineage import runs_in_order
from tools.training.scripts import DEFAULT_MAX_STEPS


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def iterated(tiny_model_dir, tmp_path_factory):
    """One real multi-iteration demo run: `python -m agent --demo --target tiny_sentiment>=0.6`."""
    data_dir = tmp_path_factory.mktemp("iterate")
    shutil.copytree(tiny_model_dir, data_dir / "demo" / "tiny-model")
    code, out, err = run_cli("--demo", "--target", DEMO_TARGET, "--data-dir", str(data_dir))
    return {"code": code, "out": out, "err": err, "data_dir": data_dir, "ledger": Ledger.in_dir(data_dir)}


def test_demo_misses_the_target_changes_one_thing_and_meets_it(iterated):
    ledger = iterated["ledger"]
    assert iterated["code"] == 0, iterated["out"][-3000:]
    [experiment] = ledger.list_experiments(user="local")
    assert experiment["status"] == "met" and experiment["target"] == DEMO_TARGET
    tree = ledger.experiment_tree(experiment["id"], user="local")
    [root] = tree["runs"]
    [child] = root["children"]
    assert (root["config"]["max_steps"], child["config"]["max_steps"]) == (FIRST_RUN_MAX_STEPS, DEFAULT_MAX_STEPS)
    assert child["parent_run_id"] == root["id"]
    assert child["change"].startswith(f"max_steps {FIRST_RUN_MAX_STEPS} → {DEFAULT_MAX_STEPS} (run {root['id']} scored")
    assert [n["id"] for n in runs_in_order(tree)] == [root["id"], child["id"]]
    assert all(n["status"] == "completed" and n["duration_s"] > 0 for n in (root, child))
    [baseline] = tree["baselines"]
    [first] = root["evals"]
    [second] = child["evals"]
    assert baseline["value"] < 0.6 and first["value"] < 0.6 <= second["value"], (baseline, first, second)
    assert first["n_samples"] == second["n_samples"] == baseline["n_samples"] == 120

    report = experiment["report"]
    assert report in iterated["out"]  # printed at the end
    assert f"**Target:** {DEMO_TARGET} — met by run {child['id']} ({second['value']:.3f})" in report
    assert f"| best: run {child['id']} | tiny_sentiment | acc | {second['value']:.3f} |" in report
    assert f"| {child['id']} | {root['id']} | max_steps {FIRST_RUN_MAX_STEPS} → {DEFAULT_MAX_STEPS}" in report
    assert f"uv run --script {child['script_path']}" in report and second["command"] in report
    assert "SCRIPTED" in iterated["out"]
    assert "✓ final_answer: Target tiny_sentiment >= 0.6 met by run" in iterated["out"]


def test_experiments_lists_and_shows_the_tree(iterated):
    data_dir = str(iterated["data_dir"])
    code, out, _ = run_cli("experiments", "--data-dir", data_dir)
    header, row = out.splitlines()
    assert code == 0 and header.split()[:7] == ["id", "status", "runs", "baseline", "best", "cost", "target"]
    assert row.split()[:4] == ["1", "met", "2", "0.500"] and DEMO_TARGET in row

    code, out, _ = run_cli("experiments", "show", "1", "--data-dir", data_dir)
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("experiment 1: Scripted offline demo") and "[met]" in lines[0]
    assert lines[2].startswith("  baseline  tiny_sentiment acc 0.500 ± 0.046 (n=120)")
    assert any(line.startswith("  run 1  sft [completed]  lr 0.003, max_steps 15") for line in lines)
    assert any(line.startswith(f"    └─ run 2 (child of run 1: max_steps 15 → {DEFAULT_MAX_STEPS}") for line in lines)
    assert sum("eval " in line and "(n=120)  Δ" in line for line in lines) == 2

    code, out, _ = run_cli("experiments", "report", "1", "--data-dir", data_dir)
    assert code == 0 and out.startswith("# ml-intern report: experiment 1")
    assert run_cli("experiments", "show", "7", "--data-dir", data_dir)[:2] == (1, "no experiment 7; `python -m agent "
                                                                               "experiments` lists them\n")
    assert run_cli("experiments", "drop", "--data-dir", data_dir)[0] == 2


@pytest.mark.parametrize("argv, message", [
    (["task", "--target", "gsm8k=0.6"], "cannot read the target 'gsm8k=0.6'"),
    (["task", "--budget-usd", "-1"], "--budget-usd must be a positive number"),
    (["--target", "gsm8k>=0.6"], "give a task or --demo"),
    (["--demo", "--target", "gsm8k>=0.6"], "one target of the form tiny_sentiment>=VALUE"),
])
def test_bad_arguments_exit_2_with_a_clear_message(argv, message, data_dir):
    code, _, err = run_cli(*argv, "--data-dir", str(data_dir))
    assert code == 2 and message in err


def test_headless_run_is_held_to_its_target_and_reports(tmp_path, data_dir):
    plan = tmp_path / "plan.yaml"
    answer = ("Target unreachable: the only model here scored 0.50 on tiny_sentiment at baseline and there is "
              "no training data for this task, so no run can be trained.")
    plan.write_text(yaml.safe_dump([
        {"thought": "Stop early.", "code": "final_answer('finished')"},
        {"thought": "Explain.", "code": f"final_answer({answer!r})"},
    ]))
    code, out, _ = run_cli("improve the tiny model", "--backend", "scripted", "--plan", str(plan), "--target",
                           "tiny_sentiment>=0.6", "--budget-usd", "5", "--data-dir", str(data_dir))
    assert code == 1
    assert "Target (checked against the ledger's best full evaluation" in out and "Budget: $5" in out
    assert "✗ error: Check target_is_met_or_unreachable failed with error: the target is not met yet" in out
    assert "**Status:** unreachable — Target unreachable: the only model" in out
    [experiment] = Ledger.in_dir(data_dir).list_experiments(user="local")
    assert (experiment["status"], experiment["goal"]) == ("unreachable", "improve the tiny model")
