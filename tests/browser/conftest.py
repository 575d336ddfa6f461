"""Browser tests: the app launched on loopback in this process, driven by Debian's Chromium through Playwright.

Chromium comes from Debian (`apt-get install chromium`), never from `playwright install`; it runs headless with
the flags of DESIGN.md ("Offline by construction"). The app's compute is the loopback fake of HF Jobs; its LLM is
the scripted backend, whose plan each test writes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

CHROMIUM = os.environ.get("ML_INTERN_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOKEN = "hf_browser_canary_6a2d8e4c1f"
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.fail(f"Chromium is not at {CHROMIUM}: `apt-get install -y chromium` (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def jobs():
    from tests.fakes.jobs_api import serve_jobs_api

    server = serve_jobs_api(token=TOKEN)
    yield server
    server.close()


@pytest.fixture
def plan(tmp_path, monkeypatch):
    """`plan(steps)`: the scripted backend replays `steps` in the next turn."""
    path = tmp_path / "plan.yaml"
    monkeypatch.setenv("ML_INTERN_SCRIPTED_PLAN", str(path))

    def write(steps: list[dict]) -> Path:
        path.write_text(yaml.safe_dump(steps))
        return path
    return write


@pytest.fixture
def served(monkeypatch, data_dir, jobs):
    """The app on loopback: scripted LLM, HF Jobs (the fake) as compute, a fresh data directory."""
    from agent import live

    for name, value in (("ML_INTERN_DATA_DIR", str(data_dir)), ("ML_INTERN_LLM_BACKEND", "scripted"),
                        ("HF_ENDPOINT", jobs.url), ("HF_TOKEN", TOKEN), ("ML_INTERN_COMPUTE", "hf-jobs"),
                        ("GRADIO_ANALYTICS_ENABLED", "False")):
        monkeypatch.setenv(name, value)
    for name in ("SPACE_ID", "SYSTEM", "ML_INTERN_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(live, "_REGISTRY", {})  # no session of an earlier test to re-attach to
    import app

    blocks = app.build_app()
    blocks.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    yield blocks
    blocks.close()


@pytest.fixture
def page(browser, served):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(served.local_url, wait_until="load")
    page.locator("#goal textarea").wait_for()
    yield page
    context.close()
