"""Finding real usage examples in the Hugging Face training libraries through GitHub code search.

GitHub's REST code search (`GET /search/code`) needs a token; each hit's file is then read through
the contents API and cut to a snippet around the match. Files are third-party text: every snippet
comes back fenced (tools.untrusted). The token is sent to the configured GitHub API host only.
"""

from __future__ import annotations

import base64
import re
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, quote, urlsplit

import httpx
from smolagents import Tool

from tools.context import ToolContext
from tools.errors import ToolError
from tools.untrusted import fence

SCOPES = {
    "trl": "repo:huggingface/trl",
    "peft": "repo:huggingface/peft",
    "lighteval": "repo:huggingface/lighteval",
    "transformers": "repo:huggingface/transformers path:examples",
    "any": "repo:huggingface/trl repo:huggingface/peft repo:huggingface/lighteval repo:huggingface/transformers",
}
MAX_LIMIT = 10
MAX_QUERY_CHARS = 256
SNIPPET_CHARS = 1500
LINES_BEFORE, LINES_AFTER = 8, 30
SCOPE_QUALIFIER = re.compile(r"(^|\s)-?(repo|org|user):", re.IGNORECASE)
NO_TOKEN = ("search_code_examples needs a GitHub token: GitHub's code search API answers 401 "
            "'Requires authentication' without one. Set GITHUB_TOKEN (a fine-grained token with "
            "public read access is enough) and retry. Offline, without a token, use "
            "lookup_api(name=...) for exact signatures and config defaults and search_docs(query=...) "
            "for the installed libraries' docstrings.")


def _message(reply: httpx.Response) -> str:
    try:
        return str(reply.json().get("message", ""))[:200]
    except (ValueError, AttributeError):
        return reply.text[:200]


def _rate_limit_wait(reply: httpx.Response) -> float | None:
    """Seconds until GitHub lets us retry, or None when the reply is not a rate limit."""
    headers = reply.headers
    if reply.status_code not in (403, 429):
        return None
    if headers.get("retry-after", "").strip().isdigit():
        return float(headers["retry-after"])
    if headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset", "").isdigit():
        return max(0.0, float(headers["x-ratelimit-reset"]) - time.time()) + 1.0
    if reply.status_code == 429 or "rate limit" in _message(reply).lower():
        return 60.0
    return None


def best_line(lines: list[str], terms: list[str]) -> int:
    """Index of the first line holding the most distinct query terms (0 when none match)."""
    best, best_hits = 0, 0
    for i, line in enumerate(lines):
        low = line.lower()
        hits = sum(1 for term in terms if term in low)
        if hits > best_hits:
            best, best_hits = i, hits
    return best


def snippet_around(text: str, query: str) -> tuple[str, int]:
    """A window of lines around the best match of `query` in `text`, and its first line number."""
    terms = [t.strip('"').lower() for t in query.split() if ":" not in t and t.strip('"')]
    lines = text.splitlines()
    at = best_line(lines, terms)
    start = max(0, at - LINES_BEFORE)
    return "\n".join(lines[start:at + LINES_AFTER]), start + 1


