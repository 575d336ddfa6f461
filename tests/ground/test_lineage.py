"""The experiment tree in one ledger call, and how it is walked, rendered and plotted."""

from __future__ import annotations

import pytest

from tools.lineage import (
    best,
    config_diff,
    hyperparameters,
    judged_tasks,
    render_tree,
    runs_in_order,
    score_series,
    walk_runs,
)


def test_experiment_tree_holds_the_whole_lineage(ledger, build_experiment):
    ids = build_experiment(ledger)
    other = ledger.create_experiment("another", user="local")
    ledger.create_run("sft", "m", "elsewhere", experiment_id=other, user="local")

    tree = ledger.experiment_tree(ids["experiment"], user="local")

    assert tree["experiment"]["goal"] == "improve tiny on tiny_sentiment"
    assert [d["id"] for d in tree["datasets"]] == [ids["dataset"]]
    assert tree["datasets"][0]["transform"] == {"from": "alpaca", "to": "prompt-completion"}
    assert [b["value"] for b in tree["baselines"]] == [0.5]
    [root] = tree["runs"]
    assert root["id"] == ids["first"] and root["config"]["max_steps"] == 15 and "config_json" not in root
    assert root["duration_s"] == 14.0 and root["dataset_id"] == ids["dataset"]
    assert [e["value"] for e in root["evals"]] == [0.5]
    child, failed = root["children"]
    assert (child["id"], child["parent_run_id"], child["change"]) == (ids["child"], ids["first"], "max_steps 15 → 150")
    assert [e["value"] for e in child["evals"]] == [0.71, 1.0]
    assert child["evals"][1]["details"] == {"max_samples": 5}
    assert failed["status"] == "failed" and failed["children"] == []
    assert [depth for depth, _ in walk_runs(tree)] == [0, 1, 1]
    assert [n["id"] for n in runs_in_order(tree)] == [ids["first"], ids["child"], ids["failed"]]
    assert ledger.experiment_tree(999, user="local") is None


def test_best_eval_skips_smoke_checks_and_follows_the_direction(ledger, build_experiment):
    ids = build_experiment(ledger)
    assert ledger.best_eval(ids["experiment"], "tiny_sentiment", user="local")["value"] == 0.71
    assert ledger.best_eval(ids["experiment"], "tiny_sentiment", lower_is_better=True, user="local")["value"] == 0.5
    assert ledger.experiment_cost(ids["experiment"], user="local") == 0.25
    [row] = [r for r in ledger.experiments_table(user="local") if r["id"] == ids["experiment"]]
    assert (row["best"], row["target"], row["cost_usd"]) == (0.71, "tiny_sentiment>=0.6", 0.25)


def test_best_counts_only_full_evals_of_trained_checkpoints(ledger, build_experiment):
    ids = build_experiment(ledger)
    ledger.record_eval("/somewhere", "tiny_sentiment", "acc", 0.9, experiment_id=ids["experiment"],
                       user="local")  # no run
    evals = ledger.experiment_tree(ids["experiment"], user="local")["evals"]
    # not the max_samples smoke check (1.0), the eval without a run (0.9) or the baseline
    assert (best(evals, "tiny_sentiment")["value"], best(evals, "tiny_sentiment")["run_id"]) == (0.71, ids["child"])
    assert best(evals, "tiny_sentiment", lower_is_better=True)["run_id"] == ids["first"]
    assert best(evals, "other") is None and best(evals, None) is None


def test_judged_tasks_are_the_targets_tasks_else_the_primary_task(ledger, build_experiment):
    ids = build_experiment(ledger)
    assert judged_tasks(ledger.experiment_tree(ids["experiment"], user="local")) == [("tiny_sentiment", False)]
    ledger.update_experiment(ids["experiment"], target="loss<=1.2, Tiny_Sentiment>0.6")
    tree = ledger.experiment_tree(ids["experiment"], user="local")
    assert judged_tasks(tree) == [("loss", True), ("Tiny_Sentiment", False)]
    ledger.update_experiment(ids["experiment"], target=None)
    assert judged_tasks(ledger.experiment_tree(ids["experiment"], user="local")) == [("tiny_sentiment", False)]
    looking = ledger.create_experiment("look only", user="local")
    assert judged_tasks(ledger.experiment_tree(looking, user="local")) == [(None, False)]


