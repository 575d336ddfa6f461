"""arXiv: paper ids, the export API's Atom search, and `polite_get`, the GET with bounded
retries on 429/503 (Retry-After honoured) that the arXiv and Semantic Scholar clients share.

    entries = arxiv_search(settings, "direct preference optimization", limit=5, category="cs.CL")
    arxiv_id("https://arxiv.org/abs/2305.18290v3")  # -> "2305.18290"
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from calendar import monthrange
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from time import sleep

import httpx

from tools.errors import ToolError
from tools.settings import Settings

ATOM = "{http://www.w3.org/2005/Atom}"
ARXIV_NS = "{http://arxiv.org/schemas/atom}"
USER_AGENT = "ml-intern (https://huggingface.co/spaces; research agent)"
RETRY_STATUSES = (429, 502, 503)
ID_PATTERN = re.compile(r"(\d{4}\.\d{4,5}|[a-z][a-z.-]*/\d{7})(v\d+)?", re.IGNORECASE)
SORT_BY = {"relevance": "relevance", "recent": "submittedDate"}


class RemoteError(Exception):
    """A remote call that failed for good: `status` is the last HTTP status (None if unreachable)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def arxiv_id(text: str, keep_version: bool = False) -> str:
    """The arXiv id inside `text` ("arXiv:2305.18290v2", an abs/html/pdf URL, a bare id).

    Without keep_version the version suffix is dropped, so ids from different sources compare equal.
    """
    match = ID_PATTERN.search(str(text or ""))
    if not match:
        raise ToolError(f"{text!r} is not an arXiv id; pass one like '2305.18290' (or 'hep-th/9901001').")
    version = match.group(2) if keep_version and match.group(2) else ""
    return match.group(1) + version


def retry_after_s(reply: httpx.Response, attempt: int) -> float:
    """Seconds the server asked us to wait (Retry-After in seconds or as a date), else 1, 2, 4... s."""
    value = (reply.headers.get("Retry-After") or "").strip()
    if value.replace(".", "", 1).isdigit():
        return float(value)
    if value:
        try:
            return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            pass
    return float(2 ** attempt)


class Waiter:
    """A sleep budget shared by a tool call's requests, so retries never wait more than `max_s` in all."""

    def __init__(self, max_s: float):
        self.left = max_s

    def wait(self, seconds: float) -> bool:
        """Sleep `seconds` and return True, or return False at once when that is over budget."""
        if seconds > self.left:
            return False
        sleep(seconds)
        self.left -= seconds
        return True


def polite_get(url: str, params: dict | None = None, *, timeout: float, waiter: Waiter,
               retries: int = 3, label: str = "") -> httpx.Response:
    """GET `url`; on 429/502/503 wait as the server asks (Retry-After) and retry, within `waiter`'s budget.

    Returns the final reply for any other status (the caller reads 404 and friends); raises
    RemoteError when the server stays busy past the retries or the wait budget, or is unreachable.
    """
    label = label or url
    for attempt in range(retries + 1):
        try:
            reply = httpx.get(url, params=params, timeout=timeout, follow_redirects=True,
                              headers={"User-Agent": USER_AGENT})
        except httpx.HTTPError as err:
            raise RemoteError(f"could not reach {label} ({type(err).__name__})") from err
        if reply.status_code not in RETRY_STATUSES:
            return reply
        wait = retry_after_s(reply, attempt)
        if attempt == retries:
            raise RemoteError(f"{label} answered HTTP {reply.status_code} (still busy after {retries} retries)",
                              reply.status_code)
        if not waiter.wait(wait):
            raise RemoteError(f"{label} answered HTTP {reply.status_code} (asked to wait {wait:g} s, more than "
                              f"the {waiter.left:g} s left to wait)", reply.status_code)
    raise AssertionError("unreachable")


