"""search_code_examples against the loopback fake of GitHub's code search and contents APIs."""

from __future__ import annotations

import pytest

from tests.fakes.github_api import VALID_TOKEN, serve_github
from tools.context import ToolContext
from tools.errors import ToolError
from tools.research.code_search import SNIPPET_CHARS, SearchCodeExamplesTool
from tools.untrusted import END


@pytest.fixture
def github():
    server = serve_github()
    yield server
    server.close()


def make_tool(settings, ledger, github, token: str | None = VALID_TOKEN, sleeps: list | None = None):
    ctx = ToolContext(settings.with_(github_api_url=github.url, github_token=token), ledger, jobs=None)
    return SearchCodeExamplesTool(ctx, sleep=sleeps.append) if sleeps is not None else SearchCodeExamplesTool(ctx)


def searches(github):
    return [r for r in github.requests if r.path == "/search/code"]


def test_sends_scoped_query_with_bearer_token_and_returns_fenced_snippets(github, settings, ledger):
    hits = make_tool(settings, ledger, github)(query="GRPOConfig reward_funcs", library="trl", limit=3)["hits"]

    search = searches(github)[0]
    assert search.query == {"q": ["GRPOConfig reward_funcs repo:huggingface/trl"], "per_page": ["3"]}
    assert search.headers["authorization"] == f"Bearer {VALID_TOKEN}"
    assert "text-match" in search.headers["accept"]
    assert [h["path"] for h in hits] == ["trl/scripts/grpo.py"]
    hit = hits[0]
    assert hit["repo"] == "huggingface/trl" and hit["found_by"] == "search"
    assert hit["url"].startswith("https://github.com/huggingface/trl/blob/")
    contents = [r for r in github.requests if "/contents/" in r.path]
    assert contents[0].path == "/repositories/250270011/contents/trl/scripts/grpo.py"
    assert contents[0].query == {"ref": ["9c1b7d0e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c"]}
    snippet = hit["snippet"]
    assert snippet.startswith("<<<UNTRUSTED DATA from github:huggingface/trl/trl/scripts/grpo.py")
    assert snippet.endswith(END)
    assert "from trl import GRPOConfig, GRPOTrainer" in snippet  # the best-matching line is inside
    assert "Copyright" not in snippet  # a window around the match, not the file head
    assert hit["start_line"] > 1
    assert VALID_TOKEN not in repr(hits)


def test_each_library_scopes_its_repositories(github, settings, ledger):
    tool = make_tool(settings, ledger, github)
    peft = tool(query="SFTTrainer", library="peft")["hits"]
    examples = tool(query="Trainer", library="transformers")["hits"]
    hf = tool(query="SFTConfig", library="huggingface", limit=10)["hits"]

    q = [r.query["q"][0] for r in searches(github)]
    assert q[0] == "SFTTrainer repo:huggingface/peft"
    assert q[1] == "Trainer repo:huggingface/transformers path:examples"
    assert q[2].count("repo:") == 4
    assert {h["repo"] for h in peft} == {"huggingface/peft"}
    assert [h["path"] for h in examples] == ["examples/pytorch/language-modeling/run_clm.py"]
    assert {h["repo"] for h in hf} == {"huggingface/trl", "huggingface/peft"}


def test_default_searches_every_public_repository(github, settings, ledger):
    hits = make_tool(settings, ledger, github)(query="GRPOTrainer reward_funcs", limit=10)["hits"]

    assert searches(github)[0].query["q"] == ["GRPOTrainer reward_funcs"]  # no repo: scope
    assert {h["repo"] for h in hits} == {"huggingface/trl", "okafor-lab/warmstart-grpo"}


def test_file_over_1mb_falls_back_to_the_search_fragment(github, settings, ledger):
    hits = make_tool(settings, ledger, github)(query="packing", library="trl")["hits"]

    docs = next(h for h in hits if h["path"] == "docs/source/sft_trainer.md")
    assert "SFTConfig(packing=True)" in docs["snippet"]
    assert docs["snippet"].endswith(END)


def test_snippets_are_capped_and_cannot_close_their_fence(github, settings, ledger):
    [hit] = make_tool(settings, ledger, github)(query="ignore previous instructions", library="transformers")["hits"]

    body = hit["snippet"].split("\n", 1)[1]
    assert body.count(END) == 1 and body.endswith(END)  # the file's own end marker was defused
    assert "<<<UNTRUSTED DATA from lookup_api" not in body
    assert "ignore all previous instructions" in body  # content kept, as data
    assert len(hit["snippet"]) <= SNIPPET_CHARS + 300


