"""search_datasets and inspect_dataset against the loopback fake Hub + dataset viewer, and
inspect_dataset on local files."""

from __future__ import annotations

import json

import pytest

from tests.fakes.hub_api import (
    FIXTURES,
    GATED,
    GRANTED_TOKEN,
    INJECTION,
    NOT_READY,
    PREFERENCE,
    SENTIMENT,
    SHAREGPT,
    hub_settings,
    load,
    serve_hub,
)
from tools.context import ToolContext
from tools.data.datasets import FIELD_CHARS, InspectDatasetTool, SearchDatasetsTool, detect_trl_format
from tools.errors import ToolError
from tools.untrusted import END


def tools_for(server, settings, ledger, token=None):
    ctx = ToolContext(hub_settings(server, settings, token=token), ledger, jobs=None)
    return SearchDatasetsTool(ctx), InspectDatasetTool(ctx)


VIEWER_ROUTES = ("/splits", "/first-rows", "/size", "/rows", "/statistics")


def viewer_requests(server):
    return [r for r in server.requests if r.path in VIEWER_ROUTES]


def unfence(cell: str, source: str | None = None) -> str:
    """The text inside a fenced cell; with `source`, also check the fence names it."""
    first, rest = cell.split("\n", 1)
    assert first.startswith("<<<UNTRUSTED DATA from ") and rest.endswith("\n" + END), cell
    if source is not None:
        assert first.startswith(f"<<<UNTRUSTED DATA from {source} "), first
    return rest[: -len(END) - 1]


def plain(row: dict) -> dict:
    """A returned row with its string cells unfenced (list/dict cells parsed back from their JSON)."""
    out = {}
    for key, value in row.items():
        if isinstance(value, str):
            text = unfence(value)
            out[key] = json.loads(text) if text[:1] in "[{" else text
        else:
            out[key] = value
    return out


# search_datasets

def test_search_sends_params_and_parses_fields(hub, settings, ledger):
    search, _ = tools_for(hub, settings, ledger)
    hits = search(query="ml-intern", limit=3, sort="likes", filter="language:en, format:json")

    request = hub.requests[-1]
    assert request.path == "/api/datasets"
    assert request.query == {"search": ["ml-intern"], "filter": ["language:en", "format:json"],
                             "sort": ["likes"], "limit": ["3"]}
    assert [h["id"] for h in hits] == [GATED, SENTIMENT, SHAREGPT]  # json-format ones, most liked first
    sentiment = hits[1]
    assert sentiment == {
        "id": SENTIMENT, "downloads": 1203, "likes": 4, "gated": False,
        "tags": ["task_categories:text-classification", "task_ids:sentiment-classification",
                 "language:en", "license:apache-2.0", "size_categories:n<1K", "format:json",
                 "modality:text", "trl"],
        "last_modified": "2026-11-20",
    }
    assert hits[0]["gated"] == "manual"
    assert all("region:us" not in h["tags"] for h in hits)


def test_search_follows_pagination_up_to_limit(settings, ledger):
    server = serve_hub({"page_size": 2})
    try:
        search, _ = tools_for(server, settings, ledger)
        hits = search(query="", filter="language:en", limit=5)
    finally:
        server.close()
    assert len(hits) == 5
    assert [h["downloads"] for h in hits] == sorted((h["downloads"] for h in hits), reverse=True)
    assert [r.query.get("cursor") for r in server.requests] == [None, ["2"], ["4"]]
    assert server.requests[0].query["sort"] == ["downloads"]


def test_search_refuses_bad_sort_and_empty_request(hub, settings, ledger):
    search, _ = tools_for(hub, settings, ledger)
    with pytest.raises(ToolError, match="sort must be one of downloads, likes"):
        search(query="gsm8k", sort="popularity")
    with pytest.raises(ToolError, match="needs a query or a filter"):
        search(query="")
    assert hub.requests == []


def test_search_rate_limit_is_a_tool_error(settings, ledger):
    server = serve_hub({"rate_limit": 1})
    try:
        search, _ = tools_for(server, settings, ledger)
        with pytest.raises(ToolError, match="HTTP 429"):
            search(query="gsm8k")
    finally:
        server.close()


# inspect_dataset on the Hub

