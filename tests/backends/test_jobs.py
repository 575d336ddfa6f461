"""Job backends: the local subprocess runner, and HF Jobs against a loopback fake of its API."""

from __future__ import annotations

import base64
import json
import time

import pytest

from tests.fakes.jobs_api import ERROR_PLAN, RUNNING_PLAN, TRAINING_LOG, serve_jobs_api
from tools.backends.hardware import APPROXIMATE
from tools.backends.jobs import HfJobsBackend, LocalJobBackend, make_job_backend
from tools.errors import ToolError
from tools.settings import Settings

CANARY = "hf_canary_9f8e7d6c5b4a"


def write(tmp_path, name: str, body: str):
    path = tmp_path / name
    path.write_text(body)
    return path


def wait_done(backend, job_id, limit_s: float = 30.0):
    deadline = time.time() + limit_s
    while time.time() < deadline:
        status = backend.status(job_id)
        if status.done:
            return status
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {backend.status(job_id).stage} after {limit_s}s")


def gone(pid: int, limit_s: float = 3.0) -> bool:
    """True once `pid` has exited (a zombie awaiting its reaper counts as exited)."""
    deadline = time.time() + limit_s
    while time.time() < deadline:
        try:
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def test_local_job_runs_and_records_its_exit(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-the-owners")  # a Space's secrets, never a job's
    monkeypatch.setenv("OAUTH_CLIENT_SECRET", "the-owners-oauth-secret")
    script = write(tmp_path, "ok.py", "import os, sys\nprint('hello')\nprint('secret', len(os.environ['HF_TOKEN']))\n"
                                      "print('mode', os.environ['MODE'])\n"
                                      "print('owner', os.environ.get('ANTHROPIC_API_KEY'), "
                                      "os.environ.get('OAUTH_CLIENT_SECRET'))\nprint('nice', os.nice(0), flush=True)\n"
                                      "print('oops', file=sys.stderr)\n")
    backend = LocalJobBackend(data_dir)
    job_id = backend.submit(script, run_id=1, env={"MODE": "test"}, secrets={"HF_TOKEN": CANARY})
    status = wait_done(backend, job_id)
    assert (status.stage, status.exit_code) == ("completed", 0)
    assert status.started_at <= status.finished_at
    log = backend.logs(job_id)
    assert "hello" in log and f"secret {len(CANARY)}" in log and "mode test" in log and "oops" in log
    assert "owner None None" in log and "nice 19" in log  # no owner's secret; below the app that serves pages
    assert backend.logs(job_id, tail=1) == "oops"
    for path in (data_dir / "jobs" / job_id).iterdir():
        assert CANARY not in path.read_text()


def test_failing_script_fails_with_the_traceback(tmp_path, data_dir):
    script = write(tmp_path, "bad.py", "def main():\n    raise ValueError('dataset has no prompt column')\nmain()\n")
    backend = LocalJobBackend(data_dir)
    status = wait_done(backend, backend.submit(script, run_id=None))
    assert (status.stage, status.exit_code) == ("failed", 1)
    assert "exited with code 1" in status.message
    log = backend.logs(status.job_id)
    assert "Traceback" in log and "ValueError: dataset has no prompt column" in log


def test_cancel_kills_the_job_and_its_children(tmp_path, data_dir):
    script = write(tmp_path, "slow.py", "import subprocess, sys, time\n"
                   "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
                   "print('child', child.pid, flush=True)\ntime.sleep(60)\n")
    backend = LocalJobBackend(data_dir)
    job_id = backend.submit(script, run_id=None)
    deadline = time.time() + 10
    while "child" not in backend.logs(job_id) and time.time() < deadline:
        time.sleep(0.05)
    grandchild = int(backend.logs(job_id).split()[1])
    assert backend.status(job_id).stage == "running"
    started = time.time()
    backend.cancel(job_id)
    assert time.time() - started < 6
    status = backend.status(job_id)
    assert status.stage == "canceled"
    assert gone(grandchild)
    backend.cancel(job_id)  # canceling an ended job is a no-op


def test_timeout_kills_the_job(tmp_path, data_dir):
    script = write(tmp_path, "hang.py", "import time\nprint('start', flush=True)\ntime.sleep(60)\n")
    backend = LocalJobBackend(data_dir)
    status = wait_done(backend, backend.submit(script, run_id=None, timeout_s=1))
    assert status.stage == "timeout"
    assert "timeout" in backend.logs(status.job_id)


def test_status_survives_a_restart(tmp_path, data_dir):
    done = write(tmp_path, "done.py", "print('finished')\n")
    slow = write(tmp_path, "slow.py", "import time\ntime.sleep(60)\n")
    first = LocalJobBackend(data_dir)
    done_id = first.submit(done, run_id=1)
    wait_done(first, done_id)
    slow_id = first.submit(slow, run_id=2)

    restarted = LocalJobBackend(data_dir)
    assert restarted.status(done_id).stage == "completed"
    assert restarted.logs(done_id).strip() == "finished"
    assert restarted.status(slow_id).stage == "running"
    restarted.cancel(slow_id)
    assert restarted.status(slow_id).stage == "canceled"
    assert first.status(slow_id).stage == "canceled"


def test_local_unknown_job_and_missing_script(tmp_path, data_dir):
    backend = LocalJobBackend(data_dir)
    for job_id in ("local-000000000000", "../../etc", ""):
        with pytest.raises(ToolError, match="unknown job id"):
            backend.status(job_id)
    with pytest.raises(ToolError, match="does not exist"):
        backend.submit(tmp_path / "nope.py", run_id=None)


@pytest.fixture
def jobs_api():
    server = serve_jobs_api(token=CANARY)
    yield server
    server.close()


@pytest.fixture
def hf_backend(jobs_api, data_dir):
    return HfJobsBackend(Settings(data_dir=data_dir, hf_endpoint=jobs_api.url, hf_token=CANARY,
                                  compute_backend="hf-jobs"))


def test_hf_submit_sends_the_script_inline_and_the_token_only_as_a_secret(tmp_path, jobs_api, hf_backend):
    script = write(tmp_path, "train.py", "print('training')\n")
    job_id = hf_backend.submit(script, run_id=7, env={"MODE": "x"}, secrets={"HF_TOKEN": CANARY},
                               flavor="a10g-small", timeout_s=1800, labels={"ml-intern-run": "7"})
    create = [r for r in jobs_api.requests if r.method == "POST"][0]
    assert create.path == "/api/jobs/fake-user"
    spec = create.json()
    assert spec["secrets"] == {"HF_TOKEN": CANARY}
    assert CANARY not in json.dumps({k: v for k, v in spec.items() if k != "secrets"})
    assert base64.b64decode(spec["environment"]["ML_INTERN_SCRIPT_B64"]).decode() == "print('training')\n"
    assert spec["environment"]["MODE"] == "x"
    assert spec["flavor"] == "a10g-small" and spec["timeoutSeconds"] == 1800
    assert spec["labels"] == {"name": "ml-intern-run-7", "ml-intern-run": "7"}
    assert spec["dockerImage"].startswith("ghcr.io/astral-sh/uv")
    assert "uv run /tmp/train.py" in " ".join(spec["command"])
    assert job_id in jobs_api.state["jobs"]


def test_hf_status_maps_stages(tmp_path, jobs_api, hf_backend):
    script = write(tmp_path, "train.py", "print('training')\n")
    job_id = hf_backend.submit(script, run_id=1)
    stages = [hf_backend.status(job_id) for _ in range(3)]
    assert [s.stage for s in stages] == ["queued", "running", "completed"]
    assert stages[0].started_at is None and stages[2].finished_at > stages[2].started_at
    assert stages[2].exit_code == 0

    jobs_api.state["plan"] = ERROR_PLAN
    failed_id = hf_backend.submit(script, run_id=2)
    hf_backend.status(failed_id)
    failed = hf_backend.status(failed_id)
    assert (failed.stage, failed.exit_code) == ("failed", 1)
    assert "exit code: 1" in failed.message
    assert "OutOfMemoryError" in hf_backend.logs(failed_id)


def log_requests(jobs_api, job_id):
    return [r for r in jobs_api.requests if r.path == f"/api/jobs/fake-user/{job_id}/logs"]


def test_hf_logs_are_tailed_and_end_with_the_readers_note(tmp_path, jobs_api, data_dir):
    """How the backend shows what its log reader read (tests/backends/test_hf_job_logs.py tests the reading)."""
    backend = HfJobsBackend(Settings(data_dir=data_dir, hf_endpoint=jobs_api.url, hf_token=CANARY), sleep=[].append)
    job_id = backend.submit(write(tmp_path, "t.py", "pass\n"), run_id=1)
    assert backend.logs(job_id).splitlines() == TRAINING_LOG  # the platform's "===== Job started" banner is left out
    assert backend.logs(job_id, tail=2).splitlines() == TRAINING_LOG[-2:]
    assert backend.logs(job_id, tail=0) == ""
    assert {r.headers["authorization"] for r in log_requests(jobs_api, job_id)} == {f"Bearer {CANARY}"}
    jobs_api.state["plan"] = RUNNING_PLAN
    running = backend.submit(write(tmp_path, "t.py", "pass\n"), run_id=2)
    jobs_api.state["drop_logs"] = True
    *lines, note = backend.logs(running).splitlines()
    assert lines == RUNNING_PLAN["logs"][:1] and note.startswith("[ml-intern] log stream interrupted 3 times")
    with pytest.raises(ToolError, match="unknown job id '0123456789abcdef01234567' on HF Jobs"):
        backend.logs("0123456789abcdef01234567")


def test_hf_cancel_unknown_job_and_bad_token(tmp_path, jobs_api, hf_backend, data_dir):
    jobs_api.state["plan"] = RUNNING_PLAN
    job_id = hf_backend.submit(write(tmp_path, "t.py", "pass\n"), run_id=1)
    assert hf_backend.status(job_id).stage == "running"
    hf_backend.cancel(job_id)
    assert hf_backend.status(job_id).stage == "canceled"
    assert jobs_api.requests[-2].path == f"/api/jobs/fake-user/{job_id}/cancel"
    with pytest.raises(ToolError, match="unknown job id"):
        hf_backend.status("0123456789abcdef01234567")
    bad = HfJobsBackend(Settings(data_dir=data_dir, hf_endpoint=jobs_api.url, hf_token="hf_wrong"))
    with pytest.raises(ToolError, match="token"):
        bad.status(job_id)


def test_hf_flavors_and_invalid_flavor(tmp_path, hf_backend):
    flavors = {f.name: f for f in hf_backend.flavors()}
    assert flavors["a10g-small"].price_per_hour == pytest.approx(0.016667 * 60)
    assert (flavors["a10g-small"].gpus, flavors["a10g-small"].gpu_memory_gb) == (1, 24)
    assert not flavors["cpu-basic"].is_gpu and all(f.source == "hub" for f in flavors.values())
    assert flavors["a10g-small"].summary() == "a10g-small (24 GB, ~$1.00/h)"
    with pytest.raises(ToolError, match="Invalid flavor"):
        hf_backend.submit(write(tmp_path, "t.py", "pass\n"), run_id=1, flavor="tpu-v9")


@pytest.fixture
def saved_token(tmp_path, monkeypatch):
    """A token saved on this machine (as `hf auth login` leaves it), and none in the environment."""
    import huggingface_hub.constants
    from huggingface_hub import get_token

    token_file = tmp_path / "hf_home" / "token"
    token_file.parent.mkdir()
    token_file.write_text("hf_saved_on_this_machine_0123456789")
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(token_file.parent))
    monkeypatch.setenv("HF_TOKEN_PATH", str(token_file))
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(token_file))
    assert get_token() == "hf_saved_on_this_machine_0123456789"  # huggingface_hub would pick it up
    return token_file.read_text()