def test_without_token_it_says_github_token_is_needed_and_offers_offline_tools(github, settings, ledger):
    with pytest.raises(ToolError) as err:
        make_tool(settings, ledger, github, token=None)(query="GRPOConfig")

    assert "authorization" not in searches(github)[0].headers
    message = str(err.value)
    assert "GITHUB_TOKEN" in message and "lookup_api" in message and "search_docs" in message


def test_rejected_token_is_reported_without_echoing_it(github, settings, ledger):
    with pytest.raises(ToolError, match="rejected GITHUB_TOKEN.*Bad credentials") as err:
        make_tool(settings, ledger, github, token="ghp_wrong_secret_value")(query="GRPOConfig")
    assert "ghp_wrong_secret_value" not in str(err.value)


def test_rate_limit_backs_off_once_then_succeeds(github, settings, ledger):
    github.state.update(rate_limited=1, reset_in=3)
    sleeps = []
    hits = make_tool(settings, ledger, github, sleeps=sleeps)(query="GRPOConfig")["hits"]

    assert len(sleeps) == 1 and 2 <= sleeps[0] <= 5  # waited until x-ratelimit-reset
    assert len(searches(github)) == 2
    assert hits[0]["path"] == "trl/scripts/grpo.py"


def test_rate_limit_that_persists_is_a_clear_error(github, settings, ledger):
    github.state.update(rate_limited=5, reset_in=2)
    sleeps = []
    with pytest.raises(ToolError, match=r"rate limiting code search \(HTTP 403: API rate limit exceeded") as err:
        make_tool(settings, ledger, github, sleeps=sleeps)(query="GRPOConfig")

    assert len(sleeps) == 1 and len(searches(github)) == 2  # one bounded retry, no more
    assert "search_docs" in str(err.value)


def test_long_rate_limit_reset_is_not_waited_for(github, settings, ledger):
    github.state.update(rate_limited=1, reset_in=3600)
    sleeps = []
    with pytest.raises(ToolError, match="allows requests again"):
        make_tool(settings, ledger, github, sleeps=sleeps)(query="GRPOConfig")
    assert sleeps == [] and len(searches(github)) == 1


def test_rate_limited_contents_fall_back_to_fragments_without_waiting(github, settings, ledger):
    github.state.update(contents_rate_limited=10)
    sleeps = []
    hits = make_tool(settings, ledger, github, sleeps=sleeps)(query="GRPOConfig")["hits"]

    assert sleeps == []
    assert "reward_funcs" in hits[0]["snippet"] or "GRPO" in hits[0]["snippet"]


def test_malformed_json_is_a_tool_error(github, settings, ledger):
    with pytest.raises(ToolError, match="not valid JSON"):
        make_tool(settings, ledger, github)(query="malformedjson")


def test_bad_arguments_fail_before_any_request(github, settings, ledger):
    tool = make_tool(settings, ledger, github)
    with pytest.raises(ToolError, match="Unknown library 'jax'"):
        tool(query="Trainer", library="jax")
    with pytest.raises(ToolError, match="repo:"):
        tool(query="token repo:someone/else")
    with pytest.raises(ToolError, match="owner/name"):
        tool(query="GRPOConfig", repo="not a repo")
    with pytest.raises(ToolError, match="non-empty"):
        tool(query="  ")
    assert github.requests == []


def test_item_urls_on_another_host_never_receive_the_token(github, settings, ledger, monkeypatch):
    from tests.fakes import github_api

    original = github_api.load

    def foreign_urls(name):
        data = original(name)
        if name == "search_code.json":
            for item in data["items"]:
                item["url"] = item["url"].replace("https://api.github.com", "https://evil.example")
        return data

    monkeypatch.setattr(github_api, "load", foreign_urls)
    hits = make_tool(settings, ledger, github)(query="GRPOConfig")["hits"]

    fetched = [r for r in github.requests if "/contents/" in r.path]
    assert fetched[0].path == "/repos/huggingface/trl/contents/trl/scripts/grpo.py"  # rebuilt on our host
    assert "GRPOTrainer" in hits[0]["snippet"]
