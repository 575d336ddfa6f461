import json
import sqlite3
import threading

import pytest

from tools.ledger import Ledger


def test_experiment_runs_and_evals_round_trip(ledger):
    exp = ledger.create_experiment("improve tiny on sentiment", base_model="tiny", task="tiny_sentiment")
    run = ledger.create_run("sft", "tiny", "train.jsonl", experiment_id=exp, config={"lr": 3e-3})
    ledger.update_run(run, status="running", job_id="job-1", backend="local")
    ledger.record_eval("tiny", "tiny_sentiment", "acc", 0.5, stderr=0.05, is_baseline=True,
                       experiment_id=exp, n_samples=120)
    ledger.record_eval("ckpt", "tiny_sentiment", "acc", 0.9, stderr=0.03, experiment_id=exp, run_id=run)
    ledger.record_eval("ckpt2", "tiny_sentiment", "acc", 0.8, experiment_id=exp, run_id=run)

    assert ledger.run_by_job("job-1")["id"] == run
    assert ledger.get_run(run)["status"] == "running"
    assert ledger.baseline_for(exp, "tiny_sentiment")["value"] == 0.5
    [row] = ledger.experiments_table()
    assert (row["baseline"], row["best"], row["runs"]) == (0.5, 0.9, 1)


def test_experiments_table_reports_the_targets_task_in_its_direction(ledger):
    exp = ledger.create_experiment("lower the loss", task="tiny_sentiment", target="loss<=1.2")
    run = ledger.create_run("sft", "tiny", "train.jsonl", experiment_id=exp)
    ledger.record_eval("tiny", "tiny_sentiment", "acc", 0.5, is_baseline=True, experiment_id=exp)
    ledger.record_eval("tiny", "loss", "loss", 2.0, is_baseline=True, experiment_id=exp)
    for value in (0.9, 0.8):
        ledger.record_eval("ckpt", "tiny_sentiment", "acc", value, experiment_id=exp, run_id=run)
    for value in (1.4, 1.1, 1.3):
        ledger.record_eval("ckpt", "loss", "loss", value, experiment_id=exp, run_id=run)
    ledger.record_eval("ckpt", "loss", "loss", 0.2, experiment_id=exp, run_id=run, details={"max_samples": 5})

    [row] = ledger.experiments_table()
    # the target's task and its minimum, not the max over both tasks nor the smoke check
    assert (row["task"], row["baseline"], row["best"]) == ("loss", 2.0, 1.1)
    assert ledger.best_eval(exp, "loss", lower_is_better=True)["value"] == 1.1


def test_experiments_table_finds_evals_of_a_target_written_another_way(ledger):
    exp = ledger.create_experiment("math", target="GSM-8K>=0.6")
    run = ledger.create_run("sft", "m", "d", experiment_id=exp)
    ledger.record_eval("m", "gsm8k", "extractive_match", 0.4, is_baseline=True, experiment_id=exp)
    ledger.record_eval("ckpt", "gsm8k", "extractive_match", 0.62, experiment_id=exp, run_id=run)
    ledger.record_eval("ckpt", "ifeval", "prompt_level_strict_acc", 0.9, experiment_id=exp, run_id=run)
    [row] = ledger.experiments_table()
    assert (row["task"], row["baseline"], row["best"]) == ("gsm8k", 0.4, 0.62)


def test_unknown_fields_are_refused(ledger):
    run = ledger.create_run("sft", "m", "d")
    with pytest.raises(ValueError, match="unknown runs fields"):
        ledger.update_run(run, colour="red")
    with pytest.raises(ValueError, match="unknown run fields"):
        ledger.create_run("sft", "m", "d", colour="red")


def test_metric_series_are_ordered_and_upserted(ledger):
    run = ledger.create_run("sft", "m", "d")
    ledger.record_metrics(run, [(2, "loss", 1.0), (1, "loss", 2.0), (1, "learning_rate", 0.1)])
    ledger.record_metrics(run, [(2, "loss", 0.9)])
    assert ledger.metric_series(run, "loss") == {"loss": [(1, 2.0), (2, 0.9)]}
    assert set(ledger.metric_series(run)) == {"loss", "learning_rate"}


def test_events_persist_per_session_and_survive_reopening(data_dir):
    ledger = Ledger.in_dir(data_dir)
    sid = ledger.create_session("t", {"backend": "scripted"})
    ledger.record_event(sid, "thought", {"text": "hello"})
    reopened = Ledger.in_dir(data_dir)
    assert [e["payload"]["text"] for e in reopened.session_events(sid)] == ["hello"]


def test_concurrent_writers_do_not_lose_rows(ledger):
    sid = ledger.create_session()

    def write(n):
        for i in range(20):
            ledger.record_event(sid, "thought", {"n": n, "i": i})

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ledger.session_events(sid)) == 80


def test_old_ledger_files_gain_the_new_columns(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE experiments (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, "
                   "session_id TEXT, goal TEXT NOT NULL, base_model TEXT, task TEXT, target TEXT, "
                   "status TEXT NOT NULL DEFAULT 'open', report TEXT)")
        db.execute("INSERT INTO experiments (created_at, goal) VALUES (1, 'old goal')")
    ledger = Ledger(path)
    ledger.update_experiment(1, stop_reason="why", budget_json=json.dumps({"usd": 5}), finished_at=2.0)
    assert ledger.experiment_tree(1)["experiment"]["budget"] == {"usd": 5}


def test_old_runs_tables_gain_the_kind_column(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, "
                   "experiment_id INTEGER, parent_run_id INTEGER, change TEXT, method TEXT NOT NULL, "
                   "model TEXT NOT NULL, dataset TEXT NOT NULL, dataset_id INTEGER, script_path TEXT, "
                   "script_sha256 TEXT, config_json TEXT, backend TEXT, job_id TEXT, "
                   "status TEXT NOT NULL DEFAULT 'created', output_dir TEXT, hardware TEXT, cost_usd REAL, "
                   "started_at REAL, finished_at REAL, error TEXT)")
        db.execute("INSERT INTO runs (created_at, experiment_id, method, model, dataset) "
                   "VALUES (1, 1, 'sft', 'm', 'd')")
    ledger = Ledger(path)
    assert ledger.get_run(1)["kind"] == "train"  # runs written before evaluation runs existed trained
    scored = ledger.create_run("lighteval", "/ckpt", "tiny_sentiment|0", experiment_id=1, kind="eval",
                               parent_run_id=1, job_id="local-e")
    assert ledger.run_by_job("local-e")["kind"] == "eval"
    assert [r["id"] for r in ledger.runs_for(1)] == [1, scored]
    assert [r["id"] for r in ledger.runs_for(1, kind="train")] == [1]
    assert [r["id"] for r in ledger.runs_for(1, kind="eval")] == [scored]
    with pytest.raises(ValueError, match="unknown run kind 'test'"):
        ledger.create_run("sft", "m", "d", kind="test")
