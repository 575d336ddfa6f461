"""The Experiments tab: the user's experiments table, the picker, the lineage tree, the score plot and the report.

Every read is the signed-in user's own (`ui.identity.user_of`): another user's experiment reads as an unknown one.
"""

from __future__ import annotations

import gradio as gr

from ui.identity import user_of
from ui.ledger import ledger

EXPERIMENT_COLUMNS = ["id", "status", "task", "target", "baseline", "best", "runs", "cost_usd", "base_model", "goal"]
NO_REPORT = "_No report yet: it is written when the experiment's turn ends._"


def experiments_rows(profile: gr.OAuthProfile | None = None, request: gr.Request | None = None) -> list[list]:
    """This user's experiments, one row each (newest first)."""
    user = user_of(profile, request)
    rows = ledger().experiments_table(user=user) if user else []
    return [[row[c] for c in EXPERIMENT_COLUMNS] for row in rows]


def experiment_choices(profile: gr.OAuthProfile | None = None, request: gr.Request | None = None) -> gr.Dropdown:
    """The experiment picker, refreshed from this user's experiments (newest first)."""
    user = user_of(profile, request)
    rows = ledger().experiments_table(user=user) if user else []
    return gr.Dropdown(choices=[(f"{r['id']}: {r['goal'][:60]}", r["id"]) for r in rows])


def score_frame(tree: dict):
    """Every trained score of the experiment's judged task by iteration (run order; 0 is the baseline), with the
    baseline and the target marked at every iteration: a DataFrame of iteration (a whole number, as text so the
    axis shows only whole numbers), score, series."""
    import pandas as pd

    from tools.lineage import baseline_of, judged_tasks, score_series
    from tools.targets import targets_of

    targets = targets_of(tree["experiment"])
    task = judged_tasks(tree)[0][0]
    points = score_series(tree, task)
    last = max([p["iteration"] for p in points], default=1)
    rows = [{"iteration": str(p["iteration"]), "score": p["score"], "series": f"trained ({task})"} for p in points]
    base = baseline_of(tree, task)
    for label, value in (("baseline", base["value"] if base else None),
                         (f"target {targets[0]}" if targets else "target", targets[0].value if targets else None)):
        if value is not None:
            rows += [{"iteration": str(i), "score": value, "series": label} for i in range(last + 1)]
    return pd.DataFrame(rows, columns=["iteration", "score", "series"]), [str(i) for i in range(last + 1)]


def score_plot(frame, order: list[str]) -> gr.ScatterPlot:
    margin = 0.05 * max(1.0, float(frame["score"].abs().max())) if len(frame) else 0.05
    y_lim = [float(frame["score"].min()) - margin, float(frame["score"].max()) + margin] if len(frame) else None
    return gr.ScatterPlot(value=frame, y_lim=y_lim, sort=order)


def experiment_detail(experiment_id, profile: gr.OAuthProfile | None = None, request: gr.Request | None = None):
    """(lineage tree as markdown, score-per-iteration plot, saved report) of one of this user's experiments;
    another user's experiment reads as an unknown one."""
    from tools.lineage import render_tree

    if experiment_id in (None, ""):
        return "Pick an experiment to see its lineage.", None, ""
    user = user_of(profile, request)
    tree = ledger().experiment_tree(int(experiment_id), user=user) if user else None
    if tree is None:
        return f"There is no experiment {experiment_id}.", None, ""
    return (f"```text\n{render_tree(tree)}\n```", score_plot(*score_frame(tree)),
            tree["experiment"]["report"] or NO_REPORT)


def pick_experiment(event: gr.SelectData):
    """A click on a row of the experiments table selects that experiment."""
    return event.row_value[0] if event.row_value else None


def experiments_tab(app: gr.Blocks) -> None:
    """The tab's components and events (inside a `gr.Tab`)."""
    table = gr.Dataframe(headers=EXPERIMENT_COLUMNS, interactive=False, elem_id="experiments-table")
    refresh = gr.Button("Refresh")
    picker = gr.Dropdown(label="Experiment (or click a row)", choices=[], interactive=True, allow_custom_value=True)
    plot = gr.ScatterPlot(x="iteration", y="score", color="series", title="Score per iteration",
                          x_title="iteration (run order; 0 = baseline)", y_title="score", height=320,
                          elem_id="score-plot")
    tree = gr.Markdown("Pick an experiment to see its lineage.")
    with gr.Accordion("Report", open=False):
        report = gr.Markdown()
    refresh.click(experiments_rows, outputs=table, api_name="experiments").then(
        experiment_choices, outputs=picker, api_name=False)
    app.load(experiments_rows, outputs=table, api_name=False).then(experiment_choices, outputs=picker, api_name=False)
    table.select(pick_experiment, outputs=picker, api_name=False)
    picker.change(experiment_detail, picker, [tree, plot, report], api_name="experiment")
