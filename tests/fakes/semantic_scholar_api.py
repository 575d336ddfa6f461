"""A loopback fake of the Semantic Scholar Graph API: paper lookup, citations, references, batch.

The graph comes from tests/fixtures/papers/s2_graph.json (papers with S2's field names, and
[citing, cited, isInfluential] edges); replies are shaped as the real API shapes them:
- `GET /graph/v1/paper/{id}` (id = S2 paperId or `arXiv:<id>`) -> the paper with only the requested
  `fields` plus paperId; unknown -> 404 {"error": "Paper with id ... not found"};
- `GET /graph/v1/paper/{id}/citations|references?fields=&offset=&limit=` -> {"offset", "next"?, "data":
  [{"citingPaper"|"citedPaper": {...}, "isInfluential"?}]}, "next" only when more remain; the page size
  is also capped by state["page_size"];
- `POST /graph/v1/paper/batch?fields=` with {"ids": [...]} -> a list aligned with ids, null for unknown.

state knobs: "rate_limit": n -> the next n requests answer 429 (S2's body) with Retry-After
state.get("retry_after", "1") (none when None); "fail_after": n -> every request after the first n
answers 429 with Retry-After "30"; "malformed": True -> a cut-off JSON body; "edge_nulls": True -> a
citation edge with `citingPaper.paperId` null, as S2 sometimes returns.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.fakes.server import FakeHandler, FakeServer, route, serve

GRAPH = Path(__file__).parent.parent / "fixtures" / "papers" / "s2_graph.json"
TOO_MANY = {"message": "Too Many Requests. Please wait and try again or apply for a key for higher rate limits. "
                       "https://www.semanticscholar.org/product/api#api-key-form", "code": "429"}


def load_graph() -> tuple[dict[str, dict], list[list]]:
    data = json.loads(GRAPH.read_text())
    return {p["key"]: p for p in data["papers"]}, data["edges"]


def find(papers: dict[str, dict], paper_id: str) -> dict | None:
    for paper in papers.values():
        arxiv = paper["externalIds"].get("ArXiv")
        if paper["paperId"] == paper_id or (arxiv and paper_id.lower() == f"arxiv:{arxiv}"):
            return paper
    return None


def view(paper: dict, fields: list[str]) -> dict:
    return {"paperId": paper["paperId"], **{f: paper.get(f) for f in fields if f in paper and f != "key"}}


class FakeSemanticScholarHandler(FakeHandler):
    def _refused(self) -> bool:
        self.state["served"] = self.state.get("served", 0) + 1
        if self.state.get("rate_limit", 0) > 0:
            self.state["rate_limit"] -= 1
            retry_after = self.state.get("retry_after", "1")
            self.send_json(TOO_MANY, status=429, headers={"Retry-After": retry_after} if retry_after else {})
            return True
        if "fail_after" in self.state and self.state["served"] > self.state["fail_after"]:
            self.send_json(TOO_MANY, status=429, headers={"Retry-After": "30"})
            return True
        if self.state.get("malformed"):
            self.send_text('{"offset": 0, "data": [{"citingPaper": {"paperId": "ab', content_type="application/json")
            return True
        return False

    @property
    def fields(self) -> list[str]:
        return [f for f in self.query.get("fields", "title").split(",") if f]

    @route("GET", r"/graph/v1/paper/(?P<paper_id>[^/]+)")
    def paper(self, paper_id: str):
        if self._refused():
            return
        papers, _ = load_graph()
        found = find(papers, paper_id)
        if not found:
            self.send_json({"error": f"Paper with id {paper_id} not found"}, status=404)
            return
        self.send_json(view(found, self.fields))

    @route("GET", r"/graph/v1/paper/(?P<paper_id>[^/]+)/(?P<kind>citations|references)")
    def edges(self, paper_id: str, kind: str):
        if self._refused():
            return
        papers, edges = load_graph()
        found = find(papers, paper_id)
        if not found:
            self.send_json({"error": f"Paper with id {paper_id} not found"}, status=404)
            return
        key = found["key"]
        if kind == "citations":
            linked = [(papers[a], infl) for a, b, infl in edges if b == key]
        else:
            linked = [(papers[b], infl) for a, b, infl in edges if a == key]
        wrapper = "citingPaper" if kind == "citations" else "citedPaper"
        fields = self.fields
        data = [{wrapper: view(p, fields), **({"isInfluential": infl} if "isInfluential" in fields else {})}
                for p, infl in linked]
        if self.state.get("edge_nulls") and kind == "citations":
            data.insert(0, {wrapper: {"paperId": None, "title": "Unresolved citing paper"}})
        offset = int(self.query.get("offset", 0))
        size = min(int(self.query.get("limit", 100)), self.state.get("page_size", 1000))
        reply = {"offset": offset, "data": data[offset:offset + size]}
        if offset + size < len(data):
            reply["next"] = offset + size
        self.send_json(reply)

    @route("POST", r"/graph/v1/paper/batch")
    def batch(self):
        if self._refused():
            return
        papers, _ = load_graph()
        ids = self.request_record.json().get("ids", [])
        self.send_json([view(p, self.fields) if (p := find(papers, i)) else None for i in ids])


def serve_semantic_scholar(state: dict | None = None) -> FakeServer:
    """Start the fake Graph API on loopback; point Settings.semantic_scholar_url at `server.url`."""
    return serve(FakeSemanticScholarHandler, state)
