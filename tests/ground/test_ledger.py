import json
import sqlite3
import threading

import pytest

from tools.ledger import LOCAL_USER, SCHEMA, Ledger, checked_user


def test_experiment_runs_and_evals_round_trip(ledger):
    exp = ledger.create_experiment("improve tiny on sentiment", base_model="tiny", task="tiny_sentiment", user="local")
    run = ledger.create_run("sft", "tiny", "train.jsonl", experiment_id=exp, config={"lr": 3e-3}, user="local")
    ledger.update_run(run, status="running", job_id="job-1", backend="local")
    ledger.record_eval("tiny", "tiny_sentiment", "acc", 0.5, stderr=0.05, is_baseline=True,
                       experiment_id=exp, n_samples=120, user="local")
    ledger.record_eval("ckpt", "tiny_sentiment", "acc", 0.9, stderr=0.03, experiment_id=exp, run_id=run, user="local")
    ledger.record_eval("ckpt2", "tiny_sentiment", "acc", 0.8, experiment_id=exp, run_id=run, user="local")

    assert ledger.run_by_job("job-1", user="local")["id"] == run
    assert ledger.get_run(run, user="local")["status"] == "running"
    assert ledger.baseline_for(exp, "tiny_sentiment", user="local")["value"] == 0.5
    [row] = ledger.experiments_table(user="local")
    assert (row["baseline"], row["best"], row["runs"]) == (0.5, 0.9, 1)


def test_experiments_table_reports_the_targets_task_in_its_direction(ledger):
    exp = ledger.create_experiment("lower the loss", task="tiny_sentiment", target="loss<=1.2", user="local")
    run = ledger.create_run("sft", "tiny", "train.jsonl", experiment_id=exp, user="local")
    ledger.record_eval("tiny", "tiny_sentiment", "acc", 0.5, is_baseline=True, experiment_id=exp, user="local")
    ledger.record_eval("tiny", "loss", "loss", 2.0, is_baseline=True, experiment_id=exp, user="local")
    for value in (0.9, 0.8):
        ledger.record_eval("ckpt", "tiny_sentiment", "acc", value, experiment_id=exp, run_id=run, user="local")
    for value in (1.4, 1.1, 1.3):
        ledger.record_eval("ckpt", "loss", "loss", value, experiment_id=exp, run_id=run, user="local")
    ledger.record_eval("ckpt", "loss", "loss", 0.2, experiment_id=exp, run_id=run, details={"max_samples": 5},
                       user="local")

    [row] = ledger.experiments_table(user="local")
    # the target's task and its minimum, not the max over both tasks nor the smoke check
    assert (row["task"], row["baseline"], row["best"]) == ("loss", 2.0, 1.1)
    assert ledger.best_eval(exp, "loss", lower_is_better=True, user="local")["value"] == 1.1


def test_experiments_table_finds_evals_of_a_target_written_another_way(ledger):
    exp = ledger.create_experiment("math", target="GSM-8K>=0.6", user="local")
    run = ledger.create_run("sft", "m", "d", experiment_id=exp, user="local")
    ledger.record_eval("m", "gsm8k", "extractive_match", 0.4, is_baseline=True, experiment_id=exp, user="local")
    ledger.record_eval("ckpt", "gsm8k", "extractive_match", 0.62, experiment_id=exp, run_id=run, user="local")
    ledger.record_eval("ckpt", "ifeval", "prompt_level_strict_acc", 0.9, experiment_id=exp, run_id=run, user="local")
    [row] = ledger.experiments_table(user="local")
    assert (row["task"], row["baseline"], row["best"]) == ("gsm8k", 0.4, 0.62)


def test_unknown_fields_are_refused(ledger):
    run = ledger.create_run("sft", "m", "d", user="local")
    with pytest.raises(ValueError, match="unknown runs fields"):
        ledger.update_run(run, colour="red")
    with pytest.raises(ValueError, match="unknown run fields"):
        ledger.create_run("sft", "m", "d", colour="red", user="local")


def test_metric_series_are_ordered_and_upserted(ledger):
    run = ledger.create_run("sft", "m", "d", user="local")
    ledger.record_metrics(run, [(2, "loss", 1.0), (1, "loss", 2.0), (1, "learning_rate", 0.1)])
    ledger.record_metrics(run, [(2, "loss", 0.9)])
    assert ledger.metric_series(run, "loss", user="local") == {"loss": [(1, 2.0), (2, 0.9)]}
    assert set(ledger.metric_series(run, user="local")) == {"loss", "learning_rate"}


def test_events_persist_per_session_and_survive_reopening(data_dir):
    ledger = Ledger.in_dir(data_dir)
    sid = ledger.create_session("t", {"backend": "scripted"}, user="local")
    ledger.record_event(sid, "thought", {"text": "hello"})
    reopened = Ledger.in_dir(data_dir)
    assert [e["payload"]["text"] for e in reopened.session_events(sid, user="local")] == ["hello"]


def test_concurrent_writers_do_not_lose_rows(ledger):
    sid = ledger.create_session(user="local")

    def write(n):
        for i in range(20):
            ledger.record_event(sid, "thought", {"n": n, "i": i})

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ledger.session_events(sid, user="local")) == 80


