"""Benchmark the app under many signed-in users at once; prints the numbers.

    python -m bench.concurrent_users              # 20 users, and once more beside one waiting on an approval
    python -m bench.concurrent_users --users 5
    python -m bench.concurrent_users --rounds together

Starts `python app.py` on loopback as a Space with sign-in would run it (SYSTEM=spaces, an OAuth app's
variables, the scripted backend, local compute; HF_ENDPOINT is a loopback fake of the Jobs API), and gives each
user the signed session cookie that Gradio's OAuth callback sets, so the app sees them signed in through
Gradio's own injection of `gr.OAuthProfile`/`gr.OAuthToken`. Every user drives one turn through gradio_client:
write a training script for a tiny model, submit it as a local job, read its status, answer.

Each user opens the page first (as a browser would, before anyone types a goal), then all press Send at once.
Three rounds: one user alone; `--users` users at once; the same number again while one more user's turn waits
on an approval (a paid HF Jobs run on the fake, never answered until the end). Each round prints the events
stored in the ledger against the chat each user received (the stored events rendered as the app renders them
must equal it, but for the app's note on a job card at the turn's end: nothing lost, nothing added), cross-talk
(another user's name in a user's chat, ledger rows or `/experiments` answer), and p50/p95 seconds from submit to
the first streamed event. Goal on a 2-core machine: p95 < 1.5 s, and the waiting user changes nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from base64 import b64encode
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
OAUTH_SECRET = "bench-oauth-client-secret"
WAITER_TOKEN = "hf_bench_waiter_token_7d3f"


ROUNDS = ("alone", "together", "beside_a_waiting_approval")


def plan_steps(model_dir: str, train_file: str) -> list[dict]:
    """The scripted turn: a local job for the tiny model; where compute is remote (the waiting user's HF Jobs),
    preflight refuses the local model and the plan submits a Hub model instead, which asks for approval."""
    return [
        {"thought": "Write a short SFT run for the tiny model.",
         "code": f"run = write_training_script(model={model_dir!r}, dataset={train_file!r}, max_steps=2)\n"
                 "print(run['run_id'])"},
        {"thought": "Submit it.",
         "code": "try:\n    job = submit_job(run_id=run['run_id'])\nexcept Exception as refused:\n"
                 "    print(refused)\n"
                 "    run = write_training_script(model='Qwen/Qwen3-0.6B', dataset='trl-lib/Capybara', "
                 "hub_model_id='fake-user/sft-1')\n"
                 "    job = submit_job(run_id=run['run_id'], flavor='a10g-small', timeout_minutes=30)\n"
                 "print(job['job_id'])"},
        {"thought": "Check on it once.", "code": "print(job_status(job_id=job['job_id'])['stage'])"},
        {"final_answer": "submitted"},
    ]


def session_cookie(username: str, token: str) -> str:
    """The `session` cookie Gradio's OAuth callback sets (Starlette's SessionMiddleware: base64 JSON signed with
    itsdangerous under the key gradio.oauth derives from OAUTH_CLIENT_SECRET)."""
    from itsdangerous import TimestampSigner

    session = {"oauth_info": {"access_token": token, "token_type": "bearer", "scope": "openid profile jobs",
                              "expires_at": int(time.time()) + 8 * 3600,
                              "userinfo": {"preferred_username": username, "name": username, "picture": "",
                                           "profile": f"https://huggingface.co/{username}"}}}
    key = hashlib.sha256((OAUTH_SECRET + "-v4").encode()).hexdigest()
    return "session=" + TimestampSigner(key).sign(b64encode(json.dumps(session).encode())).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(data_dir: Path, plan: Path, read_dir: Path, hf_endpoint: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "ANTHROPIC_API_KEY", "GITHUB_TOKEN")}
    env.update(GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), SYSTEM="spaces",
               SPACE_ID="bench/ml-intern", SPACE_AUTHOR_NAME="bench-owner", OAUTH_CLIENT_ID="bench-client",
               OAUTH_CLIENT_SECRET=OAUTH_SECRET, OAUTH_SCOPES="openid profile inference-api jobs",
               OPENID_PROVIDER_URL="http://127.0.0.1:9", ML_INTERN_DATA_DIR=str(data_dir),
               ML_INTERN_LLM_BACKEND="scripted", ML_INTERN_SCRIPTED_PLAN=str(plan), ML_INTERN_COMPUTE="local",
               ML_INTERN_READ_DIRS=str(read_dir), HF_ENDPOINT=hf_endpoint, TOKENIZERS_PARALLELISM="false")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise TimeoutError("the app did not start within 120 s")


def client_for(url: str, username: str, token: str):
    """A gradio_client for one signed-in user. ssl_verify=False: the app is plain http on loopback, and with
    verification gradio_client loads the CA bundle for every request (about 0.1 s of CPU each), which, times
    twenty users in this one process, measured the client rather than the app."""
    from gradio_client import Client

    return Client(url, headers={"Cookie": session_cookie(username, token)}, verbose=False, ssl_verify=False)


def text_of(message) -> str:
    """A chat message's text as the API returns it (a list of parts in Gradio 6) or as the app renders it."""
    content = message["content"] if isinstance(message, dict) else message.content
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def run_turn(client, username: str, start: threading.Barrier | None) -> dict:
    """One turn through /chat: seconds to the first streamed event, the updates received, the final chat."""
    if start is not None:
        start.wait()
    began = time.perf_counter()
    job = client.submit(f"{username}: improve the tiny model", [], api_name="/chat")
    first = None
    while not job.done():  # polled every 10 ms: iterating a Job busy-waits (1 ms), which 20 threads cannot afford
        if first is None and job.outputs():
            first = time.perf_counter() - began
        time.sleep(0.01)
    chat = job.result()[0]
    return {"user": username, "first_s": first if first is not None else time.perf_counter() - began,
            "updates": len(job.outputs()), "chat": chat, "turn_s": time.perf_counter() - began}


