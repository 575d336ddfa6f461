"""The Jobs tab: every job of the chat's session with its stage, progress, ETA and cost; for the picked one, its
loss / reward / learning-rate curves from the ledger's metric series, its log tail, and Cancel.

A timer refreshes it: each active job is polled through `job_status`'s own report (which records its metrics and
outcome in the ledger), with a context that emits nothing into the chat.
"""

from __future__ import annotations

import dataclasses
import json

import gradio as gr

from agent import live as live_turns
from tools.stages import ACTIVE
from ui.identity import user_of
from ui.render import num

JOB_COLUMNS = ["run", "kind", "job", "stage", "progress", "ETA", "hardware", "cost"]
REFRESH_S = 5.0
BAR = 12
_ENDED_TAILS: dict[tuple[str, int], str] = {}  # log tails of ended jobs, read once


def session_runs(session) -> list[dict]:
    """The runs (training and evaluation) recorded by the session's experiments, oldest first."""
    ledger, user = session.ledger, session.ctx.user
    mine = [e["id"] for e in ledger.list_experiments(user=user) if e["session_id"] == session.id]
    return sorted((run for eid in mine for run in ledger.runs_for(eid, user=user)), key=lambda r: r["id"])


def _quiet(ctx):
    return dataclasses.replace(ctx, emit=lambda kind, payload: None)


def poll(session, run: dict) -> dict | None:
    """job_status's report of an active job (its metrics and outcome land in the ledger); None when it fails."""
    from tools.training.jobs import JobStatusTool

    try:
        return JobStatusTool(_quiet(session.ctx)).report(run["job_id"])
    except Exception:  # the panel shows the ledger's last word; the agent sees failures through its own tools
        return None


def progress_text(step, max_steps) -> str:
    if not step:
        return ""
    if not max_steps:
        return f"step {step}"
    done = min(1.0, step / max_steps)
    bar = "▓" * round(done * BAR) + "░" * (BAR - round(done * BAR))
    return f"{bar} {step}/{max_steps} ({done:.0%})"


def _max_steps(run: dict) -> int | None:
    config = json.loads(run["config_json"]) if run.get("config_json") else {}
    return config.get("max_steps")


def job_rows(session, reports: dict[int, dict]) -> list[list]:
    rows = []
    for run in session_runs(session):
        if not run["job_id"]:
            continue
        report = reports.get(run["id"]) or {}
        progress = report.get("progress") or {}
        step = progress.get("step")
        if not step:
            series = session.ledger.metric_series(run["id"], user=session.ctx.user)
            step = max((s for points in series.values() for s, _ in points if s is not None), default=None)
        eta = progress.get("eta_minutes")
        stage = report.get("stage") or run["status"]
        rows.append([run["id"], run["kind"], run["job_id"], stage,
                     progress_text(step, progress.get("max_steps") or _max_steps(run)),
                     f"{num(float(eta))} min" if eta and stage in ACTIVE else "",
                     run["hardware"] or "", f"${run['cost_usd']:.2f}" if run["cost_usd"] is not None else ""])
    return rows


def curve_frames(session, run_id: int | None):
    """(loss and reward, learning rate) of one run as long DataFrames of step, value, metric."""
    import pandas as pd

    columns = ["step", "value", "metric"]
    if run_id is None:
        return pd.DataFrame(columns=columns), pd.DataFrame(columns=columns)
    series = session.ledger.metric_series(int(run_id), user=session.ctx.user)
    learning, rest = [], []
    for name, points in series.items():
        if name == "learning_rate":
            learning += [(s, v, name) for s, v in points if s is not None]
        elif name == "loss" or "reward" in name:
            rest += [(s, v, name) for s, v in points if s is not None]
    return pd.DataFrame(rest, columns=columns), pd.DataFrame(learning, columns=columns)


def refresh(live_id: str | None, picked, profile: gr.OAuthProfile | None = None, request: gr.Request | None = None):
    """(jobs table, job picker, loss/reward plot, learning-rate plot, log tail) of the chat's session."""
    live = live_turns.find(live_id, user_of(profile, request))
    if live is None:
        return [], gr.Dropdown(choices=[]), *curve_frames(None, None), "_No session yet: start one in the Chat tab._"
    session = live.session
    runs = [run for run in session_runs(session) if run["job_id"]]
    reports = {run["id"]: poll(session, run) for run in runs if run["status"] in ACTIVE}
    choices = [(f"run {r['id']} · {r['job_id']}", r["id"]) for r in runs]
    if picked in (None, "") and runs:
        picked = runs[-1]["id"]
    loss, learning = curve_frames(session, picked)
    tail = ""
    if picked not in (None, ""):
        run = next((r for r in runs if r["id"] == int(picked)), None)
        report = reports.get(int(picked))
        if report is None and run is not None:  # an ended job's log does not change: read it once
            key = (session.id, run["id"])
            if key not in _ENDED_TAILS:
                if len(_ENDED_TAILS) > 1000:
                    _ENDED_TAILS.clear()
                _ENDED_TAILS[key] = ((poll(session, run) or {}).get("log_tail") or "")[-4000:]
            report = {"log_tail": _ENDED_TAILS[key]}
        tail = (report or {}).get("log_tail") or ""
    log = f"```text\n{tail}\n```" if tail else "_No log lines yet._"
    return job_rows(session, reports), gr.Dropdown(choices=choices, value=picked), loss, learning, log


def cancel(live_id: str | None, picked, profile: gr.OAuthProfile | None = None, request: gr.Request | None = None):
    """Cancel the picked job of the chat's session; a note of what happened."""
    from tools.training.jobs import CancelJobTool

    live = live_turns.find(live_id, user_of(profile, request))
    if live is None or picked in (None, ""):
        return "Pick a job first."
    run = session_run(live.session, int(picked))
    if run is None or not run["job_id"]:
        return f"Run {picked} has no job to cancel."
    try:
        result = CancelJobTool(_quiet(live.session.ctx)).forward(run["job_id"])
    except Exception as err:
        return f"Could not cancel job {run['job_id']}: {err}"
    return f"Job {result['job_id']}: {result['stage']}. {result['message']}"


def session_run(session, run_id: int) -> dict | None:
    return next((run for run in session_runs(session) if run["id"] == run_id), None)


def jobs_tab(live_id: gr.State) -> None:
    """The tab's components and its timer (inside a `gr.Tab`)."""
    table = gr.Dataframe(headers=JOB_COLUMNS, interactive=False, elem_id="jobs-table")
    with gr.Row():
        picker = gr.Dropdown(label="Job", choices=[], interactive=True, allow_custom_value=True)
        cancel_button = gr.Button("Cancel job", variant="stop", size="sm")
    note = gr.Markdown()
    with gr.Row():
        loss = gr.LinePlot(x="step", y="value", color="metric", title="Loss and reward", height=260,
                           elem_id="loss-plot")
        learning = gr.LinePlot(x="step", y="value", color="metric", title="Learning rate", height=260)
    log = gr.Markdown(elem_id="job-log")
    outputs = [table, picker, loss, learning, log]
    timer = gr.Timer(REFRESH_S)
    timer.tick(refresh, [live_id, picker], outputs, api_name=False, show_progress="hidden", concurrency_limit=None)
    picker.input(refresh, [live_id, picker], outputs, api_name=False, show_progress="hidden")
    cancel_button.click(cancel, [live_id, picker], note, api_name=False).then(
        refresh, [live_id, picker], outputs, api_name=False, show_progress="hidden")
