"""A loopback fake of GitHub's REST code search and contents APIs.

Replies come from recorded real-shaped JSON in tests/fixtures/github/:
- `search_code.json`: a `GET /search/code` reply (total_count, incomplete_results, items with
  name, path, sha, url, git_url, html_url, repository{full_name, ...}, score, text_matches);
- `contents.json`: `GET /repositories/{id}/contents/{path}` (or `/repos/{owner}/{name}/...`) replies
  keyed "{id}/{path}", base64 `content` (empty with encoding "none" for a file over 1 MB, as GitHub does);
- `search_repositories.json`: a `GET /search/repositories` reply (items with full_name, description,
  stargazers_count, topics...); every query word must occur in full_name, description or topics;
- `errors.json`: GitHub's real error bodies.

Behaviour copied from GitHub: code search answers 401 "Requires authentication" without a token
and "Bad credentials" for a token other than `VALID_TOKEN` (contents of these public repos need
no token); `repo:` qualifiers (ORed) and `path:`
filter the items, every other word must occur in the file; `per_page` pages. URLs in replies point
back at this server. state["rate_limited"] = n makes the next n searches answer 403 with
x-ratelimit-remaining 0 and x-ratelimit-reset state["reset_in"] seconds ahead (default 1); the
query word `malformedjson` gets a body that is not JSON; `contents_rate_limited` fails contents;
a `repo:` among state["unsearchable"] answers 422, as GitHub does for a repository that is gone or not indexed.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

from tests.fakes.server import FakeHandler, FakeServer, route, serve

FIXTURES = Path(__file__).parent.parent / "fixtures" / "github"
VALID_TOKEN = "ghp_fakeValidToken0123456789abcdefABCDEF"
REAL_API = "https://api.github.com"


def load(name: str):
    return json.loads((FIXTURES / name).read_text())


def file_text(contents: dict, item: dict) -> str:
    reply = contents.get(f"{item['repository']['id']}/{item['path']}", {})
    if reply.get("encoding") == "base64":
        return base64.b64decode(reply["content"]).decode()
    return " ".join(m["fragment"] for m in item.get("text_matches", []))


class GitHubHandler(FakeHandler):
    def local(self, obj):
        """`obj` with GitHub API URLs pointing at this server."""
        host, port = self.server.server_address[:2]
        return json.loads(json.dumps(obj).replace(REAL_API, f"http://{host}:{port}"))

    def auth_error(self):
        auth = self.headers.get("Authorization")
        if auth is None:
            return load("errors.json")["unauthenticated"]
        if auth != f"Bearer {VALID_TOKEN}":
            return load("errors.json")["bad_credentials"]
        return None

    def rate_limit(self, key: str) -> bool:
        if self.state.get(key, 0) <= 0:
            return False
        self.state[key] -= 1
        reset = int(time.time() + self.state.get("reset_in", 1))
        self.send_json(load("errors.json")["rate_limited"], status=403, headers={
            "x-ratelimit-limit": "30", "x-ratelimit-remaining": "0", "x-ratelimit-used": "30",
            "x-ratelimit-reset": str(reset), "x-ratelimit-resource": "code_search"})
        return True

    @route("GET", r"/search/code")
    def search_code(self):
        error = self.auth_error()
        if error:
            return self.send_json(error, status=401)
        if self.rate_limit("rate_limited"):
            return None
        words = self.query.get("q", "").split()
        if "malformedjson" in words:
            return self.send_text('{"total_count": 1, "items": [', content_type="application/json")
        repos = {w[5:] for w in words if w.startswith("repo:")}
        if repos & set(self.state.get("unsearchable", ())):
            return self.send_json(load("errors.json")["repo_not_searchable"], status=422)
        paths = [w[5:] for w in words if w.startswith("path:")]
        terms = [w.strip('"').lower() for w in words if ":" not in w]
        if not terms:
            return self.send_json(load("errors.json")["validation_failed"], status=422)
        contents = load("contents.json")
        items = [item for item in load("search_code.json")["items"]
                 if (not repos or item["repository"]["full_name"] in repos)
                 and all(p in item["path"] for p in paths)
                 and all(t in file_text(contents, item).lower() for t in terms)]
        per_page = int(self.query.get("per_page", 30))
        self.send_json(self.local({"total_count": len(items), "incomplete_results": False,
                                   "items": items[:per_page]}))

    @route("GET", r"/search/repositories")
    def search_repositories(self):
        error = self.auth_error() if "Authorization" in self.headers else None  # works without a token too
        if error:
            return self.send_json(error, status=401)
        if self.rate_limit("rate_limited"):
            return None
        terms = [w.strip('"').lower() for w in self.query.get("q", "").split() if ":" not in w]
        items = [item for item in load("search_repositories.json")["items"]
                 if all(t in f"{item['full_name']} {item['description']} {' '.join(item['topics'])}".lower()
                        for t in terms)]
        per_page = int(self.query.get("per_page", 30))
        self.send_json(self.local({"total_count": len(items), "incomplete_results": False, "items": items[:per_page]}))

    @route("GET", r"/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)/contents/(?P<path>.+)")
    def contents_by_name(self, owner: str, name: str, path: str):
        ids = {i["repository"]["full_name"]: i["repository"]["id"] for i in load("search_code.json")["items"]}
        self.contents(str(ids.get(f"{owner}/{name}", 0)), path)

    @route("GET", r"/repositories/(?P<repo_id>\d+)/contents/(?P<path>.+)")
    def contents(self, repo_id: str, path: str):
        error = self.auth_error() if "Authorization" in self.headers else None  # public repos: no token needed
        if error:
            return self.send_json(error, status=401)
        if self.rate_limit("contents_rate_limited"):
            return None
        reply = load("contents.json").get(f"{repo_id}/{path}")
        if reply is None:
            return self.send_json({"message": "Not Found", "status": "404",
                                   "documentation_url": "https://docs.github.com/rest/repos/contents#get-repository-content"},
                                  status=404)
        self.send_json(self.local(reply))


def serve_github(state: dict | None = None) -> FakeServer:
    return serve(GitHubHandler, state)
