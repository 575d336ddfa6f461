"""Finding papers: Hugging Face Papers and the arXiv API searched together, merged by arXiv id,
with citation counts from Semantic Scholar where it answers.

Merge order (sort="relevance"): each source's hits are ranked 1, 2, 3...; a paper scores the sum of
1 / rank over the sources that found it, so papers both sources find come first; ties go to upvotes.
A source that fails leaves a note naming it, and the other source's results still come back.

Abstracts and titles are third-party text: abstracts are returned fenced (tools.untrusted), titles capped.
"""

from __future__ import annotations

import re

from smolagents import Tool

from tools.backends.hub import cap_text, hf_api, hub_errors
from tools.context import ToolContext
from tools.errors import ToolError
from tools.research.arxiv import ID_PATTERN, RemoteError, Waiter, arxiv_id, arxiv_search, date_bound
from tools.research.citations import citation_counts
from tools.untrusted import fence

ABSTRACT_CHARS = 600
TITLE_CHARS = 300
MAX_AUTHORS = 8
MAX_LIMIT = 50
SORTS = ("relevance", "recent", "trending")


def hf_record(paper) -> dict | None:
    """A Hugging Face Papers hit (huggingface_hub PaperInfo) as a plain record; None without an arXiv id."""
    if not ID_PATTERN.fullmatch(paper.id or ""):
        return None
    return {"arxiv_id": arxiv_id(paper.id), "title": paper.title or "",
            "authors": [a.name for a in (paper.authors or []) if a.name],
            "published": paper.published_at.date().isoformat() if paper.published_at else None,
            "abstract": paper.summary or "", "upvotes": paper.upvotes or 0, "categories": None}


def merge(results: dict[str, list[dict]], sort: str) -> list[dict]:
    """One record per arXiv id (version stripped), fields filled from whichever source has them."""
    merged: dict[str, dict] = {}
    for source, hits in results.items():
        for rank, hit in enumerate(hits, start=1):
            record = merged.setdefault(hit["arxiv_id"], {"sources": [], "_score": 0.0, "upvotes": None})
            for key, value in hit.items():
                if value not in (None, "", []) and record.get(key) in (None, "", []):
                    record[key] = value
            record["sources"].append(source)
            record["_score"] += 1 / rank
    if sort == "recent":
        return sorted(merged.values(), key=lambda r: r.get("published") or "", reverse=True)
    return sorted(merged.values(), key=lambda r: (-r["_score"], -(r["upvotes"] or 0)))


def shaped(record: dict, arxiv_html_url: str) -> dict:
    names = record.get("authors") or []
    authors = [cap_text(n, 80) for n in names[:MAX_AUTHORS]] + (["et al."] if len(names) > MAX_AUTHORS else [])
    return {
        "arxiv_id": record["arxiv_id"], "title": cap_text(record.get("title"), TITLE_CHARS), "authors": authors,
        "published": record.get("published"),
        "abstract": fence(cap_text(record.get("abstract"), ABSTRACT_CHARS), f"abstract of arXiv:{record['arxiv_id']}"),
        "upvotes": record.get("upvotes"), "citation_count": record.get("citation_count"),
        "categories": record.get("categories"), "sources": record["sources"],
        "url": f"{arxiv_html_url.rstrip('/')}/abs/{record['arxiv_id']}",
    }


def in_range(published: str | None, date_from: str | None, date_to: str | None) -> bool:
    if not (date_from or date_to):
        return True
    if not published:
        return False
    day = published.replace("-", "")
    return (date_bound(date_from, False) or "0")[:8] <= day <= (date_bound(date_to, True) or "9")[:8]


class SearchPapersTool(Tool):
    name = "search_papers"
    description = """Search Hugging Face Papers and arXiv at once for the methods and recipes others used.
Returns {"papers": [{"arxiv_id", "title", "published", "abstract", "upvotes", "citation_count", "url"...}],
"notes": [what failed]}.
Example: search_papers(query="GRPO math reasoning", limit=5, date_from="2024-01-01")"""
    inputs = {
        "query": {"type": "string", "description": "Keywords for titles and abstracts."},
        "limit": {"type": "integer", "nullable": True, "description": "Papers to return (1-50, default 10)."},
        "category": {"type": "string", "nullable": True, "description": "arXiv category, e.g. 'cs.CL'."},
        "date_from": {"type": "string", "nullable": True, "description": "Earliest date: YYYY-MM-DD, YYYY-MM or YYYY."},
        "date_to": {"type": "string", "nullable": True, "description": "Latest date, same forms."},
        "sort": {"type": "string", "nullable": True,
                 "description": "'relevance' (default), 'recent' or 'trending' (today's HF papers)."},
    }
    output_type = "object"

    def __init__(self, ctx: ToolContext, max_wait_s: float = 10.0):
        super().__init__()
        self.ctx, self.max_wait_s = ctx, max_wait_s

    def forward(self, query: str, limit: int | None = 10, category: str | None = None,
                date_from: str | None = None, date_to: str | None = None, sort: str | None = "relevance") -> dict:
        query, sort = (query or "").strip(), (sort or "relevance").strip().lower()
        if sort not in SORTS:
            raise ToolError(f"sort must be one of {', '.join(SORTS)}, not {sort!r}.")
        if not query and sort != "trending":
            raise ToolError("search_papers needs a non-empty query, e.g. search_papers(query=\"DPO\").")
        limit = max(1, min(int(limit or 10), MAX_LIMIT))
        date_bound(date_from, False)  # refuse malformed dates before any request
        date_bound(date_to, True)
        settings, results, notes, failures = self.ctx.settings, {}, [], []
        try:
            with hub_errors("HF Papers search", settings.hf_endpoint):
                api = hf_api(settings)
                hits = api.list_daily_papers(sort="trending", limit=MAX_LIMIT) if sort == "trending" \
                    else api.list_papers(query=query, limit=limit)
                results["hf_papers"] = [r for r in map(hf_record, hits) if r]
        except ToolError as err:
            failures.append(f"HF Papers failed: {err}")
        if sort == "trending":
            wanted = set(re.findall(r"\w{3,}", query.lower()))
            results["hf_papers"] = [r for r in results.get("hf_papers", []) if not wanted
                                    or wanted & set(re.findall(r"\w{3,}", f"{r['title']} {r['abstract']}".lower()))]
            notes.append("trending lists Hugging Face daily papers only; arXiv was not searched.")
        else:
            try:
                results["arxiv"] = arxiv_search(settings, query, limit, category, date_from, date_to,
                                                sort, Waiter(self.max_wait_s))
            except RemoteError as err:
                failures.append(f"arXiv failed: {err}")
        if failures and not results:
            raise ToolError("search_papers: every source failed. " + " ".join(failures) + " Retry in a minute.")
        notes = failures + notes
        if category and "hf_papers" in results and sort != "trending":
            notes.append(f"category {category} filters arXiv hits only; HF Papers hits (sources without "
                         "'arxiv') are not filtered by category.")
        if "hf_papers" in results and (date_from or date_to):
            results["hf_papers"] = [r for r in results["hf_papers"] if in_range(r["published"], date_from, date_to)]
        records = merge(results, sort)[:limit]
        if records:
            try:
                counts = citation_counts(settings, [r["arxiv_id"] for r in records])
                for record in records:
                    record["citation_count"] = counts.get(record["arxiv_id"])
            except RemoteError as err:
                notes.append(f"citation counts unavailable: {err}.")
        return {"papers": [shaped(r, settings.arxiv_html_url) for r in records], "notes": notes}
