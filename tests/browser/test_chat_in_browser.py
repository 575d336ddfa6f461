"""The chat as a person uses it in Chromium: one turn end to end, an approval card answered, Stop mid-run, a
reload that re-attaches to a running turn. Screenshots land in docs/."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.conftest import DOCS
from tests.fakes.jobs_api import TRAINING_LOG

WRITE = {"thought": "Write the training script first.",
         "code": 'run = write_training_script(model="Qwen/Qwen3-0.6B", dataset="trl-lib/Capybara", '
                 'hub_model_id="fake-user/sft-1")\nprint(run["run_id"])'}
SUBMIT = {"thought": "Train it on one A10G.",
          "code": 'job = submit_job(run_id=run["run_id"], flavor="a10g-small", timeout_minutes=30)\n'
                  'print(job["job_id"])'}
WAIT = {"thought": "Wait for the job.", "code": 'status = wait_for_job(job_id=job["job_id"], max_minutes=5)'}
# A job that keeps running, having printed two training steps.
STILL_RUNNING = {"stages": [("RUNNING", None)], "logs": TRAINING_LOG[:4]}


def send(page, text: str) -> None:
    page.locator("#goal textarea").fill(text)
    page.locator("#send").click()


def chat(page):
    return page.locator("#chat")


def auto_approve(page, cap: str = "5") -> None:
    """Settings: auto-approve paid jobs whose estimate is at most `cap` dollars."""
    page.get_by_role("tab", name="Settings").click()
    page.get_by_label("Auto-approve paid jobs up to a cap").check()
    page.get_by_label("Auto-approve cap ($ per job estimate)").fill(cap)
    page.locator("#save-settings").click()
    expect(page.locator("#settings-note")).to_contain_text("Saved for this browser session only")
    page.get_by_role("tab", name="Chat").click()


def start_waiting_turn(page, plan, jobs) -> None:
    """A turn that submits a job (auto-approved) which keeps running, and waits on it."""
    jobs.state["plan"] = STILL_RUNNING
    plan([WRITE, SUBMIT, WAIT, {"final_answer": "waited"}])
    auto_approve(page)
    send(page, "train Qwen3-0.6B on Capybara")
    expect(chat(page)).to_contain_text("wait_for_job", timeout=90_000)
    expect(page.locator("#stop")).to_be_visible()
    expect(page.locator("#send")).to_be_disabled()


def test_one_turn_end_to_end_reads_plainly(page, plan):
    plan([{"thought": "Look at what the run would be.",
           "code": WRITE["code"].replace('print(run["run_id"])',
                                         'print({"run_id": run["run_id"], "score": 0.9916666666666667})')},
          {"final_answer": "Done: the score is 0.9916666666666667 ± 0.008333333333333335."}])
    page.locator("#send").click()  # an empty message is ignored
    expect(chat(page).locator(".message")).to_have_count(0)
    send(page, "write a training script for Qwen3-0.6B")
    expect(chat(page)).to_contain_text("In short:", timeout=90_000)
    text = chat(page).inner_text()
    assert "Done: the score is 0.992 ± 0.00833." in text, "numbers rounded to 3 significant digits"
    assert "Execution logs" not in text and "Last output from code snippet" not in text
    assert re.search(r"experiment \d+ is done", text), "the turn settled its experiment"
    expect(page.locator("#status-line")).to_contain_text("turn ended")
    expect(page.locator("#send")).to_be_enabled()
    expect(page.locator("#stop")).to_be_hidden()
    page.screenshot(path=str(DOCS / "screenshot-chat.png"), full_page=True)


def test_an_approval_card_shows_what_waits_and_approve_goes_on(page, plan, jobs):
    plan([WRITE, SUBMIT, {"final_answer": "submitted"}])
    send(page, "train Qwen3-0.6B on Capybara")
    card = page.locator("#approval-card").first
    expect(card).to_be_visible(timeout=90_000)
    for shown in ("a10g-small", "1 × 24 GB GPU", "30 min", "$0.50", "Budget left"):
        expect(card).to_contain_text(shown)
    page.screenshot(path=str(DOCS / "screenshot-approval.png"), full_page=True)
    card.get_by_text("Script it would run").click()
    expect(card).to_contain_text("# /// script")
    assert not [r for r in jobs.requests if r.method == "POST"], "nothing submitted before the click"
    page.locator("#approve").click()
    expect(chat(page)).to_contain_text("submitted")
    expect(card).to_be_hidden()
    assert len([r for r in jobs.requests if r.method == "POST" and r.path.endswith("/jobs/fake-user")]) == 1


def test_reject_with_a_reason_the_agent_reads(page, plan, jobs):
    plan([WRITE, SUBMIT, {"code": "print('next step')"}, {"final_answer": "rejected"}])
    send(page, "train Qwen3-0.6B on Capybara")
    expect(page.locator("#approval-card").first).to_be_visible(timeout=90_000)
    page.locator("#reject-reason textarea").fill("too expensive: use t4-small")
    page.locator("#reject").click()
    expect(chat(page)).to_contain_text("too expensive: use t4-small")
    expect(chat(page)).to_contain_text("rejected")
    assert not [r for r in jobs.requests if r.method == "POST" and r.path.endswith("/jobs/fake-user")]


def test_stop_mid_run_ends_the_turn_and_leaves_its_job_running(page, plan, jobs):
    start_waiting_turn(page, plan, jobs)
    page.locator("#stop").click()
    expect(chat(page)).to_contain_text("Stopped", timeout=60_000)
    expect(page.locator("#send")).to_be_enabled()
    expect(page.locator("#status-line")).to_contain_text("turn ended")
    assert "waited" not in chat(page).inner_text(), "the plan's next step never ran"
    [job] = jobs.state["jobs"].values()
    assert job["plan"]["stages"] == [("RUNNING", None)], "Stop alone leaves the job running"


def test_a_reload_mid_run_reattaches_to_the_running_turn(page, plan, jobs):
    start_waiting_turn(page, plan, jobs)
    page.reload(wait_until="load")
    expect(chat(page)).to_contain_text("train Qwen3-0.6B on Capybara")
    expect(chat(page)).to_contain_text("wait_for_job")
    expect(page.locator("#status-line")).to_contain_text("running")
    expect(page.locator("#stop")).to_be_visible()
    page.locator("#stop-cancel").click()
    expect(chat(page)).to_contain_text("Stopped", timeout=60_000)
    [job] = jobs.state["jobs"].values()
    assert job["plan"]["stages"] == [("CANCELED", None)], "Stop and cancel its jobs cancels the job"
