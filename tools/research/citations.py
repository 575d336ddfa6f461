"""Following a paper's citation graph on the Semantic Scholar Graph API to the papers that matter
for a goal: a short ranked list with a reason per paper, not a dump.

How a candidate is scored (each part in [0, 1]; `year` is this year):
    relevance   = share of the goal's words found in the title + abstract (prefix match for words of 4+ letters)
    citations   = min(1, log10(1 + citationCount) / 4)               # 10,000 citations -> 1
    influential = min(1, log10(1 + influentialCitationCount) / 3)    # 1,000 influential -> 1
    recency     = max(0, 1 - (year - paper year) / 10)               # unknown year -> 0
    score       = (0.45 relevance + 0.25 citations + 0.15 influential + 0.15 recency) * 0.85 ** (depth - 1)

Traversal: depth 1 is the seed's references and citations; each further level expands only the `expand`
best-scored papers of the level before, so requests stay bounded (2 + 2 * expand per level after the first).
"""

from __future__ import annotations

import math
import re
from datetime import date

import httpx
from smolagents import Tool

from tools.backends.hub import cap_text, hf_api, hub_errors
from tools.context import ToolContext
from tools.errors import ToolError
from tools.research.arxiv import USER_AGENT, RemoteError, Waiter, arxiv_id, polite_get
from tools.settings import Settings

FIELDS = "title,year,citationCount,influentialCitationCount,externalIds,abstract"
WEIGHTS = {"relevance": 0.45, "citations": 0.25, "influential": 0.15, "recency": 0.15}
DEPTH_DECAY = 0.85
STOPWORDS = set("a an as at be by in is of on or to the and for with from into that this our their via using use "
                "are was were how what which improve improving model models language large llm llms paper method new"
                .split())


def words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9][a-z0-9-]+", (text or "").lower()) if w not in STOPWORDS}


def matched_terms(goal: set[str], text: str) -> list[str]:
    found = words(text)
    return sorted(g for g in goal if g in found or (len(g) >= 4 and any(w.startswith(g) for w in found)))


def score(paper: dict, goal: set[str], year: int) -> tuple[float, list[str]]:
    """The documented score of a candidate and the goal words it matched."""
    terms = matched_terms(goal, f"{paper.get('title') or ''} {paper.get('abstract') or ''}")
    parts = {
        "relevance": len(terms) / len(goal) if goal else 0.0,
        "citations": min(1.0, math.log10(1 + (paper.get("citationCount") or 0)) / 4),
        "influential": min(1.0, math.log10(1 + (paper.get("influentialCitationCount") or 0)) / 3),
        "recency": max(0.0, 1 - (year - paper["year"]) / 10) if paper.get("year") else 0.0,
    }
    total = sum(WEIGHTS[k] * v for k, v in parts.items()) * DEPTH_DECAY ** (paper["depth"] - 1)
    return round(total, 4), terms


class SemanticScholar:
    """The few Graph API calls we need, sharing one wait budget and counting requests."""

    def __init__(self, settings: Settings, waiter: Waiter, page_size: int = 100, max_pages: int = 2):
        self.base = f"{settings.semantic_scholar_url.rstrip('/')}/graph/v1/paper"
        self.timeout, self.waiter = settings.http_timeout_s, waiter
        self.page_size, self.max_pages, self.requests, self.cut = page_size, max_pages, 0, 0

    def get(self, path: str, **params) -> dict:
        self.requests += 1
        reply = polite_get(f"{self.base}/{path}", params, timeout=self.timeout, waiter=self.waiter,
                           label="Semantic Scholar")
        try:
            body = reply.json()
        except ValueError as err:
            raise RemoteError(f"Semantic Scholar returned malformed JSON (HTTP {reply.status_code})",
                              reply.status_code) from err
        if reply.status_code != 200 or not isinstance(body, dict):
            message = body.get("error") or body.get("message") if isinstance(body, dict) else None
            raise RemoteError(f"Semantic Scholar answered HTTP {reply.status_code} ({cap_text(message, 150)})",
                              reply.status_code)
        return body

    def paper(self, paper_id: str) -> dict:
        return self.get(paper_id, fields=FIELDS)

    def neighbours(self, paper_id: str, kind: str) -> list[dict]:
        """The papers `paper_id` cites (kind="references") or that cite it ("citations"), paged."""
        key = "citedPaper" if kind == "references" else "citingPaper"
        found, offset = [], 0
        for _ in range(self.max_pages):
            page = self.get(f"{paper_id}/{kind}", fields=f"{FIELDS},isInfluential", offset=offset,
                            limit=self.page_size)
            found += [{**e[key], "isInfluential": e.get("isInfluential")} for e in page.get("data") or []
                      if (e.get(key) or {}).get("paperId")]
            if page.get("next") is None:
                return found
            offset = page["next"]
        self.cut += 1
        return found


