"""Finding real code on GitHub: any public repository, a paper's own repository first, or the Hugging Face
training libraries.

GitHub's REST code search (`GET /search/code`) needs a token; each hit's file is then read through
the contents API and cut to a snippet around the match. With an arXiv id, the paper's own repository
(tools.research.paper_code) is searched first; when the paper links none, repository search
(`GET /search/repositories`) offers candidates that name the paper. Files and descriptions are
third-party text: they come back fenced (tools.untrusted). The token is sent to the configured GitHub API
host only.
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
from tools.research.arxiv import arxiv_id as plain_arxiv_id
from tools.research.paper_code import paper_repository, repo_in
from tools.untrusted import fence

SCOPES = {
    "any": "",  # every public repository
    "trl": "repo:huggingface/trl",
    "peft": "repo:huggingface/peft",
    "lighteval": "repo:huggingface/lighteval",
    "transformers": "repo:huggingface/transformers path:examples",
    "huggingface": " ".join(f"repo:huggingface/{name}" for name in ("trl", "peft", "lighteval", "transformers")),
}
REPO_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}")
MAX_CANDIDATES = 3
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
    description = """Search public GitHub code (needs GITHUB_TOKEN, else use search_docs).
Returns {"hits": [{"repo", "path", "url", "snippet", "found_by"}], "paper_repository", "notes"}.
Example: search_code_examples(query="GRPOConfig num_generations", arxiv_id="2402.03300")"""
    inputs = {
        "query": {"type": "string", "description": "Code words, e.g. \"LoraConfig target_modules\"."},
        "library": {"type": "string", "nullable": True,
                    "description": "any (default), trl, peft, lighteval, transformers or huggingface."},
        "repo": {"type": "string", "nullable": True, "description": "Only this repository, 'owner/name'."},
        "arxiv_id": {"type": "string", "nullable": True, "description": "A paper; its own repo goes first."},
        "limit": {"type": "integer", "description": "Files, 1-10 (default 5).", "nullable": True},
    }
    output_type = "object"
    max_backoff_s = 10.0

    def __init__(self, ctx: ToolContext, sleep=time.sleep, max_wait_s: float = 10.0):
        super().__init__()
        self.ctx, self.max_wait_s = ctx, max_wait_s
        self._sleep = sleep

    def forward(self, query: str, library: str | None = "any", repo: str | None = None, arxiv_id: str | None = None,
                limit: int | None = 5) -> dict:
        query = " ".join((query or "").split())
        library = (library or "any").strip().lower()
        if not query:
            raise ToolError("search_code_examples needs a non-empty query, e.g. query=\"GRPOConfig reward_funcs\".")
        if library not in SCOPES:
            raise ToolError(f"Unknown library {library!r}: use one of {', '.join(SCOPES)}.")
        if SCOPE_QUALIFIER.search(query):
            raise ToolError("Leave repo:/org:/user: out of the query: pass repo='owner/name', or library=.")
        if len(query) > MAX_QUERY_CHARS:
            raise ToolError(f"The query is {len(query)} characters; GitHub accepts at most {MAX_QUERY_CHARS}. "
                            "Use a few distinctive code words.")
        if repo:
            repo = repo_in(repo) if "github.com" in repo else repo.strip().strip("/")
            if not repo or not REPO_NAME.fullmatch(repo):
                raise ToolError(f"repo must be 'owner/name' (or a github.com URL), not {repo!r}.")
        limit = max(1, min(int(limit or 5), MAX_LIMIT))
        notes: list[str] = []
        paper = None
        if arxiv_id:
            arxiv_id = plain_arxiv_id(arxiv_id)
            paper, notes = paper_repository(self.ctx.settings, arxiv_id, self.max_wait_s)
        searches = [(f"{query} repo:{repo}", "repository")] if repo else []
        if paper and not repo:
            searches.append((f"{query} repo:{paper['repo']}", "paper repository"))
        if not repo:
            searches.append((f"{query} {SCOPES[library]}".strip(), "search"))
        settings = self.ctx.settings
        api = settings.github_api_url.rstrip("/")
        headers = {"Accept": "application/vnd.github.text-match+json", "User-Agent": "ml-intern",
                   "X-GitHub-Api-Version": "2022-11-28"}
        if settings.github_token:
            headers["Authorization"] = f"Bearer {settings.github_token}"
        hits: list[dict] = []
        with httpx.Client(headers=headers, timeout=settings.http_timeout_s) as client:
            for q, found_by in searches:
                if len(hits) >= limit:
                    break
                try:
                    found = self._get_json(client, f"{api}/search/code", {"q": q, "per_page": limit})
                except ToolError as err:
                    if found_by != "paper repository" or "HTTP 422" not in str(err):
                        raise
                    notes.append(f"GitHub cannot search {paper['repo']} (HTTP 422: private, gone or not indexed); "
                                 "the hits come from the wider search.")
                    continue
                items = found.get("items") if isinstance(found, dict) else None
                if not isinstance(items, list):
                    raise ToolError("GitHub's code search reply has no `items` list; retry later or use search_docs.")
                seen = {(h["repo"], h["path"]) for h in hits}
                fresh = [i for i in items if isinstance(i, dict) and (str((i.get("repository") or {}).get(
                    "full_name", "")), str(i.get("path", ""))) not in seen]
                hits += [{**self._hit(client, api, item, query), "found_by": found_by}
                         for item in fresh[: limit - len(hits)]]
            result = {"hits": hits, "paper_repository": paper, "notes": notes}
            if arxiv_id and not paper:
                try:
                    result["repository_candidates"] = self._candidates(client, api, arxiv_id)
                    notes.append("The paper links no repository; repository_candidates name it in their name or "
                                 "description: check one, then search it with repo='owner/name'.")
                except ToolError as err:
                    notes.append(f"The paper links no repository, and repository search failed: {str(err)[:200]}")
        return result

    def _candidates(self, client: httpx.Client, api: str, paper_id: str) -> list[dict]:
        """Repositories whose name or description mention the paper's arXiv id, most starred first."""
        found = self._get_json(client, f"{api}/search/repositories",
                               {"q": f'"{paper_id}" in:name,description,readme', "sort": "stars",
                                "per_page": MAX_CANDIDATES})
        items = found.get("items") if isinstance(found, dict) else None
        return [{"repo": str(item.get("full_name", "")), "url": item.get("html_url"),
                 "stars": item.get("stargazers_count"),
                 "description": fence(item.get("description") or "", f"github:{item.get('full_name')} description",
                                      300)}
                for item in (items or [])[:MAX_CANDIDATES] if isinstance(item, dict)]

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
