"""Reading a Hugging Face Jobs log incrementally from its server-sent-event stream.

The Jobs API has no read cursor: every `GET /api/jobs/{namespace}/{job_id}/logs` replays the log
from its start (or its last `tail` events), one event per line, `data: {"data": "<line>",
"timestamp": "<ISO time>"}`. `HfJobLogReader` keeps the lines already read for each job, in memory
and in `<data_dir>/jobs/<job_id>/hf_log.jsonl` (so a restarted app does not start over), and on
each read takes only the events it has not seen. An event is known by its (timestamp, text): a
replay skips as many copies of each as were read before, so lines that repeat with their own
timestamps are kept and nothing depends on the server replaying from the very first line.

Once lines are cached, a read asks only for the last `window` events; when those hold none of the
cached ones (more than `window` new lines since the last read) it replays the whole log instead.
A dropped connection, a 429 or a 5xx is retried `tries` times in all with a short backoff; what
arrived before a drop is kept, so a retry only adds what is new. A job whose log was read cleanly
`settle_s` after it was seen to end is marked complete and never fetched again. `last_event_at` says
when the job last printed (the newest event's timestamp), so a silent running job can be called stalled.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import httpcore
import httpx
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from tools.errors import ToolError

BANNER = "===== Job started"  # the platform's first line, not the job's output
JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
Key = tuple[str, str]  # (timestamp, text)


class _Dropped(Exception):
    """The stream ended before the server finished it; `cause` says how."""

    def __init__(self, cause: Exception):
        super().__init__(str(cause))
        self.cause = cause


class JobLog:
    """The lines read so far of one job, mirrored to an append-only JSON Lines file of [timestamp, text]."""

    def __init__(self, folder: Path):
        self.path = folder / "hf_log.jsonl"
        self.done_marker = folder / "hf_log.complete"
        self.lines: list[str] = []
        self.seen: Counter[Key] = Counter()
        self.last_timestamp = ""  # of the newest event read: when the job last printed
        self._unsaved: list[Key] = []
        if self.path.exists():
            for raw in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    timestamp, text = json.loads(raw)
                except (ValueError, TypeError):
                    continue  # a line cut short by a crash mid-write
                self._take((str(timestamp), str(text)))
        self.complete = self.done_marker.exists()

    def _take(self, key: Key) -> None:
        self.lines.append(key[1])
        self.seen[key] += 1
        self.last_timestamp = max(self.last_timestamp, key[0])

    def add(self, key: Key) -> None:
        self._take(key)
        self._unsaved.append(key)

    def save(self) -> None:
        if not self._unsaved:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+b") as probe:  # a crash may have left the last line without its newline
            cut = probe.tell() > 0 and probe.seek(-1, 2) is not None and probe.read(1) != b"\n"
        with self.path.open("a", encoding="utf-8") as handle:
            if cut:
                handle.write("\n")
            handle.writelines(json.dumps(list(key), ensure_ascii=False) + "\n" for key in self._unsaved)
        self._unsaved.clear()

    def mark_complete(self) -> None:
        self.complete = True
        self.done_marker.parent.mkdir(parents=True, exist_ok=True)
        self.done_marker.write_text(str(time.time()))


class HfJobLogReader:
    """Incremental, de-duplicated reads of HF Jobs logs; see the module docstring."""

    tries = 3
    backoff_s = (0.5, 1.5)  # sleep before the 2nd and 3rd try
    window = 1000  # events asked for once some are cached
    read_timeout_s = 5.0  # a running job's stream stays open: this long without an event means caught up
    settle_s = 30.0  # after a job ends, its last lines may still be arriving

    def __init__(self, api: HfApi, jobs_dir: Path, namespace: Callable[[], str],
                 sleep: Callable[[float], None] = time.sleep, connect_timeout_s: float = 20.0):
        self.api = api
        self.jobs_dir = jobs_dir
        self.namespace = namespace
        self.sleep = sleep
        self.connect_timeout_s = connect_timeout_s
        self._logs: dict[str, JobLog] = {}
        self._ended_seen: dict[str, float] = {}  # job id -> when this process first saw it end
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def job_ended(self, job_id: str) -> None:
        """Note that the job reached a terminal stage (from a status call)."""
        self._ended_seen.setdefault(job_id, time.monotonic())

    def last_event_at(self, job_id: str) -> float | None:
        """Epoch seconds of the newest log event read so far for the job (read() first), or None."""
        log = self._logs.get(job_id)
        try:
            return datetime.fromisoformat(log.last_timestamp).timestamp() if log and log.last_timestamp else None
        except ValueError:
            return None

    def read(self, job_id: str) -> tuple[list[str], str | None]:
        """All lines read so far, after fetching the new ones; and a note when the stream kept dropping."""
        if not JOB_ID.fullmatch(job_id or ""):
            raise ToolError(f"unknown job id {job_id!r} on HF Jobs; use the job_id that submit_job returned.")
        with self._locks_lock:
            lock = self._locks.setdefault(job_id, threading.Lock())
        with lock:
            log = self._logs.get(job_id)
            if log is None:
                log = self._logs[job_id] = JobLog(self.jobs_dir / job_id)
            if log.complete:
                return list(log.lines), None
            ended = self._ended_seen.get(job_id)
            failure: Exception | None = None
            for attempt in range(self.tries):
                if attempt:
                    self.sleep(self.backoff_s[min(attempt - 1, len(self.backoff_s) - 1)])
                try:
                    self._read_new(job_id, log)
                    failure = None
                    break
                except _Dropped as dropped:
                    failure = dropped.cause
                finally:
                    log.save()
            if failure is None and ended is not None and time.monotonic() - ended >= self.settle_s:
                log.mark_complete()
            note = None
            if failure is not None:
                note = (f"[ml-intern] log stream interrupted {self.tries} times ({type(failure).__name__}); "
                        f"showing the {len(log.lines)} lines read so far. Read the logs again to continue.")
            return list(log.lines), note

    def _read_new(self, job_id: str, log: JobLog) -> None:
        """Add the events of one replay that `log` has not seen; raises _Dropped when the stream breaks."""
        window = self.window if log.lines else None
        while True:
            replay: Counter[Key] = Counter()
            pending: list[Key] = []
            overlapped, count = window is None, 0
            for key in self._events(job_id, window):
                count += 1
                replay[key] += 1
                if replay[key] <= log.seen[key]:
                    if not overlapped:  # the window reaches back into what was read: the rest is new
                        overlapped = True
                        for earlier in pending:
                            log.add(earlier)
                        pending.clear()
                    continue
                if overlapped:
                    log.add(key)
                else:
                    pending.append(key)
            if overlapped or count < (window or 0):
                for key in pending:
                    log.add(key)
                return
            window = None  # more than `window` new lines since the last read: replay the whole log

    def _events(self, job_id: str, tail: int | None) -> Iterator[Key]:
        """(timestamp, text) of each log event in one request; the platform banner is left out."""
        url = f"{self.api.endpoint}/api/jobs/{self.namespace()}/{job_id}/logs"
        timeout = httpx.Timeout(self.connect_timeout_s, read=self.read_timeout_s)
        try:
            with get_session().stream("GET", url, headers=build_hf_headers(token=self.api.token),
                                      params={"tail": tail} if tail else None, timeout=timeout) as response:
                if response.status_code != 200:
                    response.read()
                    hf_raise_for_status(response)
                for line in response.iter_lines():
                    if not line.startswith("data: {"):
                        continue  # keep-alive comments, blank separators
                    try:
                        event = json.loads(line[len("data: "):])
                    except ValueError:
                        continue  # a malformed event: nothing to show
                    text = str(event.get("data", ""))
                    if not text.startswith(BANNER):
                        yield str(event.get("timestamp") or ""), text
        except HfHubHTTPError as exc:
            status = getattr(exc.response, "status_code", None)
            if status == 429 or (status or 0) >= 500:
                raise _Dropped(exc) from exc
            raise
        except (httpx.ReadTimeout, httpcore.ReadTimeout):
            return  # no event for read_timeout_s: the stream has caught up with a running job
        except (httpx.TransportError, httpx.DecodingError, httpcore.NetworkError) as exc:
            raise _Dropped(exc) from exc
