"""A loopback fake of the arXiv export API (`/api/query`) and of arxiv.org/html (also standing in for ar5iv).

Replies come from recorded real-shaped files in tests/fixtures/papers/:
- `arxiv_feed.xml`: an Atom feed as `export.arxiv.org/api/query` returns it; the fake keeps the entries
  that match the query (every `all:` word in title or summary, `cat:` among the categories,
  `submittedDate:[A TO B]` around `published`) and are among `id_list` when one is given, sorts them
  (`sortBy=submittedDate` newest first), pages with `start`/`max_results` and rewrites the opensearch
  totals, leaving the entry XML as recorded;
- `arxiv_error.xml`: the Atom error feed arXiv answers (HTTP 400) for a negative max_results;
- `html_<id>v<n>.html`: a paper's LaTeXML HTML; `/html/<id>` and `/html/<id>v<n>` serve it,
  anything else answers arxiv.org's 404 page.

state knobs: "rate_limit": n -> the next n API requests answer 429 with Retry-After state.get("retry_after", "1")
(no header when it is None); "malformed": True -> a cut-off feed; "html": False -> no paper has HTML;
"div_sections": True -> serve the HTML with `<div class="ltx_section">` like older ar5iv pages.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.fakes.server import FakeHandler, FakeServer, route, serve

FIXTURES = Path(__file__).parent.parent / "fixtures" / "papers"
ENTRY = re.compile(r"\s*<entry>.*?</entry>", re.S)
TOTALS = re.compile(r"(<opensearch:(totalResults|startIndex|itemsPerPage)[^>]*>)\d+(</opensearch:\2>)")


def entry_fields(block: str) -> dict:
    def text(tag: str) -> str:
        return re.search(rf"<{tag}>(.*?)</{tag}>", block, re.S).group(1)

    return {"text": f"{text('title')} {text('summary')}".lower(), "published": text("published")[:10].replace("-", ""),
            "categories": set(re.findall(r'<category term="([^"]+)"', block))}


def matches(fields: dict, clause: str) -> bool:
    kind, _, value = clause.partition(":")
    if kind == "all":
        return value.lower() in fields["text"]
    if kind == "cat":
        return value in fields["categories"]
    if kind == "submittedDate":
        start, end = re.findall(r"\d{8}", value)
        return start <= fields["published"] <= end
    return False


class FakeArxivHandler(FakeHandler):
    def _busy(self) -> bool:
        if self.state.get("rate_limit", 0) > 0:
            self.state["rate_limit"] -= 1
            retry_after = self.state.get("retry_after", "1")
            self.send_text("Rate exceeded.", status=429, headers={"Retry-After": retry_after} if retry_after else {})
            return True
        return False

    @route("GET", r"/api/query")
    def query_api(self):
        if self._busy():
            return
        if self.state.get("malformed"):
            feed = (FIXTURES / "arxiv_feed.xml").read_text()
            self.send_text(feed[: len(feed) // 2], content_type="application/atom+xml; charset=utf-8")
            return
        start, size = int(self.query.get("start", 0)), int(self.query.get("max_results", 10))
        if size < 0:
            self.send_text((FIXTURES / "arxiv_error.xml").read_text(), status=400,
                           content_type="application/atom+xml; charset=utf-8")
            return
        feed = (FIXTURES / "arxiv_feed.xml").read_text()
        clauses = [c.strip() for c in self.query.get("search_query", "").split(" AND ") if c.strip()]
        ids = [i.strip() for i in self.query.get("id_list", "").split(",") if i.strip()]
        blocks = [b for b in ENTRY.findall(feed) if all(matches(entry_fields(b), c) for c in clauses)
                  and (not ids or any(f"/abs/{i}" in b for i in ids))]
        if self.query.get("sortBy") == "submittedDate":
            blocks.sort(key=lambda b: entry_fields(b)["published"], reverse=True)
        page = blocks[start:start + size]
        totals = {"totalResults": len(blocks), "startIndex": start, "itemsPerPage": size}
        head = TOTALS.sub(lambda m: f"{m.group(1)}{totals[m.group(2)]}{m.group(3)}", feed[: feed.index("  <entry>")])
        self.send_text(head.rstrip() + "".join(page) + "\n</feed>\n",
                       content_type="application/atom+xml; charset=utf-8")

    @route("GET", r"/html/(?P<paper>[\w./-]+)")
    def html(self, paper: str):
        if self._busy():
            return
        base, version = re.fullmatch(r"(.+?)(v\d+)?", paper).groups()
        files = sorted(FIXTURES.glob(f"html_{base}v*.html"))
        wanted = [f for f in files if version is None or f.stem.endswith(version)]
        if not wanted or self.state.get("html") is False:
            self.send_text(f"<html><body><h1>No HTML for '{paper}'</h1><p>HTML is not available for the source. "
                           "This could be due to the source files not being HTML, LaTeX, or a conversion failure.</p>"
                           "</body></html>", status=404, content_type="text/html")
            return
        page = wanted[-1].read_text()
        if self.state.get("div_sections"):
            page = page.replace("<section ", "<div ").replace("</section>", "</div>")
        self.send_text(page, content_type="text/html; charset=utf-8")


def serve_arxiv(state: dict | None = None) -> FakeServer:
    """Start the fake arXiv API + HTML server on loopback; its base URL is `server.url`."""
    return serve(FakeArxivHandler, state)


def papers_settings(base, arxiv: FakeServer, s2: FakeServer | None = None, hub: FakeServer | None = None,
                    ar5iv: FakeServer | None = None):
    """`base` Settings pointed at the fakes: arXiv API + HTML (ar5iv too unless given), S2, the Hub."""
    changes = {"arxiv_url": arxiv.url, "arxiv_html_url": arxiv.url, "ar5iv_url": (ar5iv or arxiv).url}
    if s2:
        changes["semantic_scholar_url"] = s2.url
    if hub:
        changes["hf_endpoint"] = hub.url
    return base.with_(**changes)
