"""citation_graph: traversal, ranking and failure handling against the fake Semantic Scholar Graph API."""

from __future__ import annotations

import json
import math

import pytest

from tests.fakes.semantic_scholar_api import GRAPH, serve_semantic_scholar
from tools.context import ToolContext
from tools.errors import ToolError
from tools.research.citations import CitationGraphTool, citation_graph, score, words

SEED = "2402.03300"
GOAL = "GRPO reinforcement learning for math reasoning on small models"
IDS = {p["key"]: p["paperId"] for p in json.loads(GRAPH.read_text())["papers"]}


@pytest.fixture
def s2():
    server = serve_semantic_scholar()
    yield server
    server.close()


def graph(settings, s2, hub=None, **kwargs) -> dict:
    configured = settings.with_(semantic_scholar_url=s2.url, **({"hf_endpoint": hub.url} if hub else {}))
    return citation_graph(configured, SEED, kwargs.pop("goal", GOAL), year=2025, **kwargs)


def test_score_follows_the_documented_formula():
    paper = {"title": "GRPO for math", "abstract": "Reinforcement learning.", "citationCount": 99,
             "influentialCitationCount": 9, "year": 2023, "depth": 2}
    goal = words("GRPO math reasoning")
    expected = (0.45 * 2 / 3 + 0.25 * math.log10(100) / 4 + 0.15 * math.log10(10) / 3 + 0.15 * 0.8) * 0.85
    total, terms = score(paper, goal, year=2025)
    assert total == round(expected, 4) and terms == ["grpo", "math"]
    assert score({**paper, "title": "GRPO for mathematical", "abstract": None}, goal, 2025)[1] == ["grpo", "math"]
    assert score({**paper, "year": None, "citationCount": None}, goal, 2025)[0] < total


def test_ranked_list_with_reasons_over_two_levels(settings, s2):
    result = graph(settings, s2, budget=8)

    assert result["seed"] == {"arxiv_id": SEED, "title": "DeepSeekMath: Pushing the Limits of Mathematical "
                              "Reasoning in Open Language Models", "year": 2024, "citation_count": 1520}
    papers = result["papers"]
    assert [p["arxiv_id"] for p in papers] == ["2503.14476", "2409.12122", "2501.12948", "2110.14168", "2501.04519",
                                               "2503.20783", "2504.05118", "2103.03874"]
    assert [p["rank"] for p in papers] == list(range(1, 9))
    assert papers[0]["reason"] == ("cites the seed · 310 citations (61 influential) · 2025 · matches goal: grpo, "
                                   "learning, math, reasoning, reinforcement")
    assert papers[3]["reason"].startswith("cited by the seed · 3,480 citations (812 influential) · 2021")
    vapo = papers[6]  # found at depth 2, through DAPO
    assert vapo["depth"] == 2 and vapo["reason"].startswith("cites 'DAPO: An Open-Source LLM Reinforcement")
    assert [p["score"] for p in papers] == sorted((p["score"] for p in papers), reverse=True)
    assert result["notes"] == []


def test_relevance_outweighs_raw_citation_counts(settings, s2):
    ranks = {p["arxiv_id"]: p["rank"] for p in graph(settings, s2, budget=50)["papers"]}
    assert ranks["1706.03762"] > ranks["2503.20783"]  # "Attention is All you Need" (121k citations) is off-goal
    assert None in ranks  # papers without an arXiv id are still listed (arxiv_id None)


def test_requests_are_bounded_expanding_only_the_top_three(settings, s2):
    result = graph(settings, s2)

    paths = [r.path for r in s2.requests]
    assert paths[:3] == [f"/graph/v1/paper/arXiv:{SEED}", f"/graph/v1/paper/{IDS['seed']}/references",
                         f"/graph/v1/paper/{IDS['seed']}/citations"]
    expanded = [IDS["dapo"], IDS["qwenmath"], IDS["r1"]]
    assert paths[3:] == [f"/graph/v1/paper/{pid}/{kind}" for pid in expanded for kind in ("references", "citations")]
    assert result["explored"]["requests"] == 9 and len(result["explored"]["expanded"]) == 3
    query = s2.requests[1].query
    assert query["fields"] == ["title,year,citationCount,influentialCitationCount,externalIds,abstract,isInfluential"]
    assert query["offset"] == ["0"] and query["limit"] == ["100"]


def test_depth_one_and_budget(settings, s2):
    result = graph(settings, s2, depth=1, budget=5)

    assert len(s2.requests) == 3 and result["explored"]["expanded"] == []
    assert len(result["papers"]) == 5 and {p["depth"] for p in result["papers"]} == {1}


