"""search_papers through huggingface_hub's real client against the loopback fake Hub."""

from __future__ import annotations

import pytest

from tests.fakes.hub_api import serve_hub
from tools.context import ToolContext
from tools.errors import ToolError
from tools.papers import SUMMARY_CHARS, SearchPapersTool


@pytest.fixture
def hub():
    server = serve_hub()
    yield server
    server.close()


def make_tool(settings, ledger, endpoint: str, token: str | None = None) -> SearchPapersTool:
    ctx = ToolContext(settings.with_(hf_endpoint=endpoint, hf_token=token), ledger, jobs=None)
    return SearchPapersTool(ctx)


def test_sends_query_and_limit_and_parses_paper_fields(hub, settings, ledger):
    papers = make_tool(settings, ledger, hub.url)(query="direct preference optimization", limit=3)

    request = hub.requests[-1]
    assert request.path == "/api/papers/search"
    assert request.query == {"q": ["direct preference optimization"], "limit": ["3"]}
    assert "authorization" not in request.headers  # no token in Settings: none sent
    dpo = papers[0]
    assert dpo["arxiv_id"] == "2305.18290"
    assert dpo["title"].startswith("Direct Preference Optimization")
    assert dpo["authors"][:2] == ["Rafael Rafailov", "Archit Sharma"]
    assert dpo["published"] == "2023-05-29"
    assert dpo["upvotes"] == 63
    assert dpo["url"] == f"{hub.url}/papers/2305.18290"
    assert set(dpo) == {"arxiv_id", "title", "authors", "published", "summary", "upvotes", "url"}


def test_long_abstracts_and_author_lists_are_capped(hub, settings, ledger):
    papers = {p["arxiv_id"]: p for p in make_tool(settings, ledger, hub.url)(query="human feedback RLHF")}

    summary = papers["2305.18290"]["summary"]
    assert len(summary) <= SUMMARY_CHARS and summary.endswith("…")
    assert "\n" not in summary
    instruct = papers["2203.02155"]["authors"]
    assert instruct[-1] == "et al." and len(instruct) == 9


def test_limit_is_clamped_and_token_is_sent(hub, settings, ledger):
    make_tool(settings, ledger, hub.url, token="hf_secret")(query="LoRA", limit=500)

    request = hub.requests[-1]
    assert request.query["limit"] == ["50"]
    assert request.headers["authorization"] == "Bearer hf_secret"


def test_empty_query_is_refused(hub, settings, ledger):
    with pytest.raises(ToolError, match="non-empty query"):
        make_tool(settings, ledger, hub.url)(query="  ")


def test_rate_limit_becomes_a_tool_error(settings, ledger):
    server = serve_hub({"rate_limit": 1})
    try:
        with pytest.raises(ToolError, match="HTTP 429.*rate limiting"):
            make_tool(settings, ledger, server.url)(query="GRPO")
    finally:
        server.close()


def test_unreachable_hub_becomes_a_tool_error(settings, ledger):
    server = serve_hub()
    url = server.url
    server.close()
    with pytest.raises(ToolError, match="could not reach"):
        make_tool(settings, ledger, url)(query="GRPO")