def citation_counts(settings: Settings, ids: list[str]) -> dict[str, int]:
    """{arxiv_id: citationCount} from one Semantic Scholar batch call, no retries; RemoteError on failure."""
    url = f"{settings.semantic_scholar_url.rstrip('/')}/graph/v1/paper/batch"
    try:
        reply = httpx.post(url, params={"fields": "citationCount,externalIds"},
                           json={"ids": [f"ARXIV:{i}" for i in ids]}, timeout=settings.http_timeout_s,
                           headers={"User-Agent": USER_AGENT})
        body = reply.json() if reply.status_code == 200 else None
    except (httpx.HTTPError, ValueError) as err:
        raise RemoteError(f"Semantic Scholar batch lookup failed ({type(err).__name__})") from err
    if not isinstance(body, list):
        raise RemoteError(f"Semantic Scholar batch lookup answered HTTP {reply.status_code}", reply.status_code)
    return {i: p["citationCount"] for i, p in zip(ids, body, strict=False) if p and p.get("citationCount") is not None}


def reason(paper: dict, terms: list[str]) -> str:
    cites = f"{paper.get('citationCount') or 0:,} citations ({paper.get('influentialCitationCount') or 0} influential)"
    goal = f"matches goal: {', '.join(terms)}" if terms else "no goal words in title/abstract"
    return " · ".join([paper["relation"], cites, str(paper.get("year") or "year unknown"), goal])


def entry(rank: int, paper: dict) -> dict:
    ids = paper.get("externalIds") or {}
    return {"rank": rank, "title": cap_text(paper.get("title"), 200), "arxiv_id": ids.get("ArXiv"),
            "year": paper.get("year"), "citation_count": paper.get("citationCount"),
            "influential_citation_count": paper.get("influentialCitationCount"), "depth": paper["depth"],
            "score": paper["score"], "reason": paper["reason"]}


def citation_graph(settings: Settings, paper_id: str, goal: str, depth: int = 2, budget: int = 15,
                   expand: int = 3, max_wait_s: float = 10.0, year: int | None = None) -> dict:
    """Traverse and rank the citation graph around `paper_id` for `goal` (see the module docstring)."""
    seed_id, year = arxiv_id(paper_id), year or date.today().year
    goal_words, notes = words(goal), []
    s2 = SemanticScholar(settings, Waiter(max_wait_s))
    try:
        seed = s2.paper(f"arXiv:{seed_id}")
    except RemoteError as err:
        return hf_fallback(settings, seed_id, goal, budget, f"Semantic Scholar failed for the seed ({err})")
    found: dict[str, dict] = {}
    frontier, expanded = [seed], []
    for level in range(1, depth + 1):
        for node in frontier:
            near = "the seed" if node is seed else f"'{cap_text(node.get('title'), 60)}'"
            try:
                for kind, relation in (("references", f"cited by {near}"), ("citations", f"cites {near}")):
                    for paper in s2.neighbours(node["paperId"], kind):
                        pid = paper["paperId"]
                        if pid == seed["paperId"] or pid in found:
                            continue
                        found[pid] = {**paper, "depth": level, "relation": relation}
                        found[pid]["score"], terms = score(found[pid], goal_words, year)
                        found[pid]["reason"] = reason(found[pid], terms)
            except RemoteError as err:
                notes.append(f"Semantic Scholar failed at depth {level} ({err}); ranking what was fetched before.")
                break
        if notes or level == depth:
            break
        level_papers = [p for p in found.values() if p["depth"] == level]
        frontier = sorted(level_papers, key=lambda p: -p["score"])[:expand]
        expanded += [cap_text(p.get("title"), 80) for p in frontier]
    if not found and notes:
        return hf_fallback(settings, seed_id, goal, budget, notes[0])
    if s2.cut:
        notes.append(f"{s2.cut} citation list(s) had more than {s2.max_pages} pages; only the first "
                     f"{s2.max_pages} pages of each were ranked.")
    ranked = sorted(found.values(), key=lambda p: (-p["score"], -(p.get("citationCount") or 0), p.get("title") or ""))
    return {
        "seed": {"arxiv_id": seed_id, "title": cap_text(seed.get("title"), 200), "year": seed.get("year"),
                 "citation_count": seed.get("citationCount")},
        "goal": goal,
        "papers": [entry(i + 1, p) for i, p in enumerate(ranked[:budget])],
        "explored": {"candidates": len(found), "requests": s2.requests,
                     "expanded": expanded},
        "notes": notes,
    }


