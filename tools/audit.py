"""The audit file of a benchmark run (`<workdir>/audit.json`): what a judge needs to trust its final model.

    write_audit(ctx)          # after every final-model save and when the run ends

It lists, from the ledger and the files the tools wrote: each dataset's provenance and transformations (the
ledger's dataset records: source, rows, transform, decontamination), the decontamination check every training set
and the held-out split passed (`admission.json` of each run), every training run with its lineage, the evaluations,
each save_final_model attempt and the runs that led to the final model, and whether an LLM wrote training data.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from tools.context import ToolContext
from tools.run_rules import ADMISSION_FILE, FINAL_STATE_FILE

RUN_KEYS = ("id", "parent_run_id", "change", "method", "model", "dataset", "status", "job_id", "backend",
            "output_dir", "script_path", "script_sha256", "started_at", "finished_at", "error")


def _loads(text: str | None):
    return json.loads(text) if text else None


def _json_file(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def _datasets(ctx: ToolContext, experiment_id: int) -> list[dict]:
    rows = ctx.ledger.experiment_tree(experiment_id, user=ctx.user) or {}
    out = []
    for row in rows.get("datasets") or []:
        transform = row.get("transform") or _loads(row.get("transform_json"))
        out.append({"id": row["id"], "source": row["source"], "path": row["path"], "format": row.get("format"),
                    "rows": row.get("rows"), "hub_id": row.get("hub_id"), "transform": transform,
                    "written_by_llm": bool(transform and transform.get("tool") == "generate_synthetic_data")})
    return out


def _runs(ctx: ToolContext, experiment_id: int) -> list[dict]:
    runs = []
    for run in ctx.ledger.runs_for(experiment_id, kind="train", user=ctx.user):
        config = _loads(run.get("config_json")) or {}
        admission = _json_file(ctx.data_area("runs") / str(run["id"]) / ADMISSION_FILE)
        runs.append({**{k: run.get(k) for k in RUN_KEYS}, "config": config, "admission": admission})
    return runs


def _given_datasets(runs: list[dict], recorded: set[str]) -> list[dict]:
    """Training sets used as they were given (no ledger record): their path or Hub id, and a local file's digest."""
    out = []
    for name in dict.fromkeys(r["dataset"] for r in runs if r["dataset"] not in recorded):
        path = Path(name)
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
        out.append({"id": None, "source": name, "path": name, "transform": None, "sha256": digest,
                    "written_by_llm": False, "provenance": "used as given (a local file or a Hub dataset)"})
    return out


def audit_record(ctx: ToolContext) -> dict:
    rules = ctx.rules
    experiment_id = ctx.current_experiment()
    experiment = ctx.ledger.get_experiment(experiment_id, user=ctx.user) or {}
    state = _json_file(Path(ctx.settings.data_dir) / FINAL_STATE_FILE) or {}
    datasets, runs = _datasets(ctx, experiment_id), _runs(ctx, experiment_id)
    datasets += _given_datasets(runs, {d["path"] for d in datasets})
    best = state.get("best") or {}
    final = rules.final_dir
    checks = [{"run_id": r["id"], **r["admission"]["decontamination"]} for r in runs if r["admission"]]
    if state.get("held_out"):
        checks.append({"held_out_split": True, **state["held_out"].get("decontamination", {})})
    checks += [{"dataset_id": d["id"], **d["transform"]["decontamination"]} for d in datasets
               if d["transform"] and d["transform"].get("decontamination")]
    evals = [{"model": e["model"], "task": e["task"], "metric": e["metric"], "value": e["value"],
              "is_baseline": bool(e["is_baseline"]), "run_id": e.get("run_id"), "command": e.get("command"),
              "evaluator": (_loads(e.get("details_json")) or {}).get("evaluator", "lighteval")}
             for e in ctx.ledger.evals_for(experiment_id, user=ctx.user)]
    return {
        "benchmark": rules.benchmark, "eval_set": rules.eval_set, "base_model": rules.base_model,
        "eval_command": rules.eval_command, "eval_dir": str(rules.eval_dir) if rules.eval_dir else None,
        "session_id": ctx.session_id, "experiment_id": experiment_id, "status": experiment.get("status"),
        "stop_reason": experiment.get("stop_reason"),
        "time": {"started_at": rules.started_at, "limit_at": rules.limit_at, "stop_at": rules.stop_at,
                 "margin_s": rules.margin_s, "written_at": time.time()},
        "final_model": {"path": str(final), "exists": (final / "config.json").is_file(),
                        "files": sorted(p.name for p in final.iterdir()) if final.is_dir() else [],
                        "model": best.get("model"), "held_out_loss": best.get("held_out_loss"),
                        "runs_that_led_to_it": best.get("run_ids", []), "notes": best.get("notes", []),
                        "architecture": "config and weight shapes checked against the base model on save"},
        "held_out_split": {k: v for k, v in (state.get("held_out") or {}).items() if k != "decontamination"},
        "final_model_attempts": state.get("attempts", []),
        "datasets": datasets,
        "decontamination": checks,
        "training_runs": runs,
        "evaluations": evals,
        "llm_written_data": {"allowed": rules.allow_llm_data,
                             "datasets": [d["id"] for d in datasets if d["written_by_llm"]]},
        "spend": ctx.ledger.session_spend(ctx.session_id, user=ctx.user),
    }


def write_audit(ctx: ToolContext) -> Path:
    """Write the audit file (atomically) and return its path."""
    path = ctx.rules.audit_path
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(audit_record(ctx), indent=1, default=str))
    tmp.replace(path)
    return path
