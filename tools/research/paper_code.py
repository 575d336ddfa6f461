"""A paper's own code repository on GitHub: Hugging Face Papers' `githubRepo`, else a github.com link in the
arXiv comments or abstract, else in the paper's text (the link the paper calls its code, not a library it uses).

    paper_repository(settings, "2405.14734")  # -> {"repo": "princeton-nlp/SimPO", "found_in": "arXiv comments..."}
"""

from __future__ import annotations

import re

from tools.backends.hub import hf_api, hub_errors
from tools.errors import ToolError
from tools.research.arxiv import RemoteError, Waiter, arxiv_entry, arxiv_id
from tools.research.paper_reader import fetch_paper
from tools.settings import Settings

GITHUB_LINK = re.compile(r"github\.com/([A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))/([A-Za-z0-9._-]{1,100})")
NOT_OWNERS = {"features", "orgs", "topics", "sponsors", "about", "marketplace", "settings", "login", "apps"}
OWN_CODE = re.compile(r"\bcode\b|\brelease|available|implementation|\bour\b|we provide|repository", re.I)
SOMEONE_ELSES = re.compile(r"build(?:s)? on|built (?:on|upon)|based on|framework|library|fork of|\bwe use\b|using",
                           re.I)


def repo_in(url: str | None) -> str | None:
    """"owner/name" of a github.com URL, or None."""
    match = GITHUB_LINK.search(url or "")
    if not match or match.group(1).lower() in NOT_OWNERS:
        return None
    name = re.sub(r"(?:\.git|[.,;:)])+$", "", match.group(2))
    return f"{match.group(1)}/{name}"


def own_repo_link(text: str) -> str | None:
    """The github.com repository `text` presents as its own code: links after words like "code" or "release"
    score over links after "we build on" or "framework"; the first link breaks ties."""
    best, best_score = None, None
    for match in GITHUB_LINK.finditer(text or ""):
        repo = repo_in(match.group(0))
        if not repo:
            continue
        before = text[max(0, match.start() - 80):match.start()]
        score = bool(OWN_CODE.search(before)) - bool(SOMEONE_ELSES.search(before))
        if best_score is None or score > best_score:
            best, best_score = repo, score
    return best


def paper_repository(settings: Settings, paper_id: str, max_wait_s: float = 10.0) -> tuple[dict | None, list[str]]:
    """({"repo", "found_in"} or None, notes on sources that failed) for the paper's own code repository."""
    paper_id, notes = arxiv_id(paper_id), []
    try:
        with hub_errors("HF Papers lookup", settings.hf_endpoint):
            repo = repo_in(hf_api(settings).paper_info(paper_id).github_repo)
        if repo:
            return {"repo": repo, "found_in": "Hugging Face Papers (githubRepo)"}, notes
    except ToolError as err:
        if "HTTP 404 " not in str(err):  # a paper HF Papers does not know is no failure
            notes.append(f"HF Papers lookup failed: {str(err)[:200]}")
    waiter = Waiter(max_wait_s)
    try:
        entry = arxiv_entry(settings, paper_id, waiter) or {}
        repo = own_repo_link(f"{entry.get('comment') or ''}\n{entry.get('abstract') or ''}")
        if repo:
            return {"repo": repo, "found_in": "arXiv comments or abstract"}, notes
    except RemoteError as err:
        notes.append(f"arXiv lookup failed: {err}")
    try:
        repo = own_repo_link(fetch_paper(settings, paper_id, waiter.left).text())
        if repo:
            return {"repo": repo, "found_in": "the paper's text"}, notes
    except ToolError as err:
        notes.append(f"paper text unavailable: {str(err)[:200]}")
    return None, notes
