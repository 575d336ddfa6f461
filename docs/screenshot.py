"""Take docs/screenshot.png: the app after the offline demo. Needs Debian's chromium and playwright.

    python docs/screenshot.py
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "ML_INTERN_DATA_DIR": tempfile.mkdtemp()}
    app = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env)
    try:
        time.sleep(8)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="load")
            page.get_by_role("button", name="Run offline demo (scripted)").click()
            page.get_by_text("after SFT").first.wait_for(timeout=400_000)
            time.sleep(2)
            page.screenshot(path=str(ROOT / "docs" / "screenshot.png"), full_page=False)
            browser.close()
    finally:
        app.terminate()


if __name__ == "__main__":
    main()