def expected_chat(ledger, username: str) -> tuple[int, list[str]]:
    """(events stored, the chat they render to) for the user's one session, as the app renders a live turn."""
    from agent.events import Event
    from ui.render import render_event

    [session] = ledger.list_sessions(user=username)
    stored = ledger.session_events(session["id"], user=username)
    messages: list = []
    for row in stored:
        render_event(Event.from_dict(row["payload"]), messages)
    return len(stored), [text_of(m) for m in messages]


def same_message(stored: str, received: str) -> bool:
    """Whether a chat message received equals the one its stored events render to, allowing for the app's update
    of a job card still queued or running when the turn ended (`ui.chat.settle_job_cards`): the same card, with a
    note that the job still runs or with the state the ledger had by then."""
    if stored == received:
        return True
    card = re.match(r"job `[^`]+` \(run \d+\) on \S+: ", stored)
    return bool(card) and ("**running**" in stored or "**queued**" in stored) and received.startswith(card.group())


def check_round(ledger, url: str, results: list[dict], all_users: list[str]) -> dict:
    stored = lost = crosstalk = 0
    for result in results:
        user = result["user"]
        others = [u for u in all_users if u != user]
        count, expected = expected_chat(ledger, user)
        stored += count
        received = [text_of(m) for m in result["chat"]]
        lost += sum(1 for a, b in zip(expected, received, strict=False) if not same_message(a, b)) + \
            abs(len(expected) - len(received))
        rows = client_for(url, user, f"hf_oauth_{user}").predict(api_name="/experiments")["data"]
        seen = " ".join(received) + json.dumps(rows) + json.dumps(ledger.experiments_table(user=user))
        crosstalk += sum(1 for other in others if f"{other}:" in seen)
        crosstalk += sum(1 for row in rows if not str(row[-1]).startswith(f"{user}:"))
    firsts = sorted(r["first_s"] for r in results)
    return {"users": len(results), "events_stored": stored, "updates_received": sum(r["updates"] for r in results),
            "messages_lost_or_extra": lost, "crosstalk": crosstalk,
            "first_event_p50_s": round(statistics.median(firsts), 3),
            "first_event_p95_s": round(firsts[max(0, int(round(0.95 * len(firsts))) - 1)], 3),
            "turn_p50_s": round(statistics.median(r["turn_s"] for r in results), 2)}


