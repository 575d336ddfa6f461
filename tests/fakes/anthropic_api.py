"""A loopback Anthropic Messages API (`POST /v1/messages`) with scripted replies.

`start_fake_anthropic(replies)` serves the replies in order, one per request, each a string or
`{"text": ..., "stop_reason": ...}`. A reply is cut at the first of the request's
`stop_sequences` it contains, as the real API does. Non-streaming requests get a `message`
object; `stream: true` gets server-sent events in the API's order (message_start, ping,
content_block_start, content_block_delta x N, content_block_stop, message_delta, message_stop).

Prompt caching is simulated: blocks up to each `cache_control` breakpoint are written to the
cache, and a later request whose leading blocks were written reads them (token counts are
characters / 4). Errors use the API's JSON shape: a wrong key gets 401 (the key comes as
`x-api-key` or, as anthropic 2.14 sends it, `Authorization: Bearer`); the state keys
`rate_limit_next` (how many requests get 429 with `retry-after`) and `fail` ((status, type,
message) for every request) script the rest.

A reply can also be a scripted fault, as the real API and the networks in front of it fail:
`{"status": 529, "error": "overloaded_error", "message": ..., "retry_after": "0.2"}` answers with
that error (retry-after optional); `{"hang_s": 30}` takes the request and sends nothing for that long;
a streamed reply with `"cut_after": N` sends N text chunks and then drops the connection mid-body
(`"cut": "close"` ends the body cleanly instead, still without `message_stop`); `"error_after": N`
sends N chunks and then an `error` event (`"error": "overloaded_error"` by default) as the API does
when it fails mid-stream; `"stall_after": N, "stall_s": S` goes silent for S seconds after N chunks.
Streams use chunked transfer encoding, as the real API's do.
"""

from __future__ import annotations

import json
import math
import time

from tests.fakes.server import FakeHandler, FakeServer, route, serve

FAKE_KEY = "sk-ant-fake-key"


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


class AnthropicHandler(FakeHandler):
    def send_error_json(self, status: int, kind: str, message: str, headers: dict | None = None) -> None:
        body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake_error"}
        self.send_json(body, status=status, headers={"request-id": "req_fake_error", **(headers or {})})

    def send_events(self, events: list[dict], fault: dict | None = None) -> None:
        """Server-sent events in chunked encoding; `fault` (from the reply) breaks the stream mid-way."""
        fault = fault or {}
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        deltas = 0
        for event in events:
            if event["type"] == "content_block_delta":
                if deltas == fault.get("stall_after"):
                    time.sleep(fault.get("stall_s", 30))
                if deltas == fault.get("error_after"):
                    kind = fault.get("error", "overloaded_error")
                    event = {"type": "error", "error": {"type": kind, "message": fault.get("message", "Overloaded")}}
                    self.write_chunk(f"event: error\ndata: {json.dumps(event)}\n\n")
                    break
                if deltas == fault.get("cut_after"):
                    if fault.get("cut") == "close":
                        break
                    return self.connection.shutdown(2)  # the body stops mid-way: no closing chunk
                deltas += 1
            self.write_chunk(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n")
        self.write_chunk("")

    def write_chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def cache_usage(self, body: dict) -> dict:
        """Simulated prompt caching: read the longest cached prefix, write up to the last breakpoint."""
        system = body.get("system") or []
        blocks = [{"role": "system", **b} for b in ([{"type": "text", "text": system}]
                                                     if isinstance(system, str) else system)]
        for message in body["messages"]:
            content = message["content"]
            content = [{"type": "text", "text": content}] if isinstance(content, str) else content
            blocks += [{"role": message["role"], **b} for b in content]
        keys = [json.dumps({k: v for k, v in b.items() if k != "cache_control"}, sort_keys=True) for b in blocks]
        sizes = [_tokens(b.get("text", "")) or 1 for b in blocks]
        breakpoints = [i + 1 for i, b in enumerate(blocks) if "cache_control" in b]
        cache = self.state.setdefault("cache", set())
        last = breakpoints[-1] if breakpoints else 0
        read = max((k for k in range(1, last + 1) if "\n".join(keys[:k]) in cache), default=0)
        for k in breakpoints:
            cache.add("\n".join(keys[:k]))
        return {"input_tokens": sum(sizes[last:]), "cache_read_input_tokens": sum(sizes[:read]),
                "cache_creation_input_tokens": sum(sizes[read:last])}

    @route("POST", "/v1/messages")
    def messages(self):
        bearer = (self.headers.get("authorization") or "").removeprefix("Bearer ")
        if (self.headers.get("x-api-key") or bearer) != self.state.get("api_key", FAKE_KEY):
            return self.send_error_json(401, "authentication_error", "invalid x-api-key")
        if not self.headers.get("anthropic-version"):
            return self.send_error_json(400, "invalid_request_error", "anthropic-version: header is required")
        if self.state.get("rate_limit_next", 0) > 0:
            self.state["rate_limit_next"] -= 1
            return self.send_error_json(
                429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit",
                headers={"retry-after": str(self.state.get("retry_after", "1"))})
        if self.state.get("fail"):
            return self.send_error_json(*self.state["fail"])
        body = json.loads(self.request_record.body)
        replies = self.state.setdefault("replies", [])
        if not replies:
            return self.send_error_json(500, "api_error", "the fake Anthropic API has no scripted reply left")
        reply = replies.pop(0)
        reply = {"text": reply} if isinstance(reply, str) else reply
        if "hang_s" in reply:  # an endpoint that takes the request and never answers
            time.sleep(reply["hang_s"])
            self.close_connection = True
            return
        if "status" in reply:
            retry = {"retry-after": reply["retry_after"]} if "retry_after" in reply else {}
            return self.send_error_json(reply["status"], reply.get("error", "api_error"),
                                        reply.get("message", "Internal server error"), headers=retry)
        text, stop_reason, stop_sequence = reply["text"], reply.get("stop_reason", "end_turn"), None
        hits = [(text.find(s), s) for s in body.get("stop_sequences") or [] if s in text]
        if hits:
            cut, stop_sequence = min(hits)
            text, stop_reason = text[:cut], "stop_sequence"
        usage = {**self.cache_usage(body), "output_tokens": _tokens(text)}
        self.state["served"] = self.state.get("served", 0) + 1
        message = {"id": f"msg_fake_{self.state['served']:03d}", "type": "message", "role": "assistant",
                   "model": body["model"], "content": [{"type": "text", "text": text}],
                   "stop_reason": stop_reason, "stop_sequence": stop_sequence, "usage": usage}
        if not body.get("stream"):
            return self.send_json(message, headers={"request-id": f"req_fake_{self.state['served']:03d}"})
        chunks = [text[i:i + 7] for i in range(0, len(text), 7)]
        self.send_events(
            [{"type": "message_start", "message": {**message, "content": [], "stop_reason": None,
                                                   "usage": {**usage, "output_tokens": 1}}},
             {"type": "ping"},
             {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}]
            + [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": chunk}}
               for chunk in chunks]
            + [{"type": "content_block_stop", "index": 0},
               {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                "usage": {"output_tokens": usage["output_tokens"]}},
               {"type": "message_stop"}], fault=reply)


def start_fake_anthropic(replies: list[str | dict] | None = None, **state) -> FakeServer:
    """Serve the Messages API on loopback; `server.url` is the `base_url` for `anthropic.Anthropic`."""
    return serve(AnthropicHandler, {"replies": list(replies or []), **state})