def hf_fallback(settings: Settings, seed_id: str, goal: str, budget: int, why: str) -> dict:
    """Hugging Face Papers search for the goal, when Semantic Scholar cannot give the graph."""
    try:
        with hub_errors("HF Papers search", settings.hf_endpoint):
            hits = list(hf_api(settings).list_papers(query=goal, limit=budget))
    except ToolError as err:
        raise ToolError(f"{why}; and the HF Papers fallback failed too: {err} Retry in a few minutes.") from err
    goal_words = words(goal)
    papers = []
    for rank, paper in enumerate(hits[:budget], start=1):
        terms = matched_terms(goal_words, f"{paper.title} {paper.summary}")
        papers.append({"rank": rank, "title": cap_text(paper.title, 200), "arxiv_id": paper.id,
                       "year": paper.published_at.year if paper.published_at else None, "citation_count": None,
                       "influential_citation_count": None, "depth": None, "score": None,
                       "reason": f"HF Papers search hit · {paper.upvotes or 0} upvotes · "
                                 + (f"matches goal: {', '.join(terms)}" if terms else "no goal words")})
    return {"seed": {"arxiv_id": seed_id}, "goal": goal, "papers": papers, "explored": {"candidates": len(hits)},
            "notes": [f"{why}; showing HF Papers search results for the goal instead of the citation graph."]}


class CitationGraphTool(Tool):
    name = "citation_graph"
    description = """Rank the papers a key paper cites and that cite it (Semantic Scholar) by relevance to your
goal, citations and recency.
Returns {"seed", "papers": [{"rank", "title", "arxiv_id", "year", "reason"}], "notes": [what failed]}.
Example: citation_graph(arxiv_id="2402.03300", goal="GRPO for math on small models", budget=10)"""
    inputs = {
        "arxiv_id": {"type": "string", "description": "arXiv id of the seed paper, e.g. '2402.03300'."},
        "goal": {"type": "string", "description": "What you are trying to do, in words."},
        "depth": {"type": "integer", "nullable": True, "description": "Hops from the seed (1-3, default 2)."},
        "budget": {"type": "integer", "nullable": True, "description": "Papers to return (1-50, default 15)."},
    }
    output_type = "object"

    def __init__(self, ctx: ToolContext, max_wait_s: float = 10.0):
        super().__init__()
        self.ctx, self.max_wait_s = ctx, max_wait_s

    def forward(self, arxiv_id: str, goal: str, depth: int | None = 2, budget: int | None = 15) -> dict:
        if not (goal or "").strip():
            raise ToolError("citation_graph needs a goal, e.g. goal=\"DPO on small chat models\"; "
                            "papers are ranked by it.")
        return citation_graph(self.ctx.settings, arxiv_id, goal, depth=max(1, min(int(depth or 2), 3)),
                              budget=max(1, min(int(budget or 15), 50)), max_wait_s=self.max_wait_s)
