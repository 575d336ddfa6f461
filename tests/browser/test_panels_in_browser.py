"""The Jobs and Experiments tabs in Chromium: a running job's loss curve drawn from the ledger's metric series,
and the score plot of an experiment with one trained point. Screenshots land in docs/."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import DOCS
from tests.browser.test_chat_in_browser import chat, start_waiting_turn
from tools.ledger import LOCAL_USER, Ledger


def marks(plot, label: str) -> list[str]:
    """The aria labels Vega gave the drawn marks (points, line segments, axes) of `plot` that contain `label`."""
    found = plot.locator(f".vega-embed [aria-label*='{label}']")
    return [found.nth(i).get_attribute("aria-label") for i in range(found.count())]


def test_the_jobs_panel_draws_a_running_jobs_loss_curve(page, plan, jobs):
    start_waiting_turn(page, plan, jobs)
    page.locator("#stop").click()
    expect(chat(page)).to_contain_text("Stopped", timeout=60_000)
    page.get_by_role("tab", name="Jobs").click()
    table = page.locator("#jobs-table")
    expect(table).to_contain_text("running", timeout=30_000)
    expect(table).to_contain_text("10/10")
    loss = page.locator("#loss-plot")
    expect(loss.locator(".vega-embed")).to_be_visible(timeout=30_000)
    expect(loss).to_contain_text("loss")
    drawn = set(marks(loss, "metric: loss"))
    assert {"step: 5; value: 5.4; metric: loss", "step: 10; value: 4.4; metric: loss"} <= drawn, \
        "the curve runs through the job's two logged training steps"
    expect(page.locator("#job-log")).to_contain_text("dataset: 600 rows")
    page.screenshot(path=str(DOCS / "screenshot-jobs.png"), full_page=True)


def test_the_experiments_plot_shows_one_trained_point(page, data_dir):
    ledger = Ledger.in_dir(data_dir)
    experiment = ledger.create_experiment("improve tiny on tiny_sentiment", base_model="tiny", task="tiny_sentiment",
                                          target="tiny_sentiment>=0.6", user=LOCAL_USER)
    ledger.record_eval("tiny", "tiny_sentiment", "acc", 0.5, stderr=0.046, n_samples=120, is_baseline=True,
                       experiment_id=experiment, user=LOCAL_USER)
    run = ledger.create_run("sft", "tiny", "/data/ds1", experiment_id=experiment, status="completed",
                            output_dir="/ckpt/1", job_id="local-1", backend="local", user=LOCAL_USER)
    ledger.record_eval("/ckpt/1", "tiny_sentiment", "acc", 0.71, stderr=0.042, n_samples=120,
                       experiment_id=experiment, run_id=run, user=LOCAL_USER)
    page.get_by_role("tab", name="Experiments").click()
    page.get_by_role("button", name="Refresh").click()
    expect(page.locator("#experiments-table")).to_contain_text("improve tiny on tiny_sentiment")
    page.get_by_label("Experiment (or click a row)").click()
    page.get_by_role("option", name=f"{experiment}: improve tiny on tiny_sentiment").click()
    plot = page.locator("#score-plot")
    expect(plot.locator(".vega-embed")).to_be_visible(timeout=30_000)
    expect(plot).to_contain_text("trained (tiny_sentiment)")
    assert marks(plot, "series: trained") == ["iteration (run order; 0 = baseline): 1; score: 0.71; "
                                              "series: trained (tiny_sentiment)"], "the one trained point is drawn"
    axis = marks(plot, "X-axis")
    assert axis == ["X-axis titled 'iteration (run order; 0 = baseline)' for a discrete scale with 2 values: 0, 1"], \
        "whole-number iterations only"
    page.screenshot(path=str(DOCS / "screenshot-experiments.png"), full_page=True)
