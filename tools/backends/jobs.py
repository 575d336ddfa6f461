"""Where training scripts run: one interface, two backends.

`LocalJobBackend` runs a script as a subprocess on this machine; `HfJobsBackend` runs it on
Hugging Face Jobs. Both return at once from `submit`; `status`, `logs` and `cancel` take the job id.
`make_job_backend(settings)` picks one from `settings.resolved_compute_backend`.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from tools.backends.hardware import Flavor, list_hardware
from tools.backends.hub import hf_api
from tools.confine import credential_free_env, yield_cpu
from tools.errors import ToolError
from tools.settings import Settings
from tools.stages import TERMINAL

CANCEL_GRACE_S = 5.0
PF_KTHREAD = 0x00200000  # /proc/<pid>/stat flags bit of a kernel thread


@dataclass
class JobStatus:
    job_id: str
    stage: str  # one of tools.stages.STAGES
    message: str | None = None
    started_at: float | None = None  # epoch seconds
    finished_at: float | None = None
    exit_code: int | None = None

    @property
    def done(self) -> bool:
        return self.stage in TERMINAL

    def to_dict(self) -> dict:
        return asdict(self)


class JobBackend(ABC):
    """Runs uv training scripts as jobs. Every method returns promptly; nothing blocks on a job."""

    name: str

    @abstractmethod
    def submit(self, script_path: str | Path, *, run_id: int | None, env: dict[str, str] | None = None,
               secrets: dict[str, str] | None = None, flavor: str | None = None,
               timeout_s: float | None = None, labels: dict[str, str] | None = None) -> str:
        """Start the script; return the job id. `secrets` reach the job as environment variables
        and are never written to disk or sent as plain configuration."""

    @abstractmethod
    def status(self, job_id: str) -> JobStatus:
        """The job's stage; raises ToolError for an unknown job id."""

    @abstractmethod
    def logs(self, job_id: str, tail: int | None = None) -> str:
        """The job's output so far (stdout and stderr), the last `tail` lines if given."""

    @abstractmethod
    def cancel(self, job_id: str) -> None:
        """Stop the job; a no-op for a job that already ended."""

    def last_output_at(self, job_id: str) -> float | None:
        """When the job last printed a line (epoch seconds), from what was read so far; None when unknown."""
        return None

    def flavors(self) -> list[Flavor]:
        """Hardware this backend can run on, with hourly prices; empty when it has no choice of hardware."""
        return []

    def cost(self, flavor: str | None, started: float | None, finished: float | None) -> float | None:
        """Dollars a job on `flavor` cost from `started` to `finished` (epoch seconds); None when unknown."""
        if not (flavor and started and finished):
            return None
        try:
            price = next((f.price_per_hour for f in self.flavors() if f.name == flavor), None)
        except ToolError:
            return None
        return None if price is None else round(price * (finished - started) / 3600, 6)


# The local wrapper: runs the job as its child, enforces the timeout and records how it ended in
# exit.json, so a restarted app still knows. argv: job_dir timeout_s command...
WRAPPER = r"""
import json, os, signal, subprocess, sys, time
job_dir, timeout, cmd = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
canceled = []
signal.signal(signal.SIGTERM, lambda *a: canceled.append(1))
def finish(code, reason):
    tmp = os.path.join(job_dir, "exit.json.tmp")
    with open(tmp, "w") as f:
        json.dump({"exit_code": code, "reason": reason, "finished_at": time.time()}, f)
    os.replace(tmp, os.path.join(job_dir, "exit.json"))
with open(os.path.join(job_dir, "log.txt"), "ab", buffering=0) as log:
    child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=job_dir)
    deadline = time.time() + timeout if timeout > 0 else None
    while True:
        try:
            code = child.wait(timeout=1.0)
            break
        except subprocess.TimeoutExpired:
            if deadline and time.time() > deadline:
                log.write(b"\n[ml-intern] job exceeded its timeout of %ds and was killed\n" % int(timeout))
                finish(None, "timeout")
                os.killpg(0, signal.SIGKILL)
    if canceled:
        log.write(b"\n[ml-intern] job canceled\n")
    finish(code, "canceled" if canceled else "exit")
"""


