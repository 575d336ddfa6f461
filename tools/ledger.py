"""The experiment ledger: one SQLite file holding sessions, events, experiments, runs, evals and spend.

Tools write it; the app and the CLI read it. Ledgers on the same file in a process share its connections
(tools/ledger_connection.py: one per thread, kept open), so one Ledger serves the agent's worker threads and the
UI at once, and other processes (CLI, job watchers) open the same file. `record_event` returns at once: a writer
thread commits events in batches (within 0.1 s), and reading events in this process commits the waiting ones
first; `flush()` commits them now, and `close()` (or the Ledger's end) commits them and closes the connections.

Every session, experiment, dataset, run and eval belongs to a user (its `owner`: the signed-in Hugging Face
username on a Space, `LOCAL_USER` for the one local user; rows written before owners existed belong to
`LOCAL_USER`). Every create and record takes `user=`, and so does every read: a read sees only that user's rows,
so another user's id reads as an unknown one. Updates and metric writes go by an id the caller read under its
user.
"""

from __future__ import annotations

import json
import re
import time
import uuid
import weakref
from pathlib import Path
from typing import Any

from tools import ledger_connection
from tools.lineage import baseline_of, best, judged_tasks

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    title TEXT,
    config_json TEXT,
    owner TEXT NOT NULL DEFAULT 'local'
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    payload_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS experiments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    session_id TEXT,
    goal TEXT NOT NULL,
    base_model TEXT,
    task TEXT,
    target TEXT,
    status TEXT NOT NULL DEFAULT 'open',
    report TEXT,
    budget_json TEXT,
    stop_reason TEXT,
    finished_at REAL,
    owner TEXT NOT NULL DEFAULT 'local'
);
CREATE TABLE IF NOT EXISTS datasets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    experiment_id INTEGER REFERENCES experiments(id),
    source TEXT NOT NULL,
    path TEXT NOT NULL,
    format TEXT,
    rows INTEGER,
    transform_json TEXT,
    hub_id TEXT,
    owner TEXT NOT NULL DEFAULT 'local'
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    experiment_id INTEGER REFERENCES experiments(id),
    parent_run_id INTEGER REFERENCES runs(id),
    change TEXT,
    method TEXT NOT NULL,
    model TEXT NOT NULL,
    dataset TEXT NOT NULL,
    dataset_id INTEGER REFERENCES datasets(id),
    kind TEXT NOT NULL DEFAULT 'train',
    script_path TEXT,
    script_sha256 TEXT,
    config_json TEXT,
    backend TEXT,
    job_id TEXT,
    status TEXT NOT NULL DEFAULT 'created',
    output_dir TEXT,
    hardware TEXT,
    cost_usd REAL,
    started_at REAL,
    finished_at REAL,
    error TEXT,
    owner TEXT NOT NULL DEFAULT 'local'
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    step INTEGER,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    UNIQUE(run_id, step, name)
);
CREATE TABLE IF NOT EXISTS evals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    experiment_id INTEGER REFERENCES experiments(id),
    run_id INTEGER REFERENCES runs(id),
    model TEXT NOT NULL,
    checkpoint TEXT,
    task TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    stderr REAL,
    n_samples INTEGER,
    is_baseline INTEGER NOT NULL DEFAULT 0,
    command TEXT,
    details_json TEXT,
    owner TEXT NOT NULL DEFAULT 'local'
);
CREATE TABLE IF NOT EXISTS spend (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    session_id TEXT,
    experiment_id INTEGER,
    kind TEXT NOT NULL,
    usd REAL NOT NULL,
    job_id TEXT,
    detail_json TEXT,
    owner TEXT NOT NULL DEFAULT 'local'
);
CREATE INDEX IF NOT EXISTS spend_by_session ON spend(session_id);
CREATE INDEX IF NOT EXISTS spend_by_job ON spend(job_id);
CREATE TABLE IF NOT EXISTS agent_memory (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    turn INTEGER NOT NULL,
    kind TEXT NOT NULL,
    number INTEGER NOT NULL,
    step_json TEXT NOT NULL,
    UNIQUE(session_id, turn, kind, number)
);
"""

LOCAL_USER = "local"
# A Hugging Face username: letters, digits, '-', '_' and '.', starting with a letter or digit (so never '..').
USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
# Columns added after the first release: (table, column, type), added to older ledger files on open.
ADDED_COLUMNS = (("experiments", "budget_json", "TEXT"), ("experiments", "stop_reason", "TEXT"),
                 ("experiments", "finished_at", "REAL"), ("runs", "kind", "TEXT NOT NULL DEFAULT 'train'"),
                 *((table, "owner", f"TEXT NOT NULL DEFAULT '{LOCAL_USER}'")
                   for table in ("sessions", "experiments", "datasets", "runs", "evals")))
# What a run is: a training job, or an evaluation job (model: the checkpoint scored, dataset: the task spec,
# parent_run_id: the training run whose checkpoint it scored, config: the evaluation request).
RUN_KINDS = ("train", "eval")
# What a spend row is: an LLM call, a job's cost once it ended (its run's kind), money held for a job before it is
# submitted, or a hold given back (the job ended, or was never submitted). Reserved = reserve - release.
SPEND_KINDS = ("llm", "train", "eval", "reserve", "release")
EXPERIMENT_FIELDS = {"status", "report", "base_model", "task", "target", "goal", "budget_json", "stop_reason",
                     "finished_at"}
RUN_FIELDS = {"status", "job_id", "backend", "output_dir", "hardware", "cost_usd", "started_at", "finished_at",
              "error", "script_path", "script_sha256", "config_json", "change", "parent_run_id", "dataset_id"}


def checked_user(user: str) -> str:
    """`user` when it is a valid username (`USERNAME`), safe as an owner and as a path segment; else ValueError."""
    if not isinstance(user, str) or not USERNAME.fullmatch(user):
        raise ValueError(f"invalid user name {user!r}: a Hugging Face username has letters, digits, '-', '_' "
                         "and '.', and starts with a letter or digit")
    return user


class Ledger:
    """Read and write the experiment record in `<data_dir>/ledger.sqlite`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._shared = ledger_connection.acquire(self.path)
        self._release = weakref.finalize(self, ledger_connection.release, self._shared)
        with self._connect() as db:
            db.executescript(SCHEMA)
            for table, column, kind in ADDED_COLUMNS:
                if column not in {row["name"] for row in db.execute(f"PRAGMA table_info({table})")}:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    @classmethod
    def in_dir(cls, data_dir: str | Path) -> Ledger:
        return cls(Path(data_dir) / "ledger.sqlite")

    def _connect(self):
        """This thread's connection inside one transaction (`with self._connect() as db:`), committed at the end."""
        return self._shared.transaction()

    def flush(self) -> None:
        """Commit the events waiting for the writer thread now (so other processes see them)."""
        self._shared.flush()

    def close(self) -> None:
        """Commit the waiting events and let go of the connection (closed when no other Ledger in this process
        uses the file). The Ledger is unusable afterwards."""
        self._release()

    def _insert(self, table: str, values: dict[str, Any], user: str) -> int:
        values = {"created_at": time.time(), **values, "owner": checked_user(user)}
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        with self._connect() as db:
            cur = db.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", list(values.values()))
            return int(cur.lastrowid)

    def _rows(self, sql: str, params: tuple = ()) -> list[dict]:
        with self._connect() as db:
            return [dict(r) for r in db.execute(sql, params).fetchall()]

    def _one(self, sql: str, params: tuple = ()) -> dict | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    # sessions and events
    def create_session(self, title: str = "", config: dict | None = None, *, user: str) -> str:
        session_id = uuid.uuid4().hex[:12]
        self._insert("sessions", {"id": session_id, "title": title, "config_json": json.dumps(config or {})}, user)
        return session_id

    def record_event(self, session_id: str, kind: str, payload: dict) -> None:
        """Queue the event for the writer thread (committed within 0.1 s, or at the next read or `flush`)."""
        self._shared.add_event((session_id, time.time(), kind, json.dumps(payload, default=str)))

    def session_events(self, session_id: str, *, user: str) -> list[dict]:
        self.flush()  # the events recorded in this process so far, committed
        rows = self._rows("SELECT * FROM events WHERE session_id = (SELECT id FROM sessions WHERE id = ? AND "
                          "owner = ?) ORDER BY id", (session_id, user))
        for row in rows:
            row["payload"] = json.loads(row.pop("payload_json"))
        return rows

    def list_sessions(self, *, user: str) -> list[dict]:
        return self._rows("SELECT * FROM sessions WHERE owner = ? ORDER BY created_at DESC", (user,))

    def get_session(self, session_id: str, *, user: str) -> dict | None:
        return self._one("SELECT * FROM sessions WHERE id = ? AND owner = ?", (session_id, user))

    # agent memory (agent/persistence.py): one row per smolagents step, replaced when the same step is written again
    def record_memory_step(self, session_id: str, turn: int, kind: str, number: int, step: dict) -> None:
        """Write one step of a session's agent memory now (not queued: it must survive a `kill -9`)."""
        with self._connect() as db:
            db.execute("INSERT OR REPLACE INTO agent_memory (session_id, turn, kind, number, step_json) "
                       "VALUES (?, ?, ?, ?, ?)", (session_id, turn, kind, number, json.dumps(step, default=str)))

    def memory_steps(self, session_id: str, *, user: str) -> list[dict]:
        """The session's memory rows {"turn", "kind", "number", "step"} by turn and number, if `user` owns it."""
        rows = self._rows("SELECT turn, kind, number, step_json FROM agent_memory WHERE session_id = (SELECT id FROM "
                          "sessions WHERE id = ? AND owner = ?) ORDER BY turn, number, rowid", (session_id, user))
        for row in rows:
            row["step"] = json.loads(row.pop("step_json"))
        return rows

    # experiments
    def create_experiment(self, goal: str, base_model: str | None = None, task: str | None = None,
                          target: str | None = None, session_id: str | None = None, *, user: str) -> int:
        return self._insert("experiments", dict(goal=goal, base_model=base_model, task=task,
                                                target=target, session_id=session_id), user)

    def get_experiment(self, experiment_id: int, *, user: str) -> dict | None:
        return self._one("SELECT * FROM experiments WHERE id = ? AND owner = ?", (experiment_id, user))

    def update_experiment(self, experiment_id: int, **fields) -> None:
        self._update("experiments", experiment_id, fields, EXPERIMENT_FIELDS)

    def list_experiments(self, *, user: str) -> list[dict]:
        return self._rows("SELECT * FROM experiments WHERE owner = ? ORDER BY id DESC", (user,))

    # datasets
    def record_dataset(self, source: str, path: str, format: str | None = None,
                       rows: int | None = None, transform: dict | None = None,
                       experiment_id: int | None = None, hub_id: str | None = None, *, user: str) -> int:
        return self._insert("datasets", dict(
            source=source, path=path, format=format, rows=rows, hub_id=hub_id,
            transform_json=json.dumps(transform) if transform is not None else None,
            experiment_id=experiment_id), user)

    def get_dataset(self, dataset_id: int, *, user: str) -> dict | None:
        return self._one("SELECT * FROM datasets WHERE id = ? AND owner = ?", (dataset_id, user))

    def find_dataset_by_path(self, path: str, *, user: str) -> dict | None:
        return self._one("SELECT * FROM datasets WHERE path = ? AND owner = ? ORDER BY id DESC", (path, user))

    # runs
    def create_run(self, method: str, model: str, dataset: str, experiment_id: int | None = None,
                   config: dict | None = None, kind: str = "train", *, user: str, **fields) -> int:
        unknown = set(fields) - RUN_FIELDS
        if unknown:
            raise ValueError(f"unknown run fields: {sorted(unknown)}")
        if kind not in RUN_KINDS:
            raise ValueError(f"unknown run kind {kind!r}; one of {RUN_KINDS}")
        if config is not None:
            fields["config_json"] = json.dumps(config, default=str)
        return self._insert("runs", dict(method=method, model=model, dataset=dataset,
                                         experiment_id=experiment_id, kind=kind, **fields), user)

    def update_run(self, run_id: int, **fields) -> None:
        self._update("runs", run_id, fields, RUN_FIELDS)

    def get_run(self, run_id: int, *, user: str) -> dict | None:
        return self._one("SELECT * FROM runs WHERE id = ? AND owner = ?", (run_id, user))

    def run_by_job(self, job_id: str, *, user: str) -> dict | None:
        return self._one("SELECT * FROM runs WHERE job_id = ? AND owner = ? ORDER BY id DESC", (job_id, user))

    def runs_for(self, experiment_id: int, kind: str | None = None, *, user: str) -> list[dict]:
        """The experiment's runs in order: all of them, or only those of one kind ("train", "eval")."""
        if kind:
            return self._rows("SELECT * FROM runs WHERE experiment_id = ? AND kind = ? AND owner = ? ORDER BY id",
                              (experiment_id, kind, user))
        return self._rows("SELECT * FROM runs WHERE experiment_id = ? AND owner = ? ORDER BY id",
                          (experiment_id, user))

    def list_runs(self, status: str | None = None, *, user: str) -> list[dict]:
        if status:
            return self._rows("SELECT * FROM runs WHERE status = ? AND owner = ? ORDER BY id", (status, user))
        return self._rows("SELECT * FROM runs WHERE owner = ? ORDER BY id", (user,))

    # metrics
    def record_metrics(self, run_id: int, points: list[tuple[int | None, str, float]]) -> None:
        with self._connect() as db:
            db.executemany(
                "INSERT OR REPLACE INTO metrics (run_id, step, name, value) VALUES (?, ?, ?, ?)",
                [(run_id, step, name, float(value)) for step, name, value in points],
            )

    def metric_series(self, run_id: int, name: str | None = None, *, user: str) -> dict[str, list[tuple[int, float]]]:
        sql = "SELECT step, name, value FROM metrics WHERE run_id = (SELECT id FROM runs WHERE id = ? AND owner = ?)"
        params: tuple = (run_id, user)
        if name:
            sql += " AND name = ?"
            params += (name,)
        series: dict[str, list[tuple[int, float]]] = {}
        for row in self._rows(sql + " ORDER BY step", params):
            series.setdefault(row["name"], []).append((row["step"], row["value"]))
        return series

    # evals
    def record_eval(self, model: str, task: str, metric: str, value: float,
                    stderr: float | None = None, is_baseline: bool = False,
                    experiment_id: int | None = None, run_id: int | None = None,
                    checkpoint: str | None = None, n_samples: int | None = None,
                    command: str | None = None, details: dict | None = None, *, user: str) -> int:
        return self._insert("evals", dict(
            model=model, task=task, metric=metric, value=float(value), stderr=stderr,
            is_baseline=int(bool(is_baseline)), experiment_id=experiment_id, run_id=run_id,
            checkpoint=checkpoint, n_samples=n_samples, command=command,
            details_json=json.dumps(details, default=str) if details is not None else None), user)

    def evals_for(self, experiment_id: int, *, user: str) -> list[dict]:
        return self._rows("SELECT * FROM evals WHERE experiment_id = ? AND owner = ? ORDER BY id",
                          (experiment_id, user))

    def list_evals(self, *, user: str) -> list[dict]:
        return self._rows("SELECT * FROM evals WHERE owner = ? ORDER BY id", (user,))

    def baseline_for(self, experiment_id: int, task: str, metric: str | None = None, *, user: str) -> dict | None:
        sql = "SELECT * FROM evals WHERE experiment_id = ? AND task = ? AND is_baseline = 1 AND owner = ?"
        params: tuple = (experiment_id, task, user)
        if metric:
            sql += " AND metric = ?"
            params += (metric,)
        return self._one(sql + " ORDER BY id DESC", params)

    def best_eval(self, experiment_id: int, task: str, lower_is_better: bool = False, *, user: str) -> dict | None:
        """The experiment's best trained score on `task` (`tools.lineage.best`), or None."""
        return best(self.evals_for(experiment_id, user=user), task, lower_is_better)

    def experiment_cost(self, experiment_id: int, *, user: str) -> float:
        """Dollars spent by the experiment's training and evaluation runs (runs without a known cost count 0)."""
        row = self._one("SELECT COALESCE(SUM(cost_usd), 0) AS spent FROM runs WHERE experiment_id = ? AND owner = ?",
                        (experiment_id, user))
        return float(row["spent"])

    # spend (tools/spend.py, agent/target.py): what a session paid or holds, row by row
    def record_spend(self, session_id: str | None, experiment_id: int | None, kind: str, usd: float,
                     detail: dict | None = None, *, user: str) -> int:
        """One spend row (`SPEND_KINDS`); `detail["job_id"]` names the job it is for, when it is for one."""
        if kind not in SPEND_KINDS:
            raise ValueError(f"unknown spend kind {kind!r}; one of {SPEND_KINDS}")
        usd = float(usd)
        if not usd >= 0 or usd == float("inf"):
            raise ValueError(f"a spend amount is a finite number of dollars >= 0, got {usd}")
        detail = dict(detail or {})
        return self._insert("spend", dict(session_id=session_id, experiment_id=experiment_id, kind=kind, usd=usd,
                                          job_id=detail.get("job_id"), detail_json=json.dumps(detail, default=str)),
                            user)

    def link_spend(self, spend_id: int, job_id: str) -> None:
        """Name the job a reservation was held for, once the job is submitted and has an id."""
        with self._connect() as db:
            db.execute("UPDATE spend SET job_id = ? WHERE id = ?", (job_id, spend_id))

    def session_spend(self, session_id: str | None, *, user: str) -> dict:
        """{"llm_usd", "jobs_usd", "reserved_usd" (held for jobs not yet ended), "total_usd", "unpriced_calls"
        (LLM calls whose price is unknown)} of one of the user's sessions (None: the rows recorded outside one)."""
        return self._spend("session_id IS ?", (session_id,), "experiment_id IN (SELECT id FROM experiments WHERE "
                           "session_id IS ? AND owner = ?)", (session_id, user), user)

    def experiment_spend(self, experiment_id: int, *, user: str) -> dict:
        """`session_spend`'s figures for the rows recorded against one experiment."""
        return self._spend("experiment_id = ?", (experiment_id,), "experiment_id = ?", (experiment_id,), user)

    def job_spend(self, job_id: str, *, user: str) -> dict:
        """{"reserved_usd" (still held for the job), "settled": whether its cost is recorded}."""
        row = self._one("SELECT COALESCE(SUM(CASE kind WHEN 'reserve' THEN usd WHEN 'release' THEN -usd END), 0) AS "
                        "held, COUNT(CASE WHEN kind IN ('train', 'eval') THEN 1 END) AS settled FROM spend WHERE "
                        "job_id = ? AND owner = ?", (job_id, user))
        return {"reserved_usd": max(0.0, round(float(row["held"]), 9)), "settled": bool(row["settled"])}

    def _spend(self, rows_where: str, rows_scope: tuple, runs_where: str, runs_scope: tuple, user: str) -> dict:
        """Spend rows in scope, plus the recorded cost of runs in scope that have no spend row (older ledgers)."""
        row = self._one(
            "SELECT COALESCE(SUM(CASE WHEN kind = 'llm' THEN usd END), 0) AS llm, "
            "COALESCE(SUM(CASE WHEN kind IN ('train', 'eval') THEN usd END), 0) AS jobs, "
            "COALESCE(SUM(CASE kind WHEN 'reserve' THEN usd WHEN 'release' THEN -usd END), 0) AS held, "
            "COUNT(CASE WHEN kind = 'llm' AND json_extract(detail_json, '$.unpriced') THEN 1 END) AS unpriced "
            f"FROM spend WHERE {rows_where} AND owner = ?", (*rows_scope, user))
        legacy = self._one(
            f"SELECT COALESCE(SUM(cost_usd), 0) AS jobs FROM runs r WHERE {runs_where} AND owner = ? AND cost_usd IS "
            "NOT NULL AND NOT EXISTS (SELECT 1 FROM spend s WHERE s.job_id = r.job_id AND s.owner = r.owner AND "
            "s.kind IN ('train', 'eval'))", (*runs_scope, user))
        llm, jobs = float(row["llm"]), float(row["jobs"]) + float(legacy["jobs"])
        held = max(0.0, round(float(row["held"]), 9))
        return {"llm_usd": llm, "jobs_usd": jobs, "reserved_usd": held, "total_usd": llm + jobs + held,
                "unpriced_calls": int(row["unpriced"])}

    def experiment_tree(self, experiment_id: int, *, user: str) -> dict | None:
        """The whole lineage of an experiment, read in one transaction; None when the user has no such experiment.

        {"experiment": row (+ "budget"), "datasets": rows (+ "transform"), "baselines": evals,
         "evals": all evals in order, "runs": the root training runs, "eval_runs": the evaluation runs in
        order}. Each training run node is its row plus "config", "duration_s", "dataset_id" (recorded, else
        matched by path), "evals" (of its checkpoint), "eval_runs" (the evaluation jobs that scored its
        checkpoint) and "children" (the training runs recorded with this one as parent_run_id, each carrying
        its "change"). An evaluation run node is its row plus "config" and "duration_s".
        """
        with self._connect() as db:
            def fetch(sql: str) -> list[dict]:
                return [dict(r) for r in db.execute(sql, {"id": experiment_id, "user": user}).fetchall()]

            db.execute("BEGIN")  # one snapshot for all four reads
            found = fetch("SELECT * FROM experiments WHERE id = :id AND owner = :user")
            if not found:
                return None
            runs = fetch("SELECT * FROM runs WHERE experiment_id = :id AND owner = :user ORDER BY id")
            evals = fetch("SELECT * FROM evals WHERE experiment_id = :id AND owner = :user ORDER BY id")
            datasets = fetch("SELECT * FROM datasets WHERE owner = :user AND (experiment_id = :id OR id IN (SELECT "
                             "dataset_id FROM runs WHERE experiment_id = :id) OR path IN (SELECT dataset FROM runs "
                             "WHERE experiment_id = :id)) ORDER BY id")
        experiment = found[0]
        experiment["budget"] = _loads(experiment.pop("budget_json"))
        for row in datasets:
            row["transform"] = _loads(row.pop("transform_json"))
        for row in evals:
            row["details"] = _loads(row.pop("details_json"))
        by_path = {d["path"]: d["id"] for d in datasets}
        for run in runs:
            started, finished = run["started_at"], run["finished_at"]
            run["config"] = _loads(run.pop("config_json")) or {}
            run["duration_s"] = finished - started if started and finished else None
        eval_runs = [run for run in runs if run["kind"] == "eval"]
        nodes = {}
        for run in runs:
            if run["kind"] == "train":
                nodes[run["id"]] = {**run, "dataset_id": run["dataset_id"] or by_path.get(run["dataset"]),
                                    "evals": [e for e in evals if e["run_id"] == run["id"]],
                                    "eval_runs": [r for r in eval_runs if r["parent_run_id"] == run["id"]],
                                    "children": []}
        roots = []
        for node in nodes.values():
            parent = nodes.get(node["parent_run_id"])
            (parent["children"] if parent else roots).append(node)
        return {"experiment": experiment, "datasets": datasets, "runs": roots, "evals": evals,
                "baselines": [e for e in evals if e["is_baseline"]], "eval_runs": eval_runs}

    def experiments_table(self, *, user: str) -> list[dict]:
        """One row per experiment for the UI and CLI. "task" is its first judged task (`tools.lineage.judged_tasks`:
        the first target's task, else the primary task); "baseline" and "best" are the latest baseline and the
        best trained score on that task, in the target's direction."""
        rows = []
        for exp in self.list_experiments(user=user):
            evals = self.evals_for(exp["id"], user=user)
            scores = {"experiment": exp, "evals": evals, "baselines": [e for e in evals if e["is_baseline"]]}
            task, lower_is_better = judged_tasks(scores)[0]
            base, top = baseline_of(scores, task), best(evals, task, lower_is_better)
            rows.append({
                "id": exp["id"], "goal": exp["goal"], "base_model": exp["base_model"], "status": exp["status"],
                "target": exp["target"], "runs": len(self.runs_for(exp["id"], kind="train", user=user)),
                "baseline": base["value"] if base else None, "best": top["value"] if top else None, "task": task,
                "cost_usd": self.experiment_cost(exp["id"], user=user)})
        return rows

    def _update(self, table: str, row_id: int, fields: dict, allowed: set[str]) -> None:
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown {table} fields: {sorted(unknown)}")
        if not fields:
            return
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._connect() as db:
            db.execute(f"UPDATE {table} SET {sets} WHERE id = ?", [*fields.values(), row_id])


def _loads(text: str | None):
    return json.loads(text) if text else None