def date_bound(value: str | None, end: bool) -> str | None:
    """"2024", "2024-03" or "2024-03-15" as arXiv's YYYYMMDDHHMM, at the start or end of the period."""
    if not value:
        return None
    parts = str(value).strip().split("-")
    try:
        year = int(parts[0])
        month = int(parts[1]) if len(parts) > 1 else (12 if end else 1)
        last_day = monthrange(year, month)[1]
        stamp = date(year, month, int(parts[2]) if len(parts) > 2 else (last_day if end else 1))
    except (ValueError, IndexError) as err:
        raise ToolError(f"Date {value!r} is not YYYY-MM-DD (or YYYY-MM, YYYY); e.g. date_from='2024-01-01'.") from err
    return stamp.strftime("%Y%m%d") + ("2359" if end else "0000")


def build_query(query: str, category: str | None, date_from: str | None, date_to: str | None) -> str:
    """arXiv's search_query: every keyword in any field, AND category, AND a submittedDate range."""
    words = re.findall(r"[\w.+-]+", query)
    clauses = [f"all:{w}" for w in words]
    if category:
        clauses.append(f"cat:{category.strip()}")
    start, end = date_bound(date_from, False), date_bound(date_to, True)
    if start or end:
        clauses.append(f"submittedDate:[{start or '199101010000'} TO {end or date.today().strftime('%Y%m%d2359')}]")
    return " AND ".join(clauses)


def parse_feed(xml_text: str) -> list[dict]:
    """Entries of an arXiv Atom feed as dicts; RemoteError for malformed XML or an API error entry."""
    try:
        root = ET.fromstring(xml_text)
    except ET.ParseError as err:
        raise RemoteError(f"arXiv returned malformed XML ({err})") from err
    entries = []
    for entry in root.findall(f"{ATOM}entry"):
        raw_id = entry.findtext(f"{ATOM}id", "")
        if "/api/errors" in raw_id:
            summary = " ".join(entry.findtext(f"{ATOM}summary", "").split())
            raise RemoteError(f"arXiv rejected the query: {summary[:200]}", 400)
        primary = entry.find(f"{ARXIV_NS}primary_category")
        entries.append({
            "arxiv_id": arxiv_id(raw_id),
            "title": " ".join(entry.findtext(f"{ATOM}title", "").split()),
            "authors": [a.findtext(f"{ATOM}name", "").strip() for a in entry.findall(f"{ATOM}author")],
            "published": entry.findtext(f"{ATOM}published", "")[:10] or None,
            "abstract": " ".join(entry.findtext(f"{ATOM}summary", "").split()),
            "categories": [c.get("term") for c in entry.findall(f"{ATOM}category") if c.get("term")],
            "primary_category": primary.get("term") if primary is not None else None,
            "comment": " ".join(entry.findtext(f"{ARXIV_NS}comment", "").split()) or None,
        })
    return entries


def arxiv_entry(settings: Settings, paper_id: str, waiter: Waiter | None = None) -> dict | None:
    """One paper's export-API entry (`id_list`), with its abstract and comment; None when arXiv has none."""
    url = f"{settings.arxiv_url.rstrip('/')}/api/query"
    reply = polite_get(url, {"id_list": arxiv_id(paper_id), "max_results": 1}, timeout=settings.http_timeout_s,
                       waiter=waiter or Waiter(10.0), label="arXiv API")
    if reply.status_code != 200 and "<feed" not in reply.text:
        raise RemoteError(f"arXiv API answered HTTP {reply.status_code}", reply.status_code)
    return next(iter(parse_feed(reply.text)), None)


def arxiv_search(settings: Settings, query: str, limit: int = 10, category: str | None = None,
                 date_from: str | None = None, date_to: str | None = None, sort: str = "relevance",
                 waiter: Waiter | None = None) -> list[dict]:
    """Search the arXiv export API; entries best first. RemoteError when arXiv fails."""
    params = {"search_query": build_query(query, category, date_from, date_to), "start": 0,
              "max_results": limit, "sortBy": SORT_BY.get(sort, "relevance"), "sortOrder": "descending"}
    url = f"{settings.arxiv_url.rstrip('/')}/api/query"
    reply = polite_get(url, params, timeout=settings.http_timeout_s, waiter=waiter or Waiter(10.0), label="arXiv API")
    if reply.status_code != 200 and "<feed" not in reply.text:
        raise RemoteError(f"arXiv API answered HTTP {reply.status_code}", reply.status_code)
    return parse_feed(reply.text)
