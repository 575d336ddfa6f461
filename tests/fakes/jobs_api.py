"""A loopback fake of the Hugging Face Jobs API, shaped like the replies `huggingface_hub` parses.

Routes: whoami-v2, list hardware (with prices), create a job, inspect it, stream its logs as
server-sent events, cancel it. Every route checks the bearer token. Each created job follows a
plan of stages, one step per inspect call (`COMPLETED_PLAN`, `ERROR_PLAN`, ...), and serves its log
lines (a copy of the plan's, in `state["jobs"][job_id]["logs"]`: append to it to make the job print
more) as a replay from the first line, or the last `tail` ones, each event timestamped one second
after the previous. `state["drop_logs"] = True` cuts every log stream off mid-way (half the events,
then a part of the next one, then the connection closes); an integer n cuts off only the next n.
`state["log_status"] = [429, 503]` answers the next log requests with those statuses, one each;
`state["log_noise"] = True` interleaves keep-alive comments, blank events and malformed ones; and
`state["log_hold_s"] = s` keeps a stream open for s seconds after its last event, as a running job's does.

    server = serve_jobs_api(token="hf_canary_123")
    settings = Settings(hf_endpoint=server.url, hf_token="hf_canary_123", compute_backend="hf-jobs")
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

from tests.fakes.server import FakeHandler, FakeServer, route, serve

USER = {"type": "user", "id": "64f0c0ffee0000000000abcd", "name": "fake-user", "fullname": "Fake User",
        "email": "fake@example.com", "emailVerified": True, "isPro": False, "orgs": [],
        "auth": {"type": "access_token", "accessToken": {"displayName": "ml-intern", "role": "write",
                                                         "createdAt": "2026-01-02T03:04:05.000Z"}}}

HARDWARE = [
    {"name": "cpu-basic", "prettyName": "CPU Basic", "cpu": "2 vCPU", "ram": "16 GB", "ephemeralStorage": "50 GB",
     "accelerator": None, "unitCostMicroUSD": 167, "unitCostUSD": 0.000167, "unitLabel": "minute"},
    {"name": "cpu-upgrade", "prettyName": "CPU Upgrade", "cpu": "8 vCPU", "ram": "32 GB",
     "ephemeralStorage": "50 GB", "accelerator": None, "unitCostMicroUSD": 500, "unitCostUSD": 0.0005,
     "unitLabel": "minute"},
    {"name": "t4-small", "prettyName": "Nvidia T4 - small", "cpu": "4 vCPU", "ram": "15 GB",
     "ephemeralStorage": "50 GB", "accelerator": {"type": "gpu", "model": "T4", "quantity": "1", "vram": "16 GB",
                                                  "manufacturer": "Nvidia"},
     "unitCostMicroUSD": 6667, "unitCostUSD": 0.006667, "unitLabel": "minute"},
    {"name": "a10g-small", "prettyName": "Nvidia A10G - small", "cpu": "4 vCPU", "ram": "15 GB",
     "ephemeralStorage": "110 GB", "accelerator": {"type": "gpu", "model": "A10G", "quantity": "1",
                                                   "vram": "24 GB", "manufacturer": "Nvidia"},
     "unitCostMicroUSD": 16667, "unitCostUSD": 0.016667, "unitLabel": "minute"},
    {"name": "a100-large", "prettyName": "Nvidia A100 - large", "cpu": "12 vCPU", "ram": "142 GB",
     "ephemeralStorage": "1000 GB", "accelerator": {"type": "gpu", "model": "A100", "quantity": "1",
                                                    "vram": "80 GB", "manufacturer": "Nvidia"},
     "unitCostMicroUSD": 41667, "unitCostUSD": 0.041667, "unitLabel": "minute"},
]

TRAINING_LOG = [
    "Installed 61 packages in 412ms",
    "dataset: 600 rows, columns ['prompt', 'completion']",
    'METRIC {"step": 5, "max_steps": 10, "loss": 5.4, "grad_norm": 4.9, "learning_rate": 0.0015, "epoch": 0.13}',
    'METRIC {"step": 10, "max_steps": 10, "loss": 4.4, "grad_norm": 4.8, "learning_rate": 0.0003, "epoch": 0.26}',
    'METRIC {"step": 10, "max_steps": 10, "train_runtime": 8.2, "train_loss": 4.9, "epoch": 0.26}',
    'TRAINING_DONE {"output_dir": "outputs/run-1", "global_step": 10, "train_loss": 4.9}',
]
ERROR_LOG = [
    "Installed 61 packages in 412ms",
    "Traceback (most recent call last):",
    '  File "/tmp/train.py", line 80, in <module>',
    "    main()",
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
]
COMPLETED_PLAN = {"stages": [("SCHEDULING", None), ("RUNNING", None), ("COMPLETED", None)], "logs": TRAINING_LOG}
ERROR_PLAN = {"stages": [("RUNNING", None), ("ERROR", "Job failed with exit code: 1")], "logs": ERROR_LOG}
RUNNING_PLAN = {"stages": [("RUNNING", None)], "logs": TRAINING_LOG[:3]}


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


class JobsApiHandler(FakeHandler):
    def _authorized(self) -> bool:
        header = self.request_record.headers.get("authorization", "")
        if header == f"Bearer {self.state['token']}":
            return True
        self.send_json({"error": "Invalid credentials in Authorization header"}, status=401)
        return False

    def _job(self, namespace: str, job_id: str) -> dict | None:
        job = self.state["jobs"].get(job_id)
        if job is None or namespace != USER["name"]:
            self.send_json({"error": "Job not found"}, status=404)
            return None
        return job

    def _info(self, job: dict) -> dict:
        stage, message = job["plan"]["stages"][job["cursor"]]
        info = {**job["spec"], "id": job["id"], "createdAt": _iso(job["created"]), "owner": {
            "id": USER["id"], "name": USER["name"], "type": "user"},
            "initiator": {"type": "user", "id": USER["id"], "name": USER["name"]},
            "status": {"stage": stage, "message": message}}
        info["secrets"] = {name: None for name in job["spec"].get("secrets", {})}  # values never come back
        if stage != "SCHEDULING":
            info["startedAt"] = _iso(job["created"] + timedelta(seconds=6))
        if stage in ("COMPLETED", "ERROR", "CANCELED"):
            info["finishedAt"] = _iso(job["created"] + timedelta(seconds=126))
        return info

    @route("GET", r"/api/whoami-v2")
    def whoami(self):
        if self._authorized():
            self.send_json(USER)

    @route("GET", r"/api/jobs/hardware")
    def hardware(self):
        if self._authorized():
            self.send_json(HARDWARE)

    @route("POST", r"/api/jobs/(?P<namespace>[^/]+)")
    def create(self, namespace):
        if not self._authorized():
            return
        spec = self.request_record.json()
        if spec.get("flavor") not in {h["name"] for h in HARDWARE}:
            self.send_json({"error": f"Invalid flavor: {spec.get('flavor')}"}, status=400)
            return
        job_id = uuid.uuid4().hex[:24]
        plan = self.state.get("plan", COMPLETED_PLAN)
        self.state["jobs"][job_id] = {"id": job_id, "spec": spec, "plan": plan, "cursor": 0,
                                      "created": datetime.now(UTC), "logs": list(plan["logs"])}
        self.send_json(self._info(self.state["jobs"][job_id]))

    @route("GET", r"/api/jobs/(?P<namespace>[^/]+)/(?P<job_id>[^/]+)")
    def inspect(self, namespace, job_id):
        if not self._authorized() or (job := self._job(namespace, job_id)) is None:
            return
        self.send_json(self._info(job))
        job["cursor"] = min(job["cursor"] + 1, len(job["plan"]["stages"]) - 1)

    @route("GET", r"/api/jobs/(?P<namespace>[^/]+)/(?P<job_id>[^/]+)/logs")
    def logs(self, namespace, job_id):
        if not self._authorized() or (job := self._job(namespace, job_id)) is None:
            return
        start = job["created"]
        lines = ["===== Job started at " + _iso(start) + " =====", *job["logs"]]
        events = [json.dumps({"data": line, "timestamp": _iso(start + timedelta(seconds=i))})
                  for i, line in enumerate(lines)]
        if "tail" in self.query:
            events = events[-int(self.query["tail"]):]
        drop = self.state.get("drop_logs")
        if self.state.get("log_status"):
            status = self.state["log_status"].pop(0)
            self.send_json({"error": "Too many requests" if status == 429 else "Internal error"}, status=status)
        elif drop:
            if drop is not True:
                self.state["drop_logs"] = drop - 1
            self._send_dropped_sse(events[: max(1, len(events) // 2)], events[len(events) // 2:][:1])
        elif self.state.get("log_noise") or self.state.get("log_hold_s"):
            self._send_noisy_sse(events)
        else:
            self.send_sse(events)

    @route("POST", r"/api/jobs/(?P<namespace>[^/]+)/(?P<job_id>[^/]+)/cancel")
    def cancel(self, namespace, job_id):
        if not self._authorized() or (job := self._job(namespace, job_id)) is None:
            return
        job["plan"] = {**job["plan"], "stages": [("CANCELED", None)]}
        job["cursor"] = 0
        self.send_json({})

    def _send_noisy_sse(self, events: list[str]) -> None:
        """`events` with, under state["log_noise"], a keep-alive comment, an event that is not JSON and one
        that is not an object before each; then state["log_hold_s"] seconds of silence before the end."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        noise = ": keep-alive\n\ndata: {not json\n\ndata: [1, 2]\n\nevent: ping\n\n"
        noise = noise if self.state.get("log_noise") else ""
        for event in events:
            self.wfile.write(f"{noise}data: {event}\n\n".encode())
        self.wfile.flush()
        time.sleep(self.state.get("log_hold_s", 0))
        self.close_connection = True

    def _send_dropped_sse(self, events: list[str], cut: list[str]) -> None:
        """A chunked event stream that sends `events`, the first half of the `cut` one, and closes
        the connection before the terminating chunk."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        chunks = [f"data: {event}\n\n".encode() for event in events]
        chunks += [f"data: {event}"[: len(event) // 2].encode() for event in cut]
        for chunk in chunks:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.flush()
        self.close_connection = True


def serve_jobs_api(token: str = "hf_fake_token") -> FakeServer:
    return serve(JobsApiHandler, {"token": token, "jobs": {}})
