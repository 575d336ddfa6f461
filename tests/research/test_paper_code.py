"""A paper's own repository (HF Papers githubRepo, arXiv comments, paper text), searched first for code."""

from __future__ import annotations

import pytest

from tests.fakes.arxiv_api import papers_settings, serve_arxiv
from tests.fakes.github_api import VALID_TOKEN, serve_github
from tests.fakes.hub_api import serve_hub
from tools.context import ToolContext
from tools.research.code_search import SearchCodeExamplesTool
from tools.research.paper_code import own_repo_link, paper_repository
from tools.untrusted import END


@pytest.fixture
def fakes(settings):
    arxiv, hub, github = serve_arxiv(), serve_hub(), serve_github()
    configured = papers_settings(settings, arxiv, hub=hub).with_(github_api_url=github.url, github_token=VALID_TOKEN)
    yield configured, arxiv, hub, github
    for server in (arxiv, hub, github):
        server.close()


def code_searches(github) -> list[str]:
    return [r.query["q"][0] for r in github.requests if r.path == "/search/code"]


def test_hf_papers_github_repo_comes_first(fakes):
    settings, arxiv, hub, _ = fakes
    found, notes = paper_repository(settings, "arXiv:2305.18290v3")

    assert found == {"repo": "eric-mitchell/direct-preference-optimization",
                     "found_in": "Hugging Face Papers (githubRepo)"}
    assert notes == [] and [r.path for r in hub.requests] == ["/api/papers/2305.18290"]
    assert arxiv.requests == []  # no need to ask arXiv


def test_arxiv_comment_names_the_code_when_hf_papers_does_not(fakes):
    settings, arxiv, _, _ = fakes
    found, _ = paper_repository(settings, "2405.14734")

    assert found == {"repo": "princeton-nlp/SimPO", "found_in": "arXiv comments or abstract"}
    assert arxiv.requests[0].query["id_list"] == ["2405.14734"]


def test_paper_text_link_to_its_own_code_beats_a_library_it_builds_on(fakes):
    settings, *_ = fakes
    found, _ = paper_repository(settings, "2507.08812")

    assert found == {"repo": "okafor-lab/warmstart-grpo", "found_in": "the paper's text"}
    assert own_repo_link("We build on verl (https://github.com/volcengine/verl). Our code: "
                         "https://github.com/me/thing.git.") == "me/thing"
    assert own_repo_link("See github.com/features/copilot.") is None


def test_search_looks_in_the_papers_repository_first_then_everywhere(fakes, ledger):
    settings, arxiv, hub, github = fakes
    result = SearchCodeExamplesTool(ToolContext(settings, ledger, jobs=None))(
        query="GRPOTrainer reward_funcs", arxiv_id="2507.08812", limit=3)

    assert code_searches(github) == ["GRPOTrainer reward_funcs repo:okafor-lab/warmstart-grpo",
                                     "GRPOTrainer reward_funcs"]
    assert result["paper_repository"]["repo"] == "okafor-lab/warmstart-grpo"
    hits = result["hits"]
    assert [(h["repo"], h["path"], h["found_by"]) for h in hits] == [
        ("okafor-lab/warmstart-grpo", "train_grpo.py", "paper repository"),
        ("huggingface/trl", "trl/scripts/grpo.py", "search")]  # the paper's file is not listed twice
    assert "GRPOTrainer(" in hits[0]["snippet"] and hits[0]["snippet"].endswith(END)
    for request in arxiv.requests + hub.requests:  # the GitHub token goes to the GitHub API only
        assert VALID_TOKEN not in str(request.headers)


def test_an_explicit_repo_is_the_only_one_searched(fakes, ledger):
    settings, _, _, github = fakes
    result = SearchCodeExamplesTool(ToolContext(settings, ledger, jobs=None))(
        query="num_generations", repo="https://github.com/okafor-lab/warmstart-grpo")

    assert code_searches(github) == ["num_generations repo:okafor-lab/warmstart-grpo"]
    assert [h["path"] for h in result["hits"]] == ["configs/grpo_qwen_coder_1.5b.yaml"]
    assert "num_generations: 16" in result["hits"][0]["snippet"]


def test_a_paper_without_a_linked_repository_gets_fenced_candidates(fakes, ledger):
    settings, _, _, github = fakes
    result = SearchCodeExamplesTool(ToolContext(settings, ledger, jobs=None))(
        query="GRPOConfig", arxiv_id="2502.14321")

    assert result["paper_repository"] is None
    [candidate] = result["repository_candidates"]
    assert candidate["repo"] == "someone-else/awesome-rlvr-papers" and candidate["stars"] == 1290
    assert candidate["description"].startswith("<<<UNTRUSTED DATA from github:someone-else/awesome-rlvr-papers")
    search = next(r for r in github.requests if r.path == "/search/repositories")
    assert search.query["q"] == ['"2502.14321" in:name,description,readme']
    assert any("repo='owner/name'" in note for note in result["notes"])
    assert code_searches(github) == ["GRPOConfig"]


def test_a_papers_repository_github_cannot_search_is_a_note_not_a_failure(fakes, ledger):
    settings, _, _, github = fakes
    github.state["unsearchable"] = {"okafor-lab/warmstart-grpo"}
    result = SearchCodeExamplesTool(ToolContext(settings, ledger, jobs=None))(
        query="GRPOTrainer reward_funcs", arxiv_id="2507.08812")

    assert len(code_searches(github)) == 2
    assert [h["repo"] for h in result["hits"]] == ["huggingface/trl", "okafor-lab/warmstart-grpo"]
    assert {h["found_by"] for h in result["hits"]} == {"search"}
    assert result["notes"] == ["GitHub cannot search okafor-lab/warmstart-grpo (HTTP 422: private, gone or not "
                               "indexed); the hits come from the wider search."]
