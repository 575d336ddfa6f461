"""Benchmark the offline demo and the app's start-up; prints the numbers.

    python -m bench.demo_bench

Runs `python -m agent --demo` in a fresh data directory (tiny model built, baseline lighteval,
SFT as a local job, lighteval on the checkpoint) and reports wall time, the peak resident memory
of the demo's process tree, and both scores read back from the ledger. Then starts `python app.py`
and measures the time until the first page answers. Goals: demo < 180 s, < 4 GB, gain >= 20
points; first page < 10 s.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_demo(data_dir: Path) -> dict:
    env = {**os.environ, "ML_INTERN_DATA_DIR": str(data_dir), "TOKENIZERS_PARALLELISM": "false"}
    start = time.perf_counter()
    proc = psutil.Popen([sys.executable, "-m", "agent", "--demo"], cwd=ROOT, env=env,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc))
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    db = sqlite3.connect(data_dir / "ledger.sqlite")
    rows = db.execute("SELECT is_baseline, value FROM evals ORDER BY id").fetchall()
    baseline = next((v for b, v in rows if b), None)
    trained = next((v for b, v in rows if not b), None)
    return {"exit_code": proc.returncode, "seconds": round(seconds, 1), "peak_rss_gb": round(peak / 2**30, 2),
            "baseline": baseline, "trained": trained,
            "gain_points": round(100 * (trained - baseline), 1) if None not in (baseline, trained) else None}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_start_seconds(data_dir: Path, timeout: float = 60.0) -> float:
    port = _free_port()
    env = {**os.environ, "ML_INTERN_DATA_DIR": str(data_dir), "GRADIO_SERVER_PORT": str(port)}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - start < timeout:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as reply:
                    if reply.status == 200:
                        return round(time.perf_counter() - start, 2)
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"app did not answer within {timeout} s")
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        demo = run_demo(Path(tmp) / "demo")
        app = app_start_seconds(Path(tmp) / "app")
    print(json.dumps({"demo": demo, "app_first_page_s": app}, indent=2))


if __name__ == "__main__":
    main()
