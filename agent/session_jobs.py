"""The jobs a session started: its running runs, cancelled when the user stops it that way, re-attached when it
resumes after a restart.

Re-attaching goes through the job tools themselves: `job_status` for a training run (metrics, checkpoint and
outcome recorded, cost included) and `collect_evaluation` looking once for an evaluation run (its score
recorded when the job has ended), so a resumed run is reconciled by the same code that watches a live one.
"""

from __future__ import annotations

import dataclasses
import time

from agent.events import Event
from tools.backends.jobs import make_job_backend
from tools.context import ToolContext
from tools.errors import ToolError
from tools.spend import settle_job


def session_runs(ctx: ToolContext, status: str = "running") -> list[dict]:
    """The runs with `status` of the experiments of `ctx`'s session, the user's own only, oldest first."""
    ledger, user = ctx.ledger, ctx.user
    experiments = [e["id"] for e in ledger.list_experiments(user=user) if e["session_id"] == ctx.session_id]
    return [run for experiment_id in sorted(experiments) for run in ledger.runs_for(experiment_id, user=user)
            if run["status"] == status]


def _for_run(ctx: ToolContext, run: dict) -> ToolContext:
    """`ctx`, with the job backend the run was submitted to (a session may resume under other settings)."""
    if not run["backend"] or run["backend"] == ctx.jobs.name:
        return ctx
    return dataclasses.replace(ctx, jobs=make_job_backend(ctx.settings.with_(compute_backend=run["backend"])))


def cancel_running_jobs(ctx: ToolContext, reason: str) -> tuple[list[str], list[str]]:
    """Cancel the session's running jobs; (canceled job ids, "job: why" for those that could not be)."""
    canceled, failed = [], []
    for run in session_runs(ctx):
        if not run["job_id"]:
            continue
        try:
            _for_run(ctx, run).jobs.cancel(run["job_id"])
        except (ToolError, ValueError) as err:
            failed.append(f"{run['job_id']}: {err}")
            continue
        now = time.time()
        ctx.ledger.update_run(run["id"], status="canceled", finished_at=now, error=f"canceled: {reason}")
        settle_job(ctx, run, _for_run(ctx, run).jobs.cost(run["hardware"], run["started_at"], now))  # its hold
        canceled.append(run["job_id"])
    return canceled, failed


def reattach_jobs(ctx: ToolContext) -> list[dict]:
    """Poll each of the session's runs left `running` and record what its job did meanwhile.

    Returns one {"job_id", "run_id", "kind", "stage", "message"} per run (plus "output_dir" or "value" when the
    job left one): stage "running"/"queued" for a job still going, which the agent can watch again. A run
    whose job the backend no longer knows is marked failed; one whose backend cannot be reached stays running.
    """
    from tools.evaluation.evaluate import CollectEvaluationTool
    from tools.training.jobs import JobStatusTool

    found = []
    for run in session_runs(ctx):
        job_id, kind = run["job_id"], run["kind"]
        entry = {"job_id": job_id, "run_id": run["id"], "kind": kind}
        if not job_id:
            ctx.ledger.update_run(run["id"], status="failed", finished_at=time.time(),
                                  error="marked running but never submitted (found on resume)")
            found.append({**entry, "stage": "failed", "message": "the run was never submitted"})
            continue
        run_ctx = _for_run(ctx, run)
        try:
            if kind == "eval":
                result = _collect_once(CollectEvaluationTool(run_ctx), job_id)
            else:
                result = JobStatusTool(run_ctx).forward(job_id)
        except (ToolError, ValueError) as err:
            message = str(err)
            if "unknown job id" in message:
                ctx.ledger.update_run(run["id"], status="failed", finished_at=time.time(),
                                      error="its job is gone (found on resume)")
                found.append({**entry, "stage": "failed", "message": f"the job is gone: {message}"})
            else:
                found.append({**entry, "stage": "unknown", "message": f"could not reach the job: {message}"})
            continue
        found.append({**entry, **{k: result[k] for k in ("stage", "message", "output_dir", "value") if k in result}})
    return found


def _collect_once(tool, job_id: str) -> dict:
    """collect_evaluation without waiting: the recorded score when the job ended, else its stage."""
    try:
        result = tool.forward(job_id, max_minutes=0)
    except ToolError as err:  # the job ended without a score: the tool marked the run and says why
        if "unknown job id" in str(err) or "not an evaluation job" in str(err):
            raise
        return {"stage": "failed", "message": str(err).split("\n")[0]}
    if result.get("still_running"):
        return result
    return {"stage": "completed", "value": result.get("value"),
            "message": f"scored {result.get('metric')} = {result.get('value')} (recorded)"}


def stop_event(ctx: ToolContext, cancel_jobs: bool, steps: int | None = None) -> Event:
    """Cancel the session's running jobs (with `cancel_jobs`) or list them as left running; the notice that
    tells the user what the stop did. `steps`: how many steps the stopped turn took, when one was running."""
    when = f" after step {steps}" if steps else ""
    if cancel_jobs:
        canceled, failed = cancel_running_jobs(ctx, "the user stopped the session")
        text = f"Stopped by the user{when}." + (f" Canceled jobs: {', '.join(canceled)}." if canceled
                                                 else " No job was running.")
        if failed:
            text += f" Could not cancel: {'; '.join(failed)}."
        return Event("notice", text, data={"stopped": True, "jobs_canceled": canceled, "cancel_failed": failed})
    running = [run["job_id"] for run in session_runs(ctx) if run["job_id"]]
    text = f"Stopped by the user{when}."
    if running:
        text += (f" Jobs left running: {', '.join(running)}. They go on (and cost) until they end; send a message "
                 "to carry on, or stop again with cancel to cancel them.")
    return Event("notice", text, data={"stopped": True, "jobs_left_running": running})
