"""A loopback fake of the Hugging Face Hub's search APIs and of the dataset viewer.

Replies come from recorded real-shaped JSON in tests/fixtures/hub/:
- `datasets.json`: items as `GET /api/datasets` returns them (also served by `/api/datasets/{id}`);
- `papers_search.json`: items as `GET /api/papers/search` returns them (`/api/papers/{id}` answers an item's
  `paper` record, with `githubRepo` where the paper links its code);
- `card_<name>.md`: a dataset's README.md (dataset card). `/api/datasets/{id}` lists it in `siblings`
  and answers its YAML header as `cardData`; `HEAD|GET /datasets/{id}/resolve/{rev}/README.md` answers
  as huggingface.co does for a small (non-LFS) file: 307 to `/api/resolve-cache/datasets/{id}/{commit}/
  README.md` carrying X-Repo-Commit and ETag (the git blob id), which answers 200 with the same headers
  and the file. A file the repo lacks answers 404 EntryNotFound, a revision other than "main" or the
  repo's sha 404 RevisionNotFound, a gated repo without a granted token 401/403 GatedRepo;
- `viewer_<name>.json`: `/splits`, `/first-rows` (keyed "config/split") and `/size` replies, and
  optionally the full rows of a split (`rows`, paged by `/rows`; else `/rows` pages the first rows)
  and `/statistics` replies (`statistics`, keyed "config/split"; else 404 ResponseNotFound).

Behaviour copied from the real services: `/api/datasets` filters by `search` and `filter`, sorts
descending by `sort`, pages by `limit` with a `Link: <...>; rel="next"` header (page size capped by
state["page_size"]); unknown repos answer 401 (no token) or 404 with X-Error-Code RepoNotFound.
The viewer answers 401 ExternalUnauthenticatedError without a token and 404
ExternalAuthenticatedError with one, for unknown datasets and for gated ones the token was not
granted (state["granted_tokens"]); a dataset listed on the Hub with no viewer file answers 500
ResponseNotReady. `/rows` refuses `length` over 100 with 422 InvalidParameter.
state["rate_limit"] = n makes the next n `/api/` requests answer 429; state["server_error"] = n makes the
next n `/api/datasets/{id}` requests answer 500.

Uploads, as huggingface_hub's create_repo/create_commit speak them: `whoami-v2` (the user is a
member of the orgs in state.get("orgs", ["my-org"])), `repos/create` (409 when the repo exists, 403
in a namespace that is neither the user's nor one of their orgs), `validate-yaml` (400 on a README
whose YAML front matter does not parse), `preupload` (every file "regular") and `commit` (ndjson).
All need a bearer token (401 without); the created repos and their files land in
state["repos"][repo_id] = {"type", "private", "files": {path: bytes}, "commits": [summary]}, and
`/api/datasets/{id}` answers for a created dataset repo with its "private" flag and files.

    server = serve_hub()
    settings = hub_settings(server, Settings(data_dir=tmp), token=GRANTED_TOKEN)
    ...
    server.close()
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from urllib.parse import urlencode

import yaml

from tests.fakes.server import FakeHandler, FakeServer, route, serve
from tools.settings import Settings

FIXTURES = Path(__file__).parent.parent / "fixtures" / "hub"
GRANTED_TOKEN = "hf_fake_granted_token"
SENTIMENT = "ml-intern-fixtures/tiny-sentiment"
SHAREGPT = "ml-intern-fixtures/sharegpt-chat"
PREFERENCE = "ml-intern-fixtures/preference-pairs"
GATED = "ml-intern-fixtures/gated-medqa"
NOT_READY = "ml-intern-fixtures/still-processing"
NOISY = "ml-intern-fixtures/noisy-reviews"
INJECTION = "ml-intern-fixtures/helpful-reviews"  # its card and one row carry a prompt injection
FIXTURE_USER = "fixture-user"
FIXTURE_ORGS = ["my-org"]

SORT_KEYS = {"downloads": "downloads", "likes": "likes", "trendingScore": "trendingScore",
             "lastModified": "lastModified", "createdAt": "createdAt"}
UNAUTHENTICATED = ("The dataset does not exist, or is not accessible without authentication (private "
                   "or gated). Please check the spelling of the dataset name or retry with authentication.")
AUTHENTICATED = ("The dataset does not exist, or is not accessible with the current credentials (private "
                 "or gated). Please check the spelling of the dataset name or retry with other "
                 "authentication credentials.")
NOT_READY_MESSAGE = "The server is busier than usual and the response is not ready yet. Please retry later."


def load(name: str):
    return json.loads((FIXTURES / name).read_text())


def card_fixture(dataset: str) -> bytes | None:
    """The README.md of a fixture dataset, as stored on the Hub; None when it has no card."""
    path = FIXTURES / f"card_{dataset.split('/')[-1]}.md"
    return path.read_bytes() if dataset.startswith("ml-intern-fixtures/") and path.exists() else None


def card_data(card: bytes) -> dict:
    """The YAML header of a card, as the Hub returns it in `cardData`."""
    text = card.decode()
    return (yaml.safe_load(text.split("---")[1]) or {}) if text.startswith("---") else {}


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def viewer_fixtures() -> dict[str, dict]:
    by_id = {}
    for path in sorted(FIXTURES.glob("viewer_*.json")):
        data = json.loads(path.read_text())
        by_id[data["dataset"]] = data
    return by_id


class FakeHubHandler(FakeHandler):
    # the Hub
    def _rate_limited(self) -> bool:
        if self.state.get("rate_limit", 0) > 0:
            self.state["rate_limit"] -= 1
            self.send_json({"error": "You have exceeded our rate limit"}, status=429,
                           headers={"Retry-After": "1"})
            return True
        return False

    def _server_error(self) -> bool:
        if self.state.get("server_error", 0) > 0:
            self.state["server_error"] -= 1
            self.send_json({"error": "Internal Error - We're working hard to fix this as soon as possible!"},
                           status=500)
            return True
        return False

    @route("GET", r"/api/datasets")
    def list_datasets(self):
        if self._rate_limited():
            return
        query = self.request_record.query
        items = load("datasets.json")
        for word in query.get("search", []):
            items = [d for d in items if word.lower() in d["id"].lower()]
        for tag in query.get("filter", []):
            items = [d for d in items if tag in d["tags"]]
        if "sort" in self.query:
            key = SORT_KEYS[self.query["sort"]]
            items.sort(key=lambda d: d[key], reverse=True)
        start = int(self.query.get("cursor", 0))
        size = min(int(self.query.get("limit", 1000)), self.state.get("page_size", 1000))
        page, headers = items[start:start + size], {}
        if start + size < len(items):
            params = [(k, v) for k, values in query.items() if k != "cursor" for v in values]
            next_url = f"{self.server_url}/api/datasets?{urlencode(params + [('cursor', start + size)])}"
            headers["Link"] = f'<{next_url}>; rel="next"'
        self.send_json(page, headers=headers)

    @route("GET", r"/api/datasets/(?P<owner>[^/]+)/(?P<name>[^/]+)")
    def dataset_info(self, owner: str, name: str):
        if self._rate_limited() or self._server_error():
            return
        created = self.state.get("repos", {}).get(f"{owner}/{name}")
        if created is not None and created["type"] == "dataset":  # one a test uploaded to
            self.send_json({"id": f"{owner}/{name}", "private": created["private"],
                            "siblings": [{"rfilename": path} for path in sorted(created["files"])]})
            return
        found = [d for d in load("datasets.json") if d["id"] == f"{owner}/{name}"]
        if not found:
            status = 404 if self.token else 401
            self.send_json({"error": "Repository not found"}, status=status,
                           headers={"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})
            return
        card = card_fixture(found[0]["id"])
        siblings = [{"rfilename": ".gitattributes"}] + ([{"rfilename": "README.md"}] if card else [])
        self.send_json({**found[0], **({"cardData": card_data(card)} if card else {}), "siblings": siblings})

    # files, as hf_hub_download fetches them
    def _repo_error(self, status: int, code: str, message: str, headers: dict | None = None):
        self.send_json({"error": message}, status=status,
                       headers={"X-Error-Code": code, "X-Error-Message": message, **(headers or {})})

    def _dataset_file(self, owner: str, name: str, rev: str, path: str) -> tuple[dict, bytes] | None:
        """(the dataset's Hub entry, the file) or None after answering the Hub's error."""
        repo_id = f"{owner}/{name}"
        found = [d for d in load("datasets.json") if d["id"] == repo_id]
        if not found:
            self._repo_error(404 if self.token else 401, "RepoNotFound", "Repository not found")
            return None
        entry = found[0]
        granted = self.token in self.state.get("granted_tokens", {GRANTED_TOKEN})
        if entry["gated"] and not granted:
            if self.token:
                self._repo_error(403, "GatedRepo", f"Access to dataset {repo_id} is restricted and you are not in "
                                 f"the authorized list. Visit {self.server_url}/datasets/{repo_id} to ask for access.")
            else:
                self._repo_error(401, "GatedRepo", f"Access to dataset {repo_id} is restricted. You must have "
                                 "access to it and be authenticated to access it. Please log in.")
            return None
        if rev not in ("main", entry["sha"]):
            self._repo_error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
            return None
        data = card_fixture(repo_id) if path == "README.md" else None
        if data is None:
            self._repo_error(404, "EntryNotFound", f"{path} does not exist on \"{rev}\"",
                             headers={"X-Repo-Commit": entry["sha"]})
            return None
        return entry, data

    def _resolve(self, owner: str, name: str, rev: str, path: str):
        found = self._dataset_file(owner, name, rev, path)
        if found is None:
            return
        entry, data = found
        etag = f'"{git_blob_id(data)}"'
        location = (f"/api/resolve-cache/datasets/{owner}/{name}/{entry['sha']}/{path}?"
                    f"{urlencode({f'/{owner}/{name}/resolve/{rev}/{path}': '', 'etag': etag})}")
        self.send_text(f"Temporary Redirect. Redirecting to {location}", status=307, headers={
            "Location": location, "X-Repo-Commit": entry["sha"], "ETag": etag})

    @route("HEAD", r"/datasets/(?P<owner>[^/]+)/(?P<name>[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)")
    def resolve_head(self, owner: str, name: str, rev: str, path: str):
        self._resolve(owner, name, rev, path)

    @route("GET", r"/datasets/(?P<owner>[^/]+)/(?P<name>[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)")
    def resolve_get(self, owner: str, name: str, rev: str, path: str):
        self._resolve(owner, name, rev, path)

    def _resolve_cache(self, owner: str, name: str, commit: str, path: str):
        found = self._dataset_file(owner, name, commit, path)
        if found is not None:
            entry, data = found
            self.send_text(data, content_type="text/plain; charset=utf-8", headers={
                "X-Repo-Commit": entry["sha"], "ETag": f'"{git_blob_id(data)}"', "Accept-Ranges": "bytes"})

    @route("HEAD", r"/api/resolve-cache/datasets/(?P<owner>[^/]+)/(?P<name>[^/]+)/(?P<commit>[^/]+)/(?P<path>.+)")
    def resolve_cache_head(self, owner: str, name: str, commit: str, path: str):
        self._resolve_cache(owner, name, commit, path)

    @route("GET", r"/api/resolve-cache/datasets/(?P<owner>[^/]+)/(?P<name>[^/]+)/(?P<commit>[^/]+)/(?P<path>.+)")
    def resolve_cache_get(self, owner: str, name: str, commit: str, path: str):
        self._resolve_cache(owner, name, commit, path)

    # uploads
    def _authorised(self) -> bool:
        if not self.token:
            self.send_json({"error": "Invalid credentials in Authorization header"}, status=401)
            return False
        return True

    @route("GET", r"/api/whoami-v2")
    def whoami(self):
        if self._authorised():
            orgs = [{"type": "org", "name": org, "fullname": org, "roleInOrg": "write"}
                    for org in self.state.get("orgs", FIXTURE_ORGS)]
            self.send_json({"type": "user", "name": FIXTURE_USER, "fullname": "Fixture User", "orgs": orgs,
                            "auth": {"type": "access_token", "accessToken": {"role": "write"}}})

    @route("POST", r"/api/repos/create")
    def create_repo(self):
        if not self._authorised():
            return
        body = self.request_record.json()
        namespace = body.get("organization") or FIXTURE_USER
        if namespace not in [FIXTURE_USER, *self.state.get("orgs", FIXTURE_ORGS)]:
            self.send_json({"error": f"You don't have the rights to create a {body.get('type', 'model')} under "
                                     f"the namespace \"{namespace}\""}, status=403)
            return
        repo_id = f"{namespace}/{body['name']}"
        repos = self.state.setdefault("repos", {})
        url = f"{self.server_url}/{'datasets/' if body.get('type') == 'dataset' else ''}{repo_id}"
        if repo_id in repos:
            self.send_json({"error": "You already created this dataset repo", "url": url}, status=409)
            return
        repos[repo_id] = {"type": body.get("type", "model"), "files": {}, "commits": [],
                          "private": body.get("private", body.get("visibility") == "private")}
        self.send_json({"url": url, "name": repo_id, "id": hashlib.sha1(repo_id.encode()).hexdigest()[:24]})

    @route("POST", r"/api/validate-yaml")
    def validate_yaml(self):
        content = self.request_record.json()["content"]
        front = content.split("---")[1] if content.startswith("---") else ""
        try:
            yaml.safe_load(front)
        except yaml.YAMLError as err:
            self.send_json({"errors": [{"message": f"Invalid YAML: {err}"}], "warnings": []}, status=400)
            return
        self.send_json({"errors": [], "warnings": []})

    def _repo(self, kind: str, owner: str, name: str) -> dict | None:
        repo = self.state.get("repos", {}).get(f"{owner}/{name}")
        if repo is None or repo["type"] != kind.rstrip("s"):
            self.send_json({"error": "Repository not found"}, status=404,
                           headers={"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})
            return None
        return repo

    @route("POST", r"/api/(?P<kind>models|datasets|spaces)/(?P<owner>[^/]+)/(?P<name>[^/]+)/preupload/(?P<rev>[^/]+)")
    def preupload(self, kind: str, owner: str, name: str, rev: str):
        if self._authorised() and self._repo(kind, owner, name) is not None:
            files = self.request_record.json()["files"]
            self.send_json({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                                       "oid": None} for f in files], "commitOid": "0" * 40})

    @route("POST", r"/api/(?P<kind>models|datasets|spaces)/(?P<owner>[^/]+)/(?P<name>[^/]+)/commit/(?P<rev>[^/]+)")
    def commit(self, kind: str, owner: str, name: str, rev: str):
        if not self._authorised():
            return
        repo = self._repo(kind, owner, name)
        if repo is None:
            return
        lines = [json.loads(line) for line in self.request_record.body.decode().splitlines() if line.strip()]
        for item in lines:
            if item["key"] == "file":
                repo["files"][item["value"]["path"]] = base64.b64decode(item["value"]["content"])
        summary = next(item["value"]["summary"] for item in lines if item["key"] == "header")
        repo["commits"].append(summary)
        oid = hashlib.sha1(f"{owner}/{name}:{len(repo['commits'])}".encode()).hexdigest()
        self.send_json({"commitUrl": f"{self.server_url}/{kind}/{owner}/{name}/commit/{oid}",
                        "commitOid": oid, "pullRequestUrl": None, "success": True})

    @route("GET", r"/api/papers/search")
    def search_papers(self):
        if self._rate_limited():
            return
        words = [w.lower() for w in self.query.get("q", "").split() if len(w) > 2]
        scored = []
        for item in load("papers_search.json"):
            text = f"{item['title']} {item['summary']} {' '.join(item['paper']['ai_keywords'])}".lower()
            score = sum(w in text for w in words)
            if score:
                scored.append((score, item))
        scored.sort(key=lambda pair: -pair[0])
        limit = int(self.query.get("limit", 120))
        self.send_json([item for _, item in scored][:limit])

    @route("GET", r"/api/papers/(?P<paper_id>\d{4}\.\d{4,5})")
    def paper_info(self, paper_id: str):
        """`GET /api/papers/{id}`: the paper record of a papers_search.json item (githubRepo where it has one)."""
        if self._rate_limited():
            return
        found = [item["paper"] for item in load("papers_search.json") if item["paper"]["id"] == paper_id]
        if not found:
            return self.send_json({"error": "Paper not found"}, status=404)
        self.send_json(found[0])

    # the dataset viewer
    @property
    def token(self) -> str | None:
        auth = self.request_record.headers.get("authorization", "")
        return auth.removeprefix("Bearer ").strip() or None

    @property
    def server_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def _viewer_error(self, status: int, code: str, message: str):
        self.send_json({"error": message}, status=status, headers={"X-Error-Code": code})

    def _viewer_dataset(self) -> dict | None:
        """The viewer fixture for ?dataset=, or None after answering with the real error."""
        dataset = self.query.get("dataset")
        if not dataset:
            self._viewer_error(422, "MissingRequiredParameter", "Parameter 'dataset' is required")
            return None
        hub = {d["id"]: d for d in load("datasets.json")}
        granted = self.token in self.state.get("granted_tokens", {GRANTED_TOKEN})
        if dataset not in hub or (hub[dataset]["gated"] and not granted):
            if self.token:
                self._viewer_error(404, "ExternalAuthenticatedError", AUTHENTICATED)
            else:
                self._viewer_error(401, "ExternalUnauthenticatedError", UNAUTHENTICATED)
            return None
        fixture = viewer_fixtures().get(dataset)
        if fixture is None:
            self._viewer_error(500, "ResponseNotReady", NOT_READY_MESSAGE)
        return fixture

    @route("GET", r"/splits")
    def splits(self):
        fixture = self._viewer_dataset()
        if fixture:
            self.send_json(fixture["splits"])

    def _viewer_split(self):
        """The viewer fixture and its "config/split" key, or (None, None) after answering the error."""
        fixture = self._viewer_dataset()
        if not fixture:
            return None, None
        key = f"{self.query.get('config')}/{self.query.get('split')}"
        if key not in fixture["first-rows"]:
            self._viewer_error(404, "ResponseNotFound", "Not found.")
            return None, None
        return fixture, key

    @route("GET", r"/first-rows")
    def first_rows(self):
        fixture, key = self._viewer_split()
        if fixture:
            self.send_json(fixture["first-rows"][key])

    @route("GET", r"/rows")
    def rows(self):
        fixture, key = self._viewer_split()
        if not fixture:
            return
        offset, length = int(self.query.get("offset", 0)), int(self.query.get("length", 100))
        if length > 100 or length < 0 or offset < 0:
            self._viewer_error(422, "InvalidParameter", "Parameter 'length' must be between 0 and 100 "
                               "and 'offset' must be positive")
            return
        first = fixture["first-rows"][key]
        rows = fixture.get("rows", {}).get(key) or [item["row"] for item in first["rows"]]
        page = rows[offset:offset + length]
        self.send_json({"features": first["features"],
                        "rows": [{"row_idx": offset + i, "row": row, "truncated_cells": []}
                                 for i, row in enumerate(page)],
                        "num_rows_total": len(rows), "num_rows_per_page": 100, "partial": False})

    @route("GET", r"/statistics")
    def statistics(self):
        fixture = self._viewer_dataset()
        if not fixture:
            return
        key = f"{self.query.get('config')}/{self.query.get('split')}"
        if key not in fixture.get("statistics", {}):
            self._viewer_error(404, "ResponseNotFound", "Not found.")
            return
        self.send_json(fixture["statistics"][key])

    @route("GET", r"/size")
    def size(self):
        fixture = self._viewer_dataset()
        if fixture:
            self.send_json(fixture["size"])


def serve_hub(state: dict | None = None) -> FakeServer:
    """Start the fake Hub + dataset viewer on loopback; both base URLs are `server.url`."""
    return serve(FakeHubHandler, state)


def hub_settings(server: FakeServer, base: Settings, token: str | None = None) -> Settings:
    """`base` pointed at the fake for both the Hub API and the dataset viewer."""
    return base.with_(hf_endpoint=server.url, datasets_server_url=server.url, hf_token=token)