class SearchCodeExamplesTool(Tool):
    name = "search_code_examples"
    description = """Search TRL, PEFT, lighteval and the transformers examples on GitHub for real code using
an API. Needs GITHUB_TOKEN; without it use lookup_api and search_docs.
Returns [{"repo", "path", "url", "start_line", "snippet"}].
Example: search_code_examples(query="SFTConfig packing", library="trl", limit=3)"""
    inputs = {
        "query": {"type": "string", "description": "Code words, e.g. \"LoraConfig target_modules\"; no repo:/org:."},
        "library": {"type": "string", "description": "trl (default), peft, lighteval, transformers (examples) or any.",
                    "nullable": True},
        "limit": {"type": "integer", "description": "Maximum number of files (1-10, default 5).",
                  "nullable": True},
    }
    output_type = "object"
    max_backoff_s = 10.0

    def __init__(self, ctx: ToolContext, sleep=time.sleep):
        super().__init__()
        self.ctx = ctx
        self._sleep = sleep

    def forward(self, query: str, library: str | None = "trl", limit: int | None = 5) -> list[dict]:
        query = " ".join((query or "").split())
        library = (library or "trl").strip().lower()
        if not query:
            raise ToolError("search_code_examples needs a non-empty query, e.g. query=\"GRPOConfig reward_funcs\".")
        if library not in SCOPES:
            raise ToolError(f"Unknown library {library!r}: use one of {', '.join(SCOPES)}.")
        if SCOPE_QUALIFIER.search(query):
            raise ToolError("Leave repo:/org:/user: out of the query: the library argument picks the repositories.")
        if len(query) > MAX_QUERY_CHARS:
            raise ToolError(f"The query is {len(query)} characters; GitHub accepts at most {MAX_QUERY_CHARS}. "
                            "Use a few distinctive code words.")
        limit = max(1, min(int(limit or 5), MAX_LIMIT))
        settings = self.ctx.settings
        api = settings.github_api_url.rstrip("/")
        headers = {"Accept": "application/vnd.github.text-match+json", "User-Agent": "ml-intern",
                   "X-GitHub-Api-Version": "2022-11-28"}
        if settings.github_token:
            headers["Authorization"] = f"Bearer {settings.github_token}"
        with httpx.Client(headers=headers, timeout=settings.http_timeout_s) as client:
            found = self._get_json(client, f"{api}/search/code",
                                   {"q": f"{query} {SCOPES[library]}", "per_page": limit})
            items = found.get("items") if isinstance(found, dict) else None
            if not isinstance(items, list):
                raise ToolError("GitHub's code search reply has no `items` list; retry later or use search_docs.")
            return [self._hit(client, api, item, query) for item in items[:limit] if isinstance(item, dict)]

    def _get_json(self, client: httpx.Client, url: str, params: dict | None = None, backoff: bool = True):
        for attempt in (1, 2):
            try:
                reply = client.get(url, params=params)
            except httpx.HTTPError as err:
                raise ToolError(f"Could not reach GitHub at {self.ctx.settings.github_api_url} "
                                f"({type(err).__name__}); check the network and retry.") from err
            wait = _rate_limit_wait(reply)
            if wait is None:
                break
            if backoff and attempt == 1 and wait <= self.max_backoff_s:
                self._sleep(wait)
                continue
            resets = datetime.fromtimestamp(time.time() + wait, UTC).strftime("%H:%M:%S UTC")
            raise ToolError(f"GitHub is rate limiting code search (HTTP {reply.status_code}: {_message(reply)}); "
                            f"it allows requests again at about {resets} (in {wait:.0f} s). Retry then, or use "
                            "search_docs/lookup_api meanwhile.")
        if reply.status_code == 401:
            if "Authorization" in client.headers:
                raise ToolError(f"GitHub rejected GITHUB_TOKEN (HTTP 401: {_message(reply)}); set a valid token.")
            raise ToolError(NO_TOKEN)
        if reply.status_code == 422:
            raise ToolError(f"GitHub could not run this search (HTTP 422: {_message(reply)}); "
                            "simplify the query to a few code words.")
        if reply.status_code >= 400:
            raise ToolError(f"GitHub answered HTTP {reply.status_code} ({_message(reply)}) for {urlsplit(url).path}; "
                            "retry later or use search_docs.")
        try:
            return reply.json()
        except ValueError as err:
            raise ToolError(f"GitHub's reply from {urlsplit(url).path} is not valid JSON; retry later "
                            "or use search_docs.") from err

    def _hit(self, client: httpx.Client, api: str, item: dict, query: str) -> dict:
        repo = str((item.get("repository") or {}).get("full_name", ""))
        path = str(item.get("path", ""))
        source = f"github:{repo}/{path}"
        text, start = self._file_text(client, api, item, repo, path), 1
        if text is not None:
            text, start = snippet_around(text, query)
        else:
            fragments = [m.get("fragment", "") for m in item.get("text_matches") or [] if isinstance(m, dict)]
            text = "\n...\n".join(f for f in fragments if f) or "(the file could not be fetched; open the url)"
        return {"repo": repo, "path": path, "url": item.get("html_url"), "start_line": start,
                "snippet": fence(text, source, SNIPPET_CHARS)}

    def _file_text(self, client: httpx.Client, api: str, item: dict, repo: str, path: str) -> str | None:
        """The file's text through the contents API, or None when it cannot be had."""
        url = str(item.get("url") or "")
        if not url.startswith(api + "/"):  # never send the token to a host we were not configured for
            ref = parse_qs(urlsplit(url).query).get("ref", [None])[0]
            url = f"{api}/repos/{repo}/contents/{quote(path)}" + (f"?ref={quote(ref)}" if ref else "")
        try:
            reply = self._get_json(client, url, backoff=False)
        except ToolError:
            return None
        if not isinstance(reply, dict) or reply.get("encoding") != "base64" or not reply.get("content"):
            return None  # GitHub leaves `content` empty for files over 1 MB
        try:
            return base64.b64decode(reply["content"]).decode("utf-8", errors="replace")
        except ValueError:
            return None