def test_old_ledger_files_gain_the_new_columns(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE experiments (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, "
                   "session_id TEXT, goal TEXT NOT NULL, base_model TEXT, task TEXT, target TEXT, "
                   "status TEXT NOT NULL DEFAULT 'open', report TEXT)")
        db.execute("INSERT INTO experiments (created_at, goal) VALUES (1, 'old goal')")
    ledger = Ledger(path)
    ledger.update_experiment(1, stop_reason="why", budget_json=json.dumps({"usd": 5}), finished_at=2.0)
    assert ledger.experiment_tree(1, user="local")["experiment"]["budget"] == {"usd": 5}


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
    assert ledger.get_run(1, user="local")["kind"] == "train"  # runs written before evaluation runs existed trained
    scored = ledger.create_run("lighteval", "/ckpt", "tiny_sentiment|0", experiment_id=1, kind="eval",
                               parent_run_id=1, job_id="local-e", user="local")
    assert ledger.run_by_job("local-e", user="local")["kind"] == "eval"
    assert [r["id"] for r in ledger.runs_for(1, user="local")] == [1, scored]
    assert [r["id"] for r in ledger.runs_for(1, kind="train", user="local")] == [1]
    assert [r["id"] for r in ledger.runs_for(1, kind="eval", user="local")] == [scored]
    with pytest.raises(ValueError, match="unknown run kind 'test'"):
        ledger.create_run("sft", "m", "d", kind="test", user="local")


def test_every_read_sees_only_its_users_rows(ledger, build_experiment):
    ids = build_experiment(ledger, user="alice")
    exp, first = ids["experiment"], ids["first"]
    session = ledger.create_session("alice's chat", user="alice")
    ledger.record_event(session, "thought", {"text": "private"})
    ledger.record_metrics(first, [(1, "loss", 2.0)])
    reads = {
        "experiments_table": lambda user: ledger.experiments_table(user=user),
        "list_experiments": lambda user: ledger.list_experiments(user=user),
        "get_experiment": lambda user: ledger.get_experiment(exp, user=user),
        "experiment_tree": lambda user: ledger.experiment_tree(exp, user=user),
        "experiment_cost": lambda user: ledger.experiment_cost(exp, user=user),
        "get_run": lambda user: ledger.get_run(first, user=user),
        "run_by_job": lambda user: ledger.run_by_job("local-1", user=user),
        "runs_for": lambda user: ledger.runs_for(exp, user=user),
        "list_runs": lambda user: ledger.list_runs(user=user),
        "metric_series": lambda user: ledger.metric_series(first, user=user),
        "evals_for": lambda user: ledger.evals_for(exp, user=user),
        "list_evals": lambda user: ledger.list_evals(user=user),
        "baseline_for": lambda user: ledger.baseline_for(exp, "tiny_sentiment", user=user),
        "best_eval": lambda user: ledger.best_eval(exp, "tiny_sentiment", user=user),
        "get_dataset": lambda user: ledger.get_dataset(ids["dataset"], user=user),
        "find_dataset_by_path": lambda user: ledger.find_dataset_by_path("/data/ds1", user=user),
        "list_sessions": lambda user: ledger.list_sessions(user=user),
        "session_events": lambda user: ledger.session_events(session, user=user),
    }
    for name, read in reads.items():
        assert read("alice"), name
        assert not read("bob"), name
    tree = ledger.experiment_tree(exp, user="alice")
    assert tree["experiment"]["owner"] == "alice" and {d["owner"] for d in tree["datasets"]} == {"alice"}


def test_an_experiment_tree_leaves_out_another_users_dataset_at_the_same_path(ledger, build_experiment):
    ids = build_experiment(ledger, user="alice")
    ledger.record_dataset("bob/data", "/data/ds1", user="bob")
    assert [d["id"] for d in ledger.experiment_tree(ids["experiment"], user="alice")["datasets"]] == [ids["dataset"]]


def test_rows_written_before_owners_existed_belong_to_the_local_user(tmp_path):
    path = tmp_path / "old.sqlite"
    schema = SCHEMA.replace(",\n    owner TEXT NOT NULL DEFAULT 'local'", "")
    assert "owner" not in schema
    with sqlite3.connect(path) as db:
        db.executescript(schema)
        db.execute("INSERT INTO sessions (id, created_at, title) VALUES ('s1', 1, 'old chat')")
        db.execute("INSERT INTO experiments (created_at, session_id, goal) VALUES (1, 's1', 'old goal')")
        db.execute("INSERT INTO datasets (created_at, experiment_id, source, path) VALUES (1, 1, 'raw', '/d')")
        db.execute("INSERT INTO runs (created_at, experiment_id, method, model, dataset, job_id) "
                   "VALUES (1, 1, 'sft', 'm', '/d', 'local-old')")
        db.execute("INSERT INTO evals (created_at, experiment_id, model, task, metric, value, is_baseline) "
                   "VALUES (1, 1, 'm', 'tiny_sentiment', 'acc', 0.5, 1)")
    ledger = Ledger(path)
    tree = ledger.experiment_tree(1, user=LOCAL_USER)
    assert [row["owner"] for row in (tree["experiment"], *tree["datasets"], *tree["runs"], *tree["evals"])] == \
        [LOCAL_USER] * 4
    assert ledger.list_sessions(user=LOCAL_USER)[0]["owner"] == LOCAL_USER
    assert ledger.run_by_job("local-old", user=LOCAL_USER)["id"] == 1
    assert ledger.experiments_table(user="alice") == [] and ledger.run_by_job("local-old", user="alice") is None


def test_writes_refuse_a_user_name_that_is_not_a_hub_username(ledger):
    assert checked_user("Alice-1_b.c") == "Alice-1_b.c"
    for name in ("", "..", ".x", "a/b", "a b", None, "x" * 97):
        with pytest.raises(ValueError, match="invalid user name"):
            ledger.create_experiment("goal", user=name)
    assert ledger.list_experiments(user="..") == []
