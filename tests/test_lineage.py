"""The experiment tree in one ledger call, and how it is walked, rendered and plotted."""

from __future__ import annotations

from tools.ledger import Ledger
from tools.lineage import config_diff, hyperparameters, render_tree, runs_in_order, score_series, walk_runs

CONFIG = {"model": "m", "dataset": "d", "output_dir": "x", "method": "sft", "learning_rate": 0.003,
          "max_steps": 15, "per_device_train_batch_size": 16, "lora": False, "lora_r": 16}


def build_experiment(ledger: Ledger, checkpoint: str = "/ckpt/2") -> dict:
    """An experiment as the tools record it: a reformatted dataset, a baseline, a short first run, a child
    run that changed one thing, a sibling that failed, and their evals (one a max_samples smoke check)."""
    exp = ledger.create_experiment("improve tiny on tiny_sentiment", base_model="tiny", target="tiny_sentiment>=0.6")
    data = ledger.record_dataset("raw/reviews", "/data/ds1", format="prompt-completion", rows=360,
                                 transform={"from": "alpaca", "to": "prompt-completion"}, experiment_id=exp)
    ledger.record_eval("tiny", "tiny_sentiment", "acc", 0.5, stderr=0.046, n_samples=120, is_baseline=True,
                       experiment_id=exp, command="python -m evals.runner --model tiny --task tiny_sentiment")
    first = ledger.create_run("sft", "tiny", "/data/ds1", experiment_id=exp, config=CONFIG, status="completed",
                              started_at=100.0, finished_at=114.0, job_id="local-1", backend="local",
                              script_path="/runs/1/train.py", script_sha256="a" * 64, output_dir="/ckpt/1")
    ledger.record_eval("/ckpt/1", "tiny_sentiment", "acc", 0.5, stderr=0.046, n_samples=120,
                       experiment_id=exp, run_id=first)
    child = ledger.create_run("sft", "tiny", "/data/ds1", experiment_id=exp, parent_run_id=first,
                              change="max_steps 15 → 150", config={**CONFIG, "max_steps": 150},
                              status="completed", started_at=200.0, finished_at=260.0, job_id="local-2",
                              backend="local", script_path="/runs/2/train.py", script_sha256="b" * 64,
                              output_dir=checkpoint, cost_usd=0.25)
    ledger.record_eval(checkpoint, "tiny_sentiment", "acc", 0.71, stderr=0.042, n_samples=120, experiment_id=exp,
                       run_id=child, command=f"python -m evals.runner --model {checkpoint} --task tiny_sentiment")
    ledger.record_eval(checkpoint, "tiny_sentiment", "acc", 1.0, n_samples=5, experiment_id=exp, run_id=child,
                       details={"max_samples": 5})
    failed = ledger.create_run("sft", "tiny", "/data/ds1", experiment_id=exp, parent_run_id=first,
                               config={**CONFIG, "learning_rate": 0.1}, status="failed", error="loss is nan")
    return {"experiment": exp, "dataset": data, "first": first, "child": child, "failed": failed}


def test_experiment_tree_holds_the_whole_lineage(ledger):
    ids = build_experiment(ledger)
    other = ledger.create_experiment("another")
    ledger.create_run("sft", "m", "elsewhere", experiment_id=other)

    tree = ledger.experiment_tree(ids["experiment"])

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
    assert ledger.experiment_tree(999) is None


def test_best_eval_skips_smoke_checks_and_follows_the_direction(ledger):
    ids = build_experiment(ledger)
    assert ledger.best_eval(ids["experiment"], "tiny_sentiment")["value"] == 0.71
    assert ledger.best_eval(ids["experiment"], "tiny_sentiment", lower_is_better=True)["value"] == 0.5
    assert ledger.experiment_cost(ids["experiment"]) == 0.25
    [row] = [r for r in ledger.experiments_table() if r["id"] == ids["experiment"]]
    assert (row["best"], row["target"], row["cost_usd"]) == (0.71, "tiny_sentiment>=0.6", 0.25)


def test_render_tree_shows_parents_changes_and_scores(ledger):
    ids = build_experiment(ledger)
    text = render_tree(ledger.experiment_tree(ids["experiment"]))
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


def test_score_series_is_in_run_order_without_smoke_checks(ledger):
    ids = build_experiment(ledger)
    series = score_series(ledger.experiment_tree(ids["experiment"]))
    assert [(p["iteration"], p["run_id"], p["score"]) for p in series] == [(1, ids["first"], 0.5),
                                                                          (2, ids["child"], 0.71)]


def test_hyperparameters_and_config_diff():
    assert hyperparameters(CONFIG) == "lr 0.003, max_steps 15, batch 16"
    assert hyperparameters({**CONFIG, "lora": True}) == "lr 0.003, max_steps 15, batch 16, lora, lora_r 16"
    assert config_diff(CONFIG, {**CONFIG, "max_steps": 150, "output_dir": "y"}) == "max_steps 15 → 150"