def test_inspect_prompt_completion_dataset(hub, settings, ledger):
    _, inspect = tools_for(hub, settings, ledger)
    info = inspect(dataset=SENTIMENT, n_rows=3)

    paths = [(r.path, r.query) for r in viewer_requests(hub)]
    assert paths == [
        ("/splits", {"dataset": [SENTIMENT]}),
        ("/first-rows", {"dataset": [SENTIMENT], "config": ["default"], "split": ["train"]}),
        ("/size", {"dataset": [SENTIMENT]}),
    ]
    assert all("authorization" not in r.headers for r in hub.requests)
    assert info["source"] == "hub" and (info["config"], info["split"]) == ("default", "train")
    assert info["splits"] == [{"config": "default", "split": "train", "num_rows": 600},
                              {"config": "default", "split": "test", "num_rows": 120}]
    assert info["columns"] == {"prompt": "string", "completion": "string"}
    first = info["rows"][0]
    assert unfence(first["prompt"], f"dataset:{SENTIMENT} rows[0].prompt") == \
        "Review: Everyone said this music is splendid.\nSentiment:"
    assert plain(first) == {"prompt": "Review: Everyone said this music is splendid.\nSentiment:",
                            "completion": " positive"}
    assert len(info["rows"]) == 3
    assert (info["trl_format"], info["usable_for"]) == ("prompt-completion", ["SFT", "GRPO"])


def test_inspect_picks_requested_split_and_caps_rows(hub, settings, ledger):
    _, inspect = tools_for(hub, settings, ledger)
    info = inspect(dataset=SENTIMENT, split="test", n_rows=50)
    assert info["split"] == "test"
    assert len(info["rows"]) == 20
    assert unfence(info["rows"][0]["prompt"]).startswith("Review: My friends said")


def test_inspect_conversational_preference_config(hub, settings, ledger):
    _, inspect = tools_for(hub, settings, ledger)
    info = inspect(dataset=PREFERENCE, config="conversational", n_rows=1)

    assert info["columns"] == {"chosen": "list<{content: string, role: string}>",
                               "rejected": "list<{content: string, role: string}>"}
    assert (info["trl_format"], info["usable_for"]) == ("preference", ["DPO", "Reward"])
    notes = " ".join(info["notes"])
    assert "implicit prompt" in notes and "Conversational" in notes
    assert plain(info["rows"][0])["chosen"][0] == {"role": "user", "content": "Write a haiku about autumn."}


def test_inspect_sharegpt_needs_conversion_and_caps_fields(hub, settings, ledger):
    _, inspect = tools_for(hub, settings, ledger)
    info = inspect(dataset=SHAREGPT)

    assert info["columns"]["conversations"] == "list<{from: string, value: string}>"
    assert (info["trl_format"], info["usable_for"]) == ("needs-conversion", [])
    assert "ShareGPT" in info["notes"][0] and "`messages`" in info["notes"][0]
    long_turn = plain(info["rows"][0])["conversations"][2]["value"]
    assert len(long_turn) == FIELD_CHARS and long_turn.endswith("…")
    turns = plain(info["rows"][1])["conversations"]
    assert len(turns) == 9 and turns[-1] == "… 4 more items"


def test_unknown_dataset_suggests_search(hub, settings, ledger):
    _, inspect = tools_for(hub, settings, ledger)
    with pytest.raises(ToolError, match=r"not found on the Hub.*search_datasets\(query=\"nothing\"\)"):
        inspect(dataset="nobody/nothing")
    assert [r.path for r in hub.requests] == ["/splits", "/api/datasets/nobody/nothing"]


def test_gated_dataset_without_token_says_set_hf_token(hub, settings, ledger):
    _, inspect = tools_for(hub, settings, ledger)
    with pytest.raises(ToolError) as err:
        inspect(dataset=GATED)
    message = str(err.value)
    assert "is gated" in message and "HF_TOKEN" in message
    assert f"{hub.url}/datasets/{GATED}" in message


def test_gated_dataset_with_a_token_not_granted(hub, settings, ledger):
    _, inspect = tools_for(hub, settings, ledger, token="hf_not_granted")
    with pytest.raises(ToolError, match="has not been granted access: accept its terms"):
        inspect(dataset=GATED)


def test_gated_dataset_with_granted_token_is_read_with_bearer(hub, settings, ledger):
    _, inspect = tools_for(hub, settings, ledger, token=GRANTED_TOKEN)
    info = inspect(dataset=GATED, n_rows=1)

    assert {r.headers["authorization"] for r in viewer_requests(hub)} == {f"Bearer {GRANTED_TOKEN}"}
    assert info["trl_format"] == "needs-conversion"
    assert "question/answer" in info["notes"][0]


def test_viewer_not_ready(hub, settings, ledger):
    _, inspect = tools_for(hub, settings, ledger)
    with pytest.raises(ToolError, match="still processing.*retry in a few minutes"):
        inspect(dataset=NOT_READY)


