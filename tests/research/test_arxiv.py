"""arXiv ids, the Atom feed parser, the query builder and polite_get's bounded retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from tests.fakes.arxiv_api import FIXTURES, serve_arxiv
from tests.fakes.server import FakeHandler, route, serve
from tools.errors import ToolError
from tools.research.arxiv import (
    RemoteError,
    Waiter,
    arxiv_id,
    arxiv_search,
    build_query,
    date_bound,
    parse_feed,
    polite_get,
)


@pytest.mark.parametrize("text, expected", [
    ("2305.18290", "2305.18290"), ("2305.18290v3", "2305.18290"), ("arXiv:2402.03300v2", "2402.03300"),
    ("https://arxiv.org/abs/2106.09685v2", "2106.09685"), ("http://arxiv.org/pdf/2501.12948v1", "2501.12948"),
    ("hep-th/9901001v1", "hep-th/9901001"),
])
def test_arxiv_id_strips_prefixes_urls_and_versions(text, expected):
    assert arxiv_id(text) == expected


def test_arxiv_id_keeps_the_version_when_asked_and_refuses_non_ids():
    assert arxiv_id("arXiv:2402.03300v2", keep_version=True) == "2402.03300v2"
    assert arxiv_id("2402.03300", keep_version=True) == "2402.03300"
    with pytest.raises(ToolError, match="not an arXiv id"):
        arxiv_id("direct preference optimization")


def test_date_bounds_cover_whole_periods_and_refuse_bad_dates():
    assert date_bound("2024", end=False) == "202401010000"
    assert date_bound("2024", end=True) == "202412312359"
    assert date_bound("2024-02", end=True) == "202402292359"
    assert date_bound("2023-05-29", end=False) == "202305290000"
    assert date_bound(None, end=True) is None
    with pytest.raises(ToolError, match="not YYYY-MM-DD"):
        date_bound("last year", end=False)
    with pytest.raises(ToolError, match="not YYYY-MM-DD"):
        date_bound("2024-13-01", end=False)


def test_query_ands_keywords_category_and_date_range():
    query = build_query("GRPO math-reasoning", "cs.CL", "2024-01-01", "2024-06")
    assert query == "all:GRPO AND all:math-reasoning AND cat:cs.CL AND submittedDate:[202401010000 TO 202406302359]"
    assert build_query("LoRA", None, None, "2021").endswith("submittedDate:[199101010000 TO 202112312359]")


def test_feed_entries_are_parsed_with_versions_stripped_and_whitespace_collapsed():
    entries = {e["arxiv_id"]: e for e in parse_feed((FIXTURES / "arxiv_feed.xml").read_text())}

    dpo = entries["2305.18290"]
    assert dpo["title"] == "Direct Preference Optimization: Your Language Model is Secretly a Reward Model"
    assert dpo["authors"][0] == "Rafael Rafailov" and len(dpo["authors"]) == 6
    assert dpo["published"] == "2023-05-29"
    assert dpo["abstract"].startswith("While large-scale unsupervised language models (LMs) learn broad world")
    assert "\n" not in dpo["abstract"]
    assert dpo["categories"] == ["cs.LG", "cs.AI", "cs.CL"] and dpo["primary_category"] == "cs.LG"
    assert "Kahneman & Tversky" in entries["2402.01306"]["abstract"]  # XML entities decoded
    assert len(entries) == 8


def test_api_error_feed_and_malformed_xml_raise_remote_errors():
    with pytest.raises(RemoteError, match="arXiv rejected the query: max_results must be non-negative"):
        parse_feed((FIXTURES / "arxiv_error.xml").read_text())
    with pytest.raises(RemoteError, match="malformed XML"):
        parse_feed((FIXTURES / "arxiv_feed.xml").read_text()[:900])


def test_search_sends_arxiv_parameters_and_reads_the_error_feed(settings):
    server = serve_arxiv()
    try:
        settings = settings.with_(arxiv_url=server.url)
        recent = arxiv_search(settings, "preference optimization", limit=3, sort="recent")
        assert [e["arxiv_id"] for e in recent] == ["2405.14734", "2403.07691", "2402.01306"]
        assert server.requests[-1].query == {
            "search_query": ["all:preference AND all:optimization"], "start": ["0"], "max_results": ["3"],
            "sortBy": ["submittedDate"], "sortOrder": ["descending"]}
        with pytest.raises(RemoteError, match="max_results must be non-negative"):
            arxiv_search(settings, "preference", limit=-1)  # HTTP 400 with arXiv's Atom error entry
    finally:
        server.close()


class Flaky(FakeHandler):
    """Answers state["replies"] in order: (status, headers); then 200."""

    @route("GET", r"/thing")
    def thing(self):
        replies = self.state.setdefault("replies", [])
        status, headers = replies.pop(0) if replies else (200, {})
        self.send_text("busy" if status != 200 else "ok", status=status, headers=headers)


def test_retry_after_seconds_and_dates_are_honoured(slept):
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
    server = serve(Flaky, {"replies": [(429, {"Retry-After": "2"}), (503, {"Retry-After": when}), (429, {})]})
    try:
        reply = polite_get(f"{server.url}/thing", timeout=5, waiter=Waiter(20))
        assert reply.status_code == 200 and len(server.requests) == 4
        assert slept[0] == 2.0 and 1.0 <= slept[1] <= 3.0 and slept[2] == 4.0  # no header: 1, 2, 4 s by attempt
    finally:
        server.close()


def test_waits_over_the_budget_or_too_many_retries_fail_fast(slept):
    server = serve(Flaky, {"replies": [(429, {"Retry-After": "2"}), (429, {"Retry-After": "30"})]})
    try:
        with pytest.raises(RemoteError, match=r"HTTP 429 \(asked to wait 30 s, more than the 3 s left") as err:
            polite_get(f"{server.url}/thing", timeout=5, waiter=Waiter(5), label="thing")
        assert err.value.status == 429 and slept == [2.0]
        server.state["replies"] = [(503, {"Retry-After": "0"})] * 3
        with pytest.raises(RemoteError, match="HTTP 503 .still busy after 2 retries"):
            polite_get(f"{server.url}/thing", timeout=5, waiter=Waiter(5), retries=2, label="thing")
    finally:
        server.close()


def test_unreachable_server_is_a_remote_error():
    server = serve(Flaky)
    url = server.url
    server.close()
    with pytest.raises(RemoteError, match="could not reach thing") as err:
        polite_get(f"{url}/thing", timeout=2, waiter=Waiter(1), label="thing")
    assert err.value.status is None