def test_hf_backend_never_sends_a_token_saved_on_the_machine(tmp_path, jobs_api, data_dir, saved_token):
    jobs_api.state["token"] = saved_token  # the fake would accept it, if it were sent
    backend = HfJobsBackend(Settings(data_dir=data_dir, hf_endpoint=jobs_api.url, hf_token=None,
                                     hf_namespace="fake-user", compute_backend="hf-jobs"))
    assert {f.source for f in backend.flavors()} == {APPROXIMATE}  # refused: the built-in table
    with pytest.raises(ToolError, match="token is missing"):
        backend.submit(write(tmp_path, "t.py", "pass\n"), run_id=1)
    with pytest.raises(ToolError, match="token is missing"):
        backend.status("0123456789abcdef01234567")
    with pytest.raises(ToolError, match="token is missing"):
        backend.logs("0123456789abcdef01234567")
    unnamed = HfJobsBackend(Settings(data_dir=data_dir, hf_endpoint=jobs_api.url, hf_token=None))
    with pytest.raises(ToolError, match="needs a Hugging Face token"):
        unnamed.status("0123456789abcdef01234567")
    assert len(jobs_api.requests) >= 4
    assert all("authorization" not in r.headers for r in jobs_api.requests)


def test_make_job_backend_follows_settings(data_dir):
    assert isinstance(make_job_backend(Settings(data_dir=data_dir, compute_backend="local")), LocalJobBackend)
    assert isinstance(make_job_backend(Settings(data_dir=data_dir, hf_token="hf_x")), HfJobsBackend)
    assert isinstance(make_job_backend(Settings(data_dir=data_dir)), LocalJobBackend)
    with pytest.raises(ValueError, match="unknown compute backend"):
        make_job_backend(Settings(data_dir=data_dir, compute_backend="slurm"))