def test_unknown_config_and_split_list_the_real_ones(hub, settings, ledger):
    _, inspect = tools_for(hub, settings, ledger)
    with pytest.raises(ToolError, match="no config 'chat'; configs: default, conversational"):
        inspect(dataset=PREFERENCE, config="chat")
    with pytest.raises(ToolError, match="no split 'validation'; splits: train, test"):
        inspect(dataset=PREFERENCE, split="validation")


def test_viewer_refusal_when_the_hub_cannot_tell_why(settings, ledger):
    server = serve_hub({"rate_limit": 1})  # the viewer says 401, then the Hub lookup gets a 429
    try:
        _, inspect = tools_for(server, settings, ledger)
        with pytest.raises(ToolError, match="refused 'nobody/nothing' \\(HTTP 401.*set HF_TOKEN"):
            inspect(dataset="nobody/nothing")
    finally:
        server.close()


def test_unreachable_viewer(settings, ledger):
    server = serve_hub()
    server.close()
    _, inspect = tools_for(server, settings, ledger)
    with pytest.raises(ToolError, match="Could not reach the dataset viewer"):
        inspect(dataset=SENTIMENT)


# the dataset card

def card_requests(server):
    return [(r.method, r.path) for r in server.requests if r.path not in VIEWER_ROUTES]


def sha_of(dataset: str) -> str:
    return next(d["sha"] for d in load("datasets.json") if d["id"] == dataset)


def test_card_is_fetched_like_hf_hub_download_does_and_comes_back_fenced(hub, settings, ledger):
    _, inspect = tools_for(hub, settings, ledger)
    info = inspect(dataset=SENTIMENT, n_rows=1)

    sha = sha_of(SENTIMENT)
    assert card_requests(hub) == [
        ("GET", f"/api/datasets/{SENTIMENT}"),  # license, gated, siblings and the commit
        ("HEAD", f"/datasets/{SENTIMENT}/resolve/{sha}/README.md"),  # 307 to resolve-cache, followed
        ("HEAD", f"/api/resolve-cache/datasets/{SENTIMENT}/{sha}/README.md"),
        ("GET", f"/api/resolve-cache/datasets/{SENTIMENT}/{sha}/README.md"),
    ]
    assert (info["license"], info["gated"]) == ("apache-2.0", False)
    card = unfence(info["card"], f"dataset card of {SENTIMENT}")
    assert card.startswith("# Tiny Sentiment\n\nShort English product and media reviews")
    assert "license: apache-2.0" not in card and "---" not in card  # the YAML header is metadata, not text
    assert card == (FIXTURES / "card_tiny-sentiment.md").read_text().split("---\n", 2)[2].strip()
    assert not any("card" in note for note in info["notes"])


def test_card_is_cached_at_its_commit(hub, settings, ledger):
    _, inspect = tools_for(hub, settings, ledger)
    first = inspect(dataset=SENTIMENT, n_rows=0)
    hub.httpd.requests.clear()
    again = inspect(dataset=SENTIMENT, n_rows=0)

    assert again["card"] == first["card"]
    assert card_requests(hub) == [("GET", f"/api/datasets/{SENTIMENT}")]
    assert (settings.data_dir / "hf-cache").is_dir()


def test_long_card_is_capped_and_says_so(hub, settings, ledger, monkeypatch):
    monkeypatch.setattr("tools.data.datasets.CARD_CHARS", 100)
    _, inspect = tools_for(hub, settings, ledger)
    card = inspect(dataset=SENTIMENT, n_rows=0)["card"]

    body = (FIXTURES / "card_tiny-sentiment.md").read_text().split("---\n", 2)[2].strip()
    assert f"(truncated: first 100 of {len(body)} characters)" in card.split("\n", 1)[0]
    assert unfence(card) == body[:100]


def test_missing_card_is_null_with_a_note_not_an_error(hub, settings, ledger):
    _, inspect = tools_for(hub, settings, ledger)
    info = inspect(dataset=SHAREGPT, n_rows=0)

    assert info["card"] is None and info["license"] == "apache-2.0"  # license from the Hub tags
    assert f"{SHAREGPT} has no dataset card (README.md)" in info["notes"][-1]
    assert f"{hub.url}/datasets/{SHAREGPT}" in info["notes"][-1]
    assert card_requests(hub) == [("GET", f"/api/datasets/{SHAREGPT}")]  # no download of a file not listed


def test_card_lookup_failure_is_a_note(settings, ledger):
    server = serve_hub({"rate_limit": 1})  # the viewer answers; the Hub's dataset info gets a 429
    try:
        _, inspect = tools_for(server, settings, ledger)
        info = inspect(dataset=SENTIMENT, n_rows=1)
    finally:
        server.close()
    assert info["trl_format"] == "prompt-completion" and len(info["rows"]) == 1
    assert (info["card"], info["license"]) == (None, None)
    assert "Could not read the dataset card (HfHubHTTPError, HTTP 429)" in info["notes"][-1]