class LocalJobBackend(JobBackend):
    """Runs each script as a subprocess on this machine.

    By default the script runs with this app's own interpreter (`sys.executable`): the app's
    environment already holds the pinned training stack (torch, transformers, trl, peft, ...), so
    nothing is installed per job. With `use_uv=True` it runs `uv run <script>` instead, which
    builds an environment from the script's PEP 723 header (needs `uv` on PATH, and network or a
    warm uv cache).

    Each job lives in `<data_dir>/jobs/<job_id>/`: `state.json` (command, pid, start time),
    `log.txt` (stdout and stderr), `exit.json` (written by a small wrapper process when the job
    ends) and `canceled` (a marker). The wrapper leads its own process group, so cancel kills the
    job and everything it spawned; status reads these files, so it survives an app restart.
    `flavor` is ignored: the job uses whatever CPU/GPU this machine has.
    """

    name = "local"

    def __init__(self, data_dir: str | Path, use_uv: bool = False):
        self.jobs_dir = Path(data_dir).resolve() / "jobs"
        self.use_uv = use_uv
        self._procs: dict[str, subprocess.Popen] = {}

    def _dir(self, job_id: str) -> Path:
        if not re.fullmatch(r"local-[0-9a-f]{12}", job_id or "") or not (self.jobs_dir / job_id).is_dir():
            raise ToolError(f"unknown job id {job_id!r} on the local backend; use the job_id that submit_job "
                            "returned.")
        return self.jobs_dir / job_id

    def submit(self, script_path, *, run_id, env=None, secrets=None, flavor=None, timeout_s=None, labels=None):
        script = Path(script_path).resolve()
        if not script.is_file():
            raise ToolError(f"script {script} does not exist; write it with write_training_script first.")
        if self.use_uv:
            uv = shutil.which("uv")
            if not uv:
                raise ToolError("use_uv is set but `uv` is not on PATH; install uv or run with the app's Python.")
            command = [uv, "run", "--script", str(script)]
        else:
            command = [sys.executable, str(script)]
        job_id = f"local-{uuid.uuid4().hex[:12]}"
        job_dir = self.jobs_dir / job_id
        job_dir.mkdir(parents=True)
        child_env = credential_free_env({"PYTHONUNBUFFERED": "1", **(env or {}), **(secrets or {})})
        proc = subprocess.Popen(
            [sys.executable, "-c", WRAPPER, str(job_dir), str(float(timeout_s or 0)), *command],
            env=child_env, cwd=job_dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=yield_cpu)
        self._procs[job_id] = proc
        state = {"job_id": job_id, "run_id": run_id, "script": str(script), "command": command,
                 "pid": proc.pid, "started_at": time.time(), "timeout_s": timeout_s, "labels": labels or {},
                 "env_keys": sorted(env or {}), "secret_keys": sorted(secrets or {})}
        (job_dir / "state.json").write_text(json.dumps(state, indent=1))
        return job_id

    def _alive(self, job_id: str, pid: int) -> bool:
        proc = self._procs.get(job_id)
        if proc is not None:
            return proc.poll() is None
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists():  # Linux: also rule out a zombie and a recycled pid
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                return False
            if fields[0] in ("Z", "X"):
                return False
            if not cmdline:  # still exiting (its memory is gone first), unless it is a kernel thread
                return not int(fields[6]) & PF_KTHREAD
            return job_id.encode() in cmdline
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def status(self, job_id):
        job_dir = self._dir(job_id)
        state = json.loads((job_dir / "state.json").read_text())
        started = state["started_at"]
        exit_file = job_dir / "exit.json"
        if exit_file.exists():
            info = json.loads(exit_file.read_text())
            code, reason = info["exit_code"], info["reason"]
            if reason == "timeout":
                stage, message = "timeout", f"killed after its timeout of {state['timeout_s']:.0f}s"
            elif reason == "canceled" or (job_dir / "canceled").exists():
                stage, message = "canceled", "canceled on request"
            elif code == 0:
                stage, message = "completed", "exited with code 0"
            else:
                stage, message = "failed", f"exited with code {code}"
            return JobStatus(job_id, stage, message, started, info["finished_at"], code)
        if (job_dir / "canceled").exists():
            if self._alive(job_id, state["pid"]):
                return JobStatus(job_id, "running", "canceling", started)
            return JobStatus(job_id, "canceled", "canceled on request", started,
                             (job_dir / "canceled").stat().st_mtime)
        if self._alive(job_id, state["pid"]):
            return JobStatus(job_id, "running", None, started)
        return JobStatus(job_id, "failed", "the job process disappeared without recording an exit code (was the "
                                           "machine or app restarted?)", started, None)

    def logs(self, job_id, tail=None):
        log = self._dir(job_id) / "log.txt"
        text = log.read_text(errors="replace") if log.exists() else ""
        if tail is not None:
            text = "\n".join(text.splitlines()[-int(tail):]) if tail > 0 else ""
        return text

    def last_output_at(self, job_id):
        log = self._dir(job_id) / "log.txt"
        return log.stat().st_mtime if log.exists() else None

    def cancel(self, job_id):
        job_dir = self._dir(job_id)
        if self.status(job_id).done:
            return
        state = json.loads((job_dir / "state.json").read_text())
        (job_dir / "canceled").write_text(str(time.time()))
        pgid = state["pid"]  # the wrapper leads its own session and process group
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                return
            deadline = time.time() + CANCEL_GRACE_S
            while time.time() < deadline and self._alive(job_id, pgid):
                time.sleep(0.05)
            if not self._alive(job_id, pgid):
                try:  # sweep up anything in the group that outlived the wrapper
                    os.killpg(pgid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                return


HF_STAGES = {"SCHEDULING": "queued", "RUNNING": "running", "UPDATING": "running", "COMPLETED": "completed",
             "ERROR": "failed", "CANCELED": "canceled", "DELETED": "canceled"}
# Fetches the script from the environment, so the job needs no bucket upload and the command stays short.
HF_COMMAND = ('python -c "import base64, os; open(\'/tmp/train.py\', \'wb\').write('
              'base64.b64decode(os.environ[\'ML_INTERN_SCRIPT_B64\']))" && exec uv run /tmp/train.py')


class HfJobsBackend(JobBackend):
    """Runs each script on Hugging Face Jobs through `huggingface_hub.HfApi.run_job`.

    The script travels inline (base64 in the `ML_INTERN_SCRIPT_B64` environment variable) and the
    job runs `uv run /tmp/train.py` in the uv image, which installs the script's pinned PEP 723
    dependencies. `run_uv_job` would upload a local script to a Hub bucket first; passing it inline
    needs nothing but the Jobs API. Secrets (the HF token) go through `secrets=`, which the Hub
    stores encrypted, never through the command, the environment or the script.
    Logs are read incrementally from the job's event stream and cached under
    `<data_dir>/jobs/<job_id>/` (see tools/backends/hf_job_logs.py); `sleep` is the retry backoff's, for tests.
    """

    name = "hf-jobs"

    def __init__(self, settings: Settings, sleep: Callable[[float], None] = time.sleep):
        from tools.backends.hf_job_logs import HfJobLogReader

        self.settings = settings
        self.api = hf_api(settings)
        self._namespace = settings.hf_namespace
        self._flavors: list[Flavor] | None = None
        self.log_reader = HfJobLogReader(self.api, Path(settings.data_dir).resolve() / "jobs",
                                         lambda: self.namespace, sleep=sleep,
                                         connect_timeout_s=settings.http_timeout_s)

    @property
    def namespace(self) -> str:
        if self._namespace is None:
            if not self.settings.hf_token:
                raise ToolError("HF Jobs needs a Hugging Face token: sign in or set HF_TOKEN (with write access), "
                                "or use the local compute backend.")
            self._namespace = self._call(lambda: self.api.whoami()["name"], "look up your Hub user")
        return self._namespace

    def _call(self, fn, what: str, job_id: str | None = None):
        from huggingface_hub.errors import HfHubHTTPError

        try:
            return fn()
        except HfHubHTTPError as exc:
            status = getattr(exc.response, "status_code", None)
            if status == 404 and job_id:
                raise ToolError(f"unknown job id {job_id!r} on HF Jobs (namespace {self._namespace}); use the "
                                "job_id that submit_job returned.") from exc
            if status in (401, 403):
                raise ToolError(f"HF Jobs refused to {what} ({status}): the HF token is missing or lacks "
                                "permission to run jobs; sign in or set HF_TOKEN with write access.") from exc
            raise ToolError(f"HF Jobs failed to {what}: {exc}") from exc

    def flavors(self):
        """The Hub's Jobs hardware (hardware.list_hardware: the built-in table when the Hub cannot answer),
        asked once per backend."""
        if self._flavors is None:
            self._flavors = list_hardware(self.settings)
        return self._flavors

    def submit(self, script_path, *, run_id, env=None, secrets=None, flavor=None, timeout_s=None, labels=None):
        from huggingface_hub._jobs_api import DEFAULT_UV_IMAGE

        script = Path(script_path)
        if not script.is_file():
            raise ToolError(f"script {script} does not exist; write it with write_training_script first.")
        job_env = {**(env or {}), "PYTHONUNBUFFERED": "1",
                   "ML_INTERN_SCRIPT_B64": base64.b64encode(script.read_bytes()).decode()}
        labels = {"name": f"ml-intern-run-{run_id}" if run_id is not None else "ml-intern", **(labels or {})}
        job = self._call(lambda: self.api.run_job(
            image=DEFAULT_UV_IMAGE, command=["bash", "-c", HF_COMMAND], env=job_env, secrets=secrets or None,
            flavor=flavor or "cpu-basic", timeout=int(timeout_s) if timeout_s else None, labels=labels,
            namespace=self.namespace), "start the job")
        return job.id

    def status(self, job_id):
        job = self._call(lambda: self.api.inspect_job(job_id=job_id, namespace=self.namespace),
                         "inspect the job", job_id)
        raw = str(job.status.stage)
        message = job.status.message
        stage = HF_STAGES.get(raw, "running")
        if stage == "failed" and message and re.search(r"time ?out|timed out", message, re.I):
            stage = "timeout"
        code = re.search(r"exit code:? *(-?\d+)", message or "")
        if stage in TERMINAL:
            self.log_reader.job_ended(job_id)
        return JobStatus(job_id, stage, message or raw.lower(),
                         job.started_at.timestamp() if job.started_at else None,
                         job.finished_at.timestamp() if job.finished_at else None,
                         int(code.group(1)) if code else (0 if stage == "completed" else None))

    def logs(self, job_id, tail=None):
        lines, note = self._call(lambda: self.log_reader.read(job_id), "fetch the logs", job_id)
        if tail is not None:
            lines = lines[-int(tail):] if tail > 0 else []
        return "\n".join(lines + ([note] if note else []))

    def last_output_at(self, job_id):
        return self.log_reader.last_event_at(job_id)

    def cancel(self, job_id):
        self._call(lambda: self.api.cancel_job(job_id=job_id, namespace=self.namespace), "cancel the job", job_id)


def make_job_backend(settings: Settings) -> JobBackend:
    """The backend that `settings.resolved_compute_backend` names: "local" or "hf-jobs"."""
    backend = settings.resolved_compute_backend
    if backend == "local":
        return LocalJobBackend(settings.data_dir)
    if backend == "hf-jobs":
        return HfJobsBackend(settings)
    raise ValueError(f"unknown compute backend {backend!r}; use 'local' or 'hf-jobs'")
