"""A loopback HTTP server for fakes of remote services.

A fake subclasses `FakeHandler`, declares routes with `route(method, regex)` and answers with
`self.send_json(...)`, `self.send_text(...)` or `self.send_sse(...)`. `serve(handler_cls)`
starts it on 127.0.0.1 on a free port in a daemon thread; `server.url` is its base URL and
`server.requests` records every request (method, path, query, headers, body) for assertions.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""

    def json(self):
        return json.loads(self.body or b"null")


def route(method: str, pattern: str):
    """Mark a handler method as serving `method` requests whose path matches `pattern`."""
    def mark(fn):
        fn._route = (method, re.compile(pattern + r"$"))
        return fn
    return mark


class FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: dict  # shared per server, set by `serve`

    def log_message(self, *args):  # keep test output quiet
        pass

    def _dispatch(self, method: str):
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.request_record = Recorded(method, parts.path, parse_qs(parts.query),
                                       {k.lower(): v for k, v in self.headers.items()}, body)
        self.server.requests.append(self.request_record)
        for name in dir(type(self)):
            fn = getattr(type(self), name)
            spec = getattr(fn, "_route", None)
            if spec and spec[0] == method:
                match = spec[1].match(parts.path)
                if match:
                    return fn(self, **match.groupdict())
        self.send_json({"error": f"no fake route for {method} {parts.path}"}, status=404)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_HEAD(self):
        self._dispatch("HEAD")

    @property
    def query(self) -> dict[str, str]:
        return {k: v[-1] for k, v in self.request_record.query.items()}

    def send_text(self, text: str | bytes, status: int = 200, content_type: str = "text/plain",
                  headers: dict[str, str] | None = None) -> None:
        data = text.encode() if isinstance(text, str) else text
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_json(self, obj, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.send_text(json.dumps(obj), status, "application/json", headers)

    def send_sse(self, events: list[str], close_early: bool = False) -> None:
        """Stream `data:` events; with close_early the connection drops before the stream ends."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        for event in events:
            self.wfile.write(f"data: {event}\n\n".encode())
            self.wfile.flush()
        self.close_connection = True


@dataclass
class FakeServer:
    httpd: ThreadingHTTPServer
    thread: threading.Thread
    state: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> list[Recorded]:
        return self.httpd.requests

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def serve(handler_cls: type[FakeHandler], state: dict | None = None) -> FakeServer:
    state = state if state is not None else {}
    handler = type(handler_cls.__name__, (handler_cls,), {"state": state})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return FakeServer(httpd, thread, state)