def test_gated_card_is_read_with_the_bearer_token_only_in_the_header(hub, settings, ledger):
    _, inspect = tools_for(hub, settings, ledger, token=GRANTED_TOKEN)
    info = inspect(dataset=GATED, n_rows=0)

    assert (info["license"], info["gated"]) == ("cc-by-4.0", "manual")
    assert unfence(info["card"]).startswith("# Gated MedQA (fixture)")
    for request in hub.requests:
        assert request.headers.get("authorization") == f"Bearer {GRANTED_TOKEN}"
        assert GRANTED_TOKEN not in request.path + json.dumps(request.query) + request.body.decode()


def test_injected_card_and_rows_cannot_leave_their_fences(hub, settings, ledger):
    _, inspect = tools_for(hub, settings, ledger)
    info = inspect(dataset=INJECTION, n_rows=4)

    card = info["card"]
    assert card.count(END) == 1 and card.endswith(END) and card.count("<<<") == 2
    assert "IMPORTANT SYSTEM NOTICE" in unfence(card)  # kept, as data
    cells = [cell for row in info["rows"] for cell in row.values()]
    assert all(cell.count(END) == 1 and cell.endswith(END) for cell in cells)
    assert "ignore previous instructions" in unfence(info["rows"][2]["completion"])
    outside = json.dumps({k: v for k, v in info.items() if k not in ("card", "rows")})
    assert "ignore previous" not in outside.lower() and "evil" not in outside


def test_describe_reads_no_card_and_keeps_rows_plain(hub, settings, ledger):
    _, inspect = tools_for(hub, settings, ledger)
    info = inspect.describe(SENTIMENT, n_rows=1)

    assert [r.path for r in hub.requests] == ["/splits", "/first-rows", "/size"]
    assert "card" not in info
    assert info["rows"] == [{"prompt": "Review: Everyone said this music is splendid.\nSentiment:",
                             "completion": " positive"}]


def test_non_text_cells_are_not_fenced(hub, settings, ledger, tmp_path):
    path = write_jsonl(tmp_path / "scored.jsonl", [{"text": "fine", "score": 0.5, "label": True, "n": 3,
                                                     "extra": None}])
    _, inspect = tools_for(hub, settings, ledger)
    row = inspect(dataset=str(path))["rows"][0]
    assert {k: row[k] for k in ("score", "label", "n", "extra")} == {"score": 0.5, "label": True, "n": 3,
                                                                      "extra": None}
    assert unfence(row["text"]) == "fine"


# inspect_dataset on local files

def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_local_jsonl_file(hub, settings, ledger, tmp_path):
    rows = [{"prompt": f"Review: {i}\nSentiment:", "completion": " positive"} for i in range(7)]
    path = write_jsonl(tmp_path / "sentiment.jsonl", rows)
    _, inspect = tools_for(hub, settings, ledger)
    info = inspect(dataset=str(path), n_rows=2)

    assert hub.requests == []
    assert info["source"] == "local" and info["split"] == "train"
    assert info["splits"] == [{"config": "default", "split": "train", "num_rows": 7, "path": str(path)}]
    assert info["columns"] == {"prompt": "string", "completion": "string"}
    assert [plain(r) for r in info["rows"]] == rows[:2]
    assert unfence(info["rows"][0]["prompt"], f"dataset:{path} rows[0].prompt") == rows[0]["prompt"]
    assert info["trl_format"] == "prompt-completion"
    assert (info["card"], info["license"], info["gated"]) == (None, None, False)


def test_local_zero_rows_still_detects_format(hub, settings, ledger, tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Solve 2+2", "answer": "4"}])
    _, inspect = tools_for(hub, settings, ledger)
    info = inspect(dataset=str(path), n_rows=0)
    assert info["rows"] == [] and info["trl_format"] == "prompt-only"
    assert info["notes"] == []


def test_local_folder_of_splits_prefers_train(hub, settings, ledger, tmp_path):
    chat = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}]
    write_jsonl(tmp_path / "ds" / "test.jsonl", chat)
    write_jsonl(tmp_path / "ds" / "train.jsonl", chat * 3)
    _, inspect = tools_for(hub, settings, ledger)
    info = inspect(dataset=str(tmp_path / "ds"))

    assert info["split"] == "train"
    assert [(s["split"], s["num_rows"]) for s in info["splits"]] == [("test", 1), ("train", 3)]
    assert info["columns"] == {"messages": "list<{role: string, content: string}>"}
    assert (info["trl_format"], info["usable_for"]) == ("messages", ["SFT"])