def open_page(url: str, username: str):
    """A user with the app open: their client, and Gradio's state for their browser session, which a browser's
    page load creates (its load events) before anyone types a goal; here one read of their experiments does."""
    client = client_for(url, username, f"hf_oauth_{username}")
    client.predict(api_name="/experiments")
    return client


def run_round(url: str, users: list[str]) -> list[dict]:
    clients = [open_page(url, user) for user in users]
    start = threading.Barrier(len(users)) if len(users) > 1 else None
    results: list[dict] = [None] * len(users)

    def drive(i: int) -> None:
        results[i] = run_turn(clients[i], users[i], start)

    threads = [threading.Thread(target=drive, args=(i,)) for i in range(len(users))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def wait_for_jobs(data_dir: Path, timeout_s: float = 600) -> None:
    """Let the local jobs end (each writes `exit.json`) before the next round, so that rounds compare alike."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if all((job / "exit.json").exists() for job in (data_dir / "jobs").glob("local-*")):
            return
        time.sleep(1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rounds", nargs="+", choices=ROUNDS, default=list(ROUNDS), help="which rounds to run")
    args = parser.parse_args(argv)

    from agent.demo import prepare_demo
    from tests.fakes.jobs_api import serve_jobs_api
    from tools.ledger import Ledger

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        variables = prepare_demo(data_dir)
        plan = Path(tmp) / "plan.yaml"
        plan.write_text(yaml.safe_dump(plan_steps(variables["base_model"], variables["train_data"])))
        jobs = serve_jobs_api(token=WAITER_TOKEN)
        proc, url = start_app(data_dir, plan, Path(variables["base_model"]), jobs.url)
        ledger = Ledger.in_dir(data_dir)
        report = {}
        try:
            run_round(url, ["warmup"])  # the app's first turn builds what later turns reuse
            wait_for_jobs(data_dir)
            rounds = {"alone": ["alone"], "together": [f"user-{i:02d}" for i in range(args.users)],
                      "beside_a_waiting_approval": [f"peer-{i:02d}" for i in range(args.users)]}
            rounds = {name: users for name, users in rounds.items() if name in args.rounds}
            everyone = [u for users in rounds.values() for u in users] + ["waiter"]
            for name, users in rounds.items():
                waiter = None
                if name == "beside_a_waiting_approval":
                    waiter = client_for(url, "waiter", WAITER_TOKEN)
                    waiter.predict("scripted", "scripted", "", "", "", "hf-jobs", "", api_name="/settings")
                    waiting_chat = waiter.predict("waiter: improve the tiny model", [], api_name="/chat")[0]
                    assert "wants to train run" in text_of(waiting_chat[-1]), waiting_chat[-1]
                results = run_round(url, users)
                report[name] = check_round(ledger, url, results, everyone)
                if waiter is not None:
                    note = waiter.predict(waiting_chat, "", api_name="/reject")[-1]
                    report[name]["waiting_user"] = {
                        "answered_after_s": round(max(r["turn_s"] for r in results), 1), "answer": note,
                        "jobs_submitted_on_hf_jobs": len([r for r in jobs.requests if r.method == "POST"])}
                wait_for_jobs(data_dir)
        finally:
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            proc.kill()
            proc.wait(10)
            jobs.close()
    print(json.dumps({"cpus": os.cpu_count(), **report}, indent=2))


if __name__ == "__main__":
    main()
