"""The app's Experiments tab: the table, the picker, the lineage tree, the score plot and the report."""

from __future__ import annotations

import gradio as gr
import pytest

import app
from tools.ledger import Ledger
from ui import experiments


@pytest.fixture
def recorded(data_dir, monkeypatch, build_experiment):
    monkeypatch.setenv("ML_INTERN_DATA_DIR", str(data_dir))
    ledger = Ledger.in_dir(data_dir)
    ids = build_experiment(ledger)
    ledger.update_experiment(ids["experiment"], status="met", report="# ml-intern report: experiment 1")
    return ids


def test_table_rows_and_picker_come_from_the_ledger(recorded):
    [row] = experiments.experiments_rows()
    values = dict(zip(experiments.EXPERIMENT_COLUMNS, row, strict=True))
    assert values["id"] == recorded["experiment"] and values["target"] == "tiny_sentiment>=0.6"
    assert (values["baseline"], values["best"], values["runs"], values["cost_usd"], values["status"]) == (
        0.5, 0.71, 3, 0.25, "met")
    picker = experiments.experiment_choices()
    assert picker.choices == [(f"{recorded['experiment']}: improve tiny on tiny_sentiment", recorded["experiment"])]


def test_detail_has_the_tree_the_plot_and_the_report(recorded):
    tree, plot, report = experiments.experiment_detail(recorded["experiment"])
    assert tree.startswith("```text\nexperiment 1: improve tiny on tiny_sentiment  [met]")
    assert "└─ run 2 (child of run 1: max_steps 15 → 150)" in tree
    assert report == "# ml-intern report: experiment 1"
    assert plot.y_lim == [0.45, 0.76]  # the baseline and target lines stay off the plot's edges
    rows = sorted(tuple(r) for r in plot.value["data"])
    assert rows == [  # every trained point; the baseline and the target marked at every whole iteration
        ("0", 0.5, "baseline"), ("0", 0.6, "target tiny_sentiment>=0.6"),
        ("1", 0.5, "baseline"), ("1", 0.5, "trained (tiny_sentiment)"), ("1", 0.6, "target tiny_sentiment>=0.6"),
        ("2", 0.5, "baseline"), ("2", 0.6, "target tiny_sentiment>=0.6"), ("2", 0.71, "trained (tiny_sentiment)")]
    assert plot.sort == ["0", "1", "2"], "iterations in order, whole numbers only"


def test_detail_without_a_pick_or_for_an_unknown_experiment(recorded):
    assert experiments.experiment_detail(None)[0] == "Pick an experiment to see its lineage."
    assert experiments.experiment_detail(42)[:2] == ("There is no experiment 42.", None)


def test_clicking_a_row_picks_its_experiment():
    event = gr.SelectData(None, {"index": [0, 3], "value": "x", "row_value": [7, "goal"]})
    assert experiments.pick_experiment(event) == 7


def test_experiment_endpoint_through_the_launched_app(recorded):
    from gradio_client import Client

    blocks = app.build_app()
    blocks.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        client = Client(blocks.local_url, verbose=False)
        tree, plot, report = client.predict(recorded["experiment"], api_name="/experiment")
        assert "max_steps 15 → 150" in tree and report.startswith("# ml-intern report")
        assert plot["value"]["columns"] == ["iteration", "score", "series"] and len(plot["value"]["data"]) == 8
        assert client.predict(api_name="/experiments")["data"][0][0] == recorded["experiment"]
    finally:
        blocks.close()