def test_local_path_relative_to_data_dir_and_json_list(hub, settings, ledger):
    path = settings.data_dir / "datasets" / "prefs.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"data": [{"chosen": "a", "rejected": "b"}]}))
    _, inspect = tools_for(hub, settings, ledger)
    info = inspect(dataset="datasets/prefs.json")
    assert info["splits"][0]["num_rows"] == 1
    assert info["trl_format"] == "preference"


def test_local_malformed_line_names_the_line(hub, settings, ledger, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n\n{"text": "broken"\n')
    _, inspect = tools_for(hub, settings, ledger)
    with pytest.raises(ToolError, match=r"bad.jsonl line 3 is not valid JSON"):
        inspect(dataset=str(path))
    path.write_text('{"text": "ok"}\n["a list"]\n')
    with pytest.raises(ToolError, match=r"line 2 is a JSON list, not an object"):
        inspect(dataset=str(path))


def test_local_inconsistent_rows_are_noted(hub, settings, ledger, tmp_path):
    path = write_jsonl(tmp_path / "mixed.jsonl", [{"text": "a"}, {"text": "b"}, {"txt": "c"}])
    _, inspect = tools_for(hub, settings, ledger)
    info = inspect(dataset=str(path))
    assert "1 rows have other fields than the first row (first at line 3)." in info["notes"]


def test_missing_local_path_and_bad_split(hub, settings, ledger, tmp_path):
    _, inspect = tools_for(hub, settings, ledger)
    with pytest.raises(ToolError, match="No file or folder at"):
        inspect(dataset=str(tmp_path / "nope.jsonl"))
    path = write_jsonl(tmp_path / "d" / "train.jsonl", [{"text": "a"}])
    with pytest.raises(ToolError, match="No split 'dev'.*splits: train"):
        inspect(dataset=str(path.parent), split="dev")
    assert hub.requests == []


# format detection

MSGS = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


@pytest.mark.parametrize("row, expected", [
    ({"messages": MSGS}, ("messages", ["SFT"])),
    ({"text": "Once upon a time"}, ("text", ["SFT"])),
    ({"prompt": "2+2=", "completion": "4"}, ("prompt-completion", ["SFT", "GRPO"])),
    ({"prompt": "p", "chosen": "a", "rejected": "b"}, ("preference", ["DPO", "Reward"])),
    ({"chosen": MSGS, "rejected": MSGS}, ("preference", ["DPO", "Reward"])),
    ({"prompt": "p", "completion": "c", "label": True}, ("unpaired-preference", ["KTO"])),
    ({"prompt": [{"role": "user", "content": "Solve 2+2"}], "answer": "4"}, ("prompt-only", ["GRPO"])),
    ({"conversations": [{"from": "human", "value": "hi"}]}, ("needs-conversion", [])),
    ({"messages": [{"from": "human", "value": "hi"}]}, ("needs-conversion", [])),
    ({"instruction": "i", "input": "", "output": "o", "text": "i o"}, ("needs-conversion", [])),
    ({"question": "q", "answer": "a"}, ("needs-conversion", [])),
    ({"text": "great film", "label": 1}, ("needs-conversion", [])),
    ({"foo": "bar"}, ("unknown", [])),
])
def test_detect_trl_format(row, expected):
    assert detect_trl_format(list(row), row) == expected


def test_tools_pass_smolagents_validation(hub, settings, ledger):
    search, inspect = tools_for(hub, settings, ledger)
    assert (search.name, inspect.name) == ("search_datasets", "inspect_dataset")
    assert search.output_type == inspect.output_type == "object"


def test_search_named_filters_become_hub_tags(hub, settings, ledger):
    search, _ = tools_for(hub, settings, ledger)
    hits = search(query="", task="text-classification", language="en", size="n<1K", license="cc-by-4.0",
                  filter="format:parquet", sort="trending")
    assert hub.requests[-1].query == {
        "filter": ["format:parquet", "task_categories:text-classification", "language:en",
                   "size_categories:n<1K", "license:cc-by-4.0"],
        "sort": ["trendingScore"], "limit": ["10"]}
    assert [h["id"] for h in hits] == ["ml-intern-fixtures/noisy-reviews"]
    assert search(query="", task="task_categories:text-classification", license="apache-2.0")[0]["id"] == SENTIMENT
    with pytest.raises(ToolError, match=r"size must be one of n<1K, 1K<n<10K, .*got '10k-100k'"):
        search(query="imdb", size="10k-100k")
