"""`python app.py` serves its first page on 127.0.0.1 without reaching outside the machine."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]


def test_app_serves_on_loopback_with_no_outbound_connection(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "ML_INTERN_DATA_DIR": str(tmp_path)}
    env.pop("GRADIO_SERVER_NAME", None)
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 90
        page = None
        while time.time() < deadline and page is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as reply:
                    page = reply.read().decode()
            except OSError:
                time.sleep(0.2)
        assert page and "ml-intern" in page
        remote = [c for c in psutil.Process(proc.pid).net_connections(kind="inet")
                  if c.raddr and c.raddr.ip not in ("127.0.0.1", "::1")]
        listening = [c.laddr.ip for c in psutil.Process(proc.pid).net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN]
        assert remote == [], f"outbound connections: {remote}"
        assert listening and all(ip in ("127.0.0.1", "::1") for ip in listening)
    finally:
        proc.terminate()
        proc.wait(15)


def test_a_bad_setting_starts_the_app_and_the_page_says_what_to_fix(tmp_path):
    """`ML_INTERN_LLM_BACKEND=bogus python app.py`: no traceback, the page names the variable and the choices."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "ML_INTERN_DATA_DIR": str(tmp_path),
           "ML_INTERN_LLM_BACKEND": "bogus"}
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline, page = time.time() + 90, None
        while time.time() < deadline and page is None and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as reply:
                    page = reply.read().decode()
            except OSError:
                time.sleep(0.2)
        assert proc.poll() is None, f"the app exited: {proc.stderr.read()[-2000:]}"
        assert "unknown LLM backend \\u0027bogus\\u0027" in page and "export ML_INTERN_LLM_BACKEND=" in page
        assert "anthropic, hf-inference, openai-compatible, scripted" in page
    finally:
        proc.terminate()
        proc.wait(15)