def test_pages_are_followed_and_a_cut_list_is_noted(settings, s2):
    s2.state["page_size"] = 4  # the seed has 9 citations: pages at offsets 0 and 4, and a third page unread

    result = graph(settings, s2, depth=1)

    citations = [r.query["offset"] for r in s2.requests if r.path.endswith(f"{IDS['seed']}/citations")]
    references = [r.query["offset"] for r in s2.requests if r.path.endswith(f"{IDS['seed']}/references")]
    assert citations == [["0"], ["4"]] and references == [["0"], ["4"]]
    assert result["notes"] == ["1 citation list(s) had more than 2 pages; only the first 2 pages of each were ranked."]
    assert result["explored"]["candidates"] == 6 + 8


def test_edges_without_a_paper_id_are_skipped(settings, s2):
    s2.state["edge_nulls"] = True
    titles = [p["title"] for p in graph(settings, s2, depth=1, budget=50)["papers"]]
    assert "Unresolved citing paper" not in titles and len(titles) == 15


def test_429_retry_after_is_honoured(settings, s2, slept):
    s2.state.update(rate_limit=1, retry_after="1")
    result = graph(settings, s2)
    assert slept == [1.0] and len(s2.requests) == 10 and result["notes"] == []


def test_429_without_retry_after_backs_off(settings, s2, slept):
    s2.state.update(rate_limit=2, retry_after=None)
    graph(settings, s2, depth=1)
    assert slept == [1.0, 2.0]


def test_persistent_failure_keeps_depth_one_results_with_a_note(settings, s2, slept):
    s2.state["fail_after"] = 3  # the seed and its two lists answer, then 429 with Retry-After 30

    result = graph(settings, s2)

    assert len(s2.requests) == 4 and slept == []  # a wait over budget stops at once: no hammering
    assert result["notes"] == ["Semantic Scholar failed at depth 2 (Semantic Scholar answered HTTP 429 (asked to "
                               "wait 30 s, more than the 10 s left to wait)); ranking what was fetched before."]
    assert result["papers"] and {p["depth"] for p in result["papers"]} == {1}


def test_total_sleep_is_capped(settings, s2, slept):
    s2.state.update(rate_limit=100, retry_after="4")
    configured = settings.with_(semantic_scholar_url=s2.url)
    with pytest.raises(ToolError):
        citation_graph(configured.with_(hf_endpoint=s2.url), SEED, GOAL, max_wait_s=10)  # no HF fake there
    assert slept == [4.0, 4.0]


@pytest.mark.parametrize("state, seed, why", [
    ({"fail_after": 0}, SEED, "Semantic Scholar answered HTTP 429 (asked to wait 30 s"),
    ({}, "2501.99999", "Semantic Scholar answered HTTP 404 (Paper with id arXiv:2501.99999 not found)"),
    ({"malformed": True}, SEED, "Semantic Scholar returned malformed JSON (HTTP 200)"),
])
def test_seed_failure_falls_back_to_hf_papers(settings, s2, hub, state, seed, why):
    s2.state.update(state)
    configured = settings.with_(semantic_scholar_url=s2.url, hf_endpoint=hub.url)

    result = citation_graph(configured, seed, "GRPO math reasoning", budget=3)

    assert result["notes"][0].startswith(f"Semantic Scholar failed for the seed ({why}")
    assert result["notes"][0].endswith("showing HF Papers search results for the goal instead of the citation graph.")
    assert hub.requests[-1].query == {"q": ["GRPO math reasoning"], "limit": ["3"]}
    first = result["papers"][0]
    assert first["arxiv_id"] == "2402.03300" and first["citation_count"] is None
    assert first["reason"] == "HF Papers search hit · 121 upvotes · matches goal: grpo, math, reasoning"


def test_both_services_failing_is_a_tool_error(settings, s2, hub):
    s2.state["fail_after"] = 0
    hub.state["rate_limit"] = 1
    configured = settings.with_(semantic_scholar_url=s2.url, hf_endpoint=hub.url)
    with pytest.raises(ToolError, match=r"Semantic Scholar failed for the seed .*HF Papers fallback failed too: .*429"):
        citation_graph(configured, SEED, GOAL)


def test_tool_validates_and_clamps_its_inputs(settings, ledger, s2):
    tool = CitationGraphTool(ToolContext(settings.with_(semantic_scholar_url=s2.url), ledger, jobs=None))
    with pytest.raises(ToolError, match="needs a goal"):
        tool(arxiv_id=SEED, goal=" ")
    with pytest.raises(ToolError, match="not an arXiv id"):
        tool(arxiv_id="DeepSeekMath", goal=GOAL)
    result = tool(arxiv_id=f"https://arxiv.org/abs/{SEED}v3", goal=GOAL, depth=9, budget=500)
    assert result["seed"]["arxiv_id"] == SEED and len(result["papers"]) == result["explored"]["candidates"]
    assert len(s2.requests) == 1 + 2 + 6 + 6  # depth clamped to 3
