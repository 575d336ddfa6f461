"""The end-of-run report and pushing the best checkpoint with a model card to the (fake) Hub."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest
from huggingface_hub import ModelCard

from agent.config import AgentConfig
from agent.report import best_evals, build_report, compare, end_of_run, push_best_model
from agent.session import Session
from agent.target import Budget
from tests.fakes.hub_api import GRANTED_TOKEN, hub_settings
from tools.targets import parse_targets


@pytest.fixture
def checkpoint(tiny_model_dir, tmp_path):
    """A real (tiny) saved model standing in for a trained checkpoint."""
    return shutil.copytree(tiny_model_dir, tmp_path / "ckpt")


def test_report_has_goal_target_scores_runs_cost_and_commands(ledger, build_experiment):
    ids = build_experiment(ledger)
    ledger.update_experiment(ids["experiment"], status="met", stop_reason="tiny_sentiment>=0.6 met by run 2",
                             budget_json='{"usd": 20, "hours": 10}')
    ledger.record_spend(None, ids["experiment"], "llm", 1.5, {"model": "claude-sonnet-5-5"}, user="local")
    report = build_report(ledger, ids["experiment"], user="local")

    assert report.startswith(f"# ml-intern report: experiment {ids['experiment']}")
    assert "**Goal:** improve tiny on tiny_sentiment" in report
    assert "**Status:** met — tiny_sentiment>=0.6 met by run 2" in report
    assert f"**Target:** tiny_sentiment>=0.6 — met by run {ids['child']} (0.710)" in report
    assert "**Budget:** $20, 10 h" in report
    assert "| baseline | tiny_sentiment | acc | 0.500 | 0.046 | 120 | |" in report
    # the best full evaluation, not the max_samples smoke check that scored 1.0
    assert (f"| best: run {ids['child']} | tiny_sentiment | acc | 0.710 | 0.042 | 120 | "
            "+0.210 (3.4× the combined stderr: beyond noise) |") in report
    assert (f"| {ids['child']} | {ids['first']} | max_steps 15 → 150 | sft | lr 0.003, max_steps 150, batch 16 | "
            "tiny_sentiment acc 0.710 ± 0.042 (n=120) | completed | 60 s | $0.25 |") in report
    assert f"| {ids['failed']} | {ids['first']} | learning_rate 0.003 → 0.1 |" in report
    assert "failed: loss is nan" in report
    assert "- dataset 1: `/data/ds1` from raw/reviews (prompt-completion, 360 rows)" in report
    assert "Training and evaluation jobs: $0.25 · LLM: $1.50 · total $1.75 of the $20 budget" in report
    assert "uv run --script /runs/2/train.py" in report
    assert "python -m evals.runner --model /ckpt/2 --task tiny_sentiment" in report
    assert "Checkpoint: `/ckpt/2`" in report


def test_report_judges_the_targets_task_in_its_direction(ledger, build_experiment):
    ids = build_experiment(ledger)
    ledger.update_experiment(ids["experiment"], target="loss<=1.2")
    for value in (1.4, 1.1, 1.3):
        ledger.record_eval("/ckpt/2", "loss", "loss", value, experiment_id=ids["experiment"], run_id=ids["child"],
                           user="local")
    ledger.record_eval("/ckpt/2", "loss", "loss", 0.2, experiment_id=ids["experiment"], run_id=ids["child"],
                       details={"max_samples": 5}, user="local")
    [row] = best_evals(ledger.experiment_tree(ids["experiment"], user="local"))
    assert (row["task"], row["value"]) == ("loss", 1.1)
    report = build_report(ledger, ids["experiment"], user="local")
    assert f"**Target:** loss<=1.2 — met by run {ids['child']} (1.100)" in report
    assert f"| best: run {ids['child']} | loss | loss | 1.100 |" in report
    assert f"| best: run {ids['child']} | tiny_sentiment" not in report


def test_report_without_trained_evals(ledger):
    exp = ledger.create_experiment("look only", user="local")
    report = build_report(ledger, exp, user="local")
    assert "No trained checkpoint was evaluated in full." in report and "No training run was written." in report
    assert "Reproduce" not in report
    with pytest.raises(ValueError, match="no experiment 99"):
        build_report(ledger, 99, user="local")


def test_report_shows_the_sessions_spend_with_holds_and_unpriced_calls(ledger):
    session = ledger.create_session(user="local")
    exp = ledger.create_experiment("look and train", session_id=session, user="local")
    ledger.record_spend(session, None, "llm", 0.75, {"model": "claude-sonnet-5-5"}, user="local")  # before exp
    ledger.record_spend(session, exp, "llm", 0.0, {"model": "qwen3:8b", "unpriced": True}, user="local")
    ledger.record_spend(session, exp, "reserve", 5.0, {"job_id": "job-1"}, user="local")
    report = build_report(ledger, exp, user="local")
    assert ("Training and evaluation jobs: $0.00 · LLM: $0.75 (+ 1 call of unknown price) · held for running jobs: "
            "$5.00 · total $5.75") in report


def test_compare_says_when_a_gain_is_within_noise():
    base = {"value": 0.50, "stderr": 0.05}
    assert compare({"value": 0.55, "stderr": 0.05}, base) == "+0.050 (0.7× the combined stderr: within noise)"
    assert compare({"value": 0.55, "stderr": None}, base) == "+0.050"
    assert compare({"value": 0.55, "stderr": None}, None) == "no baseline"


def test_push_best_model_uploads_checkpoint_and_model_card(ledger, settings, hub, checkpoint, build_experiment):
    ids = build_experiment(ledger, checkpoint=str(checkpoint))
    pushed = push_best_model(ledger, ids["experiment"], hub_settings(hub, settings, token=GRANTED_TOKEN), user="local")

    repo_id = f"fixture-user/ml-intern-experiment-{ids['experiment']}"
    assert pushed["repo_id"] == repo_id and pushed["run_id"] == ids["child"]
    repo = hub.state["repos"][repo_id]
    assert repo["type"] == "model" and repo["private"] is True
    assert {"config.json", "model.safetensors", "README.md"} <= set(repo["files"])
    assert repo["files"]["config.json"] == (checkpoint / "config.json").read_bytes()
    card = ModelCard(repo["files"]["README.md"].decode())
    [result] = card.data.eval_results
    assert (result.dataset_type, result.metric_type, result.metric_value) == ("tiny_sentiment", "acc", 0.71)
    assert card.data.base_model == "tiny"  # a Hub id (a local folder would be left out)
    assert "| baseline | tiny_sentiment | acc | 0.5000 | 0.046 | 120 |" in card.text
    assert "| this model | tiny_sentiment | acc | 0.7100 | 0.042 | 120 |" in card.text
    assert repo["commits"] == [f"ml-intern experiment {ids['experiment']}: best checkpoint (run {ids['child']})"]


def test_push_refuses_what_it_cannot_upload(ledger, settings, hub, build_experiment):
    ids = build_experiment(ledger, checkpoint="outputs/run-2")  # an HF Jobs path: not on this machine
    with pytest.raises(ValueError, match="not a local model folder"):
        push_best_model(ledger, ids["experiment"], hub_settings(hub, settings, token=GRANTED_TOKEN), user="local")
    with pytest.raises(ValueError, match="no fully evaluated trained checkpoint"):
        push_best_model(ledger, ledger.create_experiment("empty", user="local"), settings, user="local")


def test_end_of_run_settles_pushes_and_saves_the_report(ledger, settings, hub, checkpoint, build_experiment):
    config = AgentConfig(backend="scripted", model_id="scripted",
                         settings=hub_settings(hub, settings, token=GRANTED_TOKEN))
    session = Session(config, ledger=ledger, targets=parse_targets("tiny_sentiment>=0.6"), budget=Budget(usd=5))
    session.ctx.experiment_id = build_experiment(ledger, checkpoint=str(checkpoint))["experiment"]
    session.guard.start()
    session.final_answer = "done"

    report = end_of_run(session, repo_id="fixture-user/tiny-sentiment-sft")

    experiment = ledger.get_experiment(session.ctx.experiment_id, user="local")
    assert experiment["status"] == "met" and experiment["report"] == report
    assert "The best checkpoint (run 2) is on the Hub" in report and "tiny-sentiment-sft" in report
    assert GRANTED_TOKEN not in report
    assert "fixture-user/tiny-sentiment-sft" in hub.state["repos"]


def test_end_of_run_without_an_experiment():
    session = SimpleNamespace(ctx=SimpleNamespace(experiment_id=None))
    assert end_of_run(session).startswith("No experiment was recorded")