def test_render_tree_shows_parents_changes_and_scores(ledger, build_experiment):
    ids = build_experiment(ledger)
    text = render_tree(ledger.experiment_tree(ids["experiment"], user="local"))
    lines = text.splitlines()
    assert lines[0] == (f"experiment {ids['experiment']}: improve tiny on tiny_sentiment  [open]  "
                        "target tiny_sentiment>=0.6")
    assert "  baseline  tiny_sentiment acc 0.500 ± 0.046 (n=120)  model tiny" in lines
    assert any(line.startswith(f"  dataset {ids['dataset']}  /data/ds1 (prompt-completion, 360 rows)  ← raw/reviews")
               for line in lines)
    child = next(line for line in lines if f"run {ids['child']}" in line)
    assert child.startswith(f"    └─ run {ids['child']} (child of run {ids['first']}: max_steps 15 → 150)  "
                            "sft [completed]")
    assert "max_steps 150" in child and "60 s" in child and "$0.25" in child
    # a child without a recorded change shows what differs in its config
    assert f"(child of run {ids['first']}: learning_rate 0.003 → 0.1)" in text and "error: loss is nan" in text
    assert "eval 3  tiny_sentiment acc 0.710 ± 0.042 (n=120)  Δ +0.210" in text
    assert "(max_samples: not comparable)" in text


def test_evaluation_runs_hang_off_the_run_they_scored_and_are_no_iterations(ledger, build_experiment):
    ids = build_experiment(ledger)
    exp = ids["experiment"]
    baseline = ledger.create_run("lighteval", "tiny", "tiny_sentiment|0", experiment_id=exp, kind="eval",
                                 status="completed", job_id="hf-8", backend="hf-jobs", started_at=10.0,
                                 finished_at=50.0, cost_usd=0.01, user="local")
    scored = ledger.create_run("lighteval", "/ckpt/2", "tiny_sentiment|0", experiment_id=exp, kind="eval",
                               parent_run_id=ids["child"], status="running", job_id="hf-9", backend="hf-jobs",
                               user="local")
    tree = ledger.experiment_tree(exp, user="local")

    assert [r["id"] for r in tree["eval_runs"]] == [baseline, scored]
    [root] = tree["runs"]
    child = next(node for node in root["children"] if node["id"] == ids["child"])
    assert [r["id"] for r in child["eval_runs"]] == [scored] and root["eval_runs"] == []
    assert [n["id"] for n in runs_in_order(tree)] == [ids["first"], ids["child"], ids["failed"]]
    assert [p["iteration"] for p in score_series(tree)] == [1, 2]
    lines = render_tree(tree).splitlines()
    assert (f"  eval run {baseline}  tiny_sentiment|0 [completed] · 40 s · $0.01  job hf-8 on hf-jobs  "
            "model tiny") in lines  # a baseline's evaluation job scored no training run
    assert f"{' ' * 9}eval run {scored}  tiny_sentiment|0 [running] · - · -  job hf-9 on hf-jobs" in lines
    assert ledger.experiment_cost(exp, user="local") == pytest.approx(0.26)  # the evaluation job's cost counts
    [row] = [r for r in ledger.experiments_table(user="local") if r["id"] == exp]
    assert row["runs"] == 3  # training runs only


def test_score_series_is_in_run_order_without_smoke_checks(ledger, build_experiment):
    ids = build_experiment(ledger)
    series = score_series(ledger.experiment_tree(ids["experiment"], user="local"))
    assert [(p["iteration"], p["run_id"], p["score"]) for p in series] == [(1, ids["first"], 0.5),
                                                                          (2, ids["child"], 0.71)]
    ledger.update_experiment(ids["experiment"], target="loss<=1.2")
    ledger.record_eval("/ckpt/2", "loss", "loss", 1.1, experiment_id=ids["experiment"], run_id=ids["child"],
                       user="local")
    series = score_series(ledger.experiment_tree(ids["experiment"], user="local"))  # the judged task is the target's
    assert [(p["run_id"], p["score"]) for p in series] == [(ids["child"], 1.1)]


def test_hyperparameters_and_config_diff():
    config = {"model": "m", "dataset": "d", "output_dir": "x", "method": "sft", "learning_rate": 0.003,
              "max_steps": 15, "per_device_train_batch_size": 16, "lora": False, "lora_r": 16}
    assert hyperparameters(config) == "lr 0.003, max_steps 15, batch 16"
    assert hyperparameters({**config, "lora": True}) == "lr 0.003, max_steps 15, batch 16, lora, lora_r 16"
    assert config_diff(config, {**config, "max_steps": 150, "output_dir": "y"}) == "max_steps 15 → 150"
