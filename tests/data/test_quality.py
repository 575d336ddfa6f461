"""check_dataset_quality against the fake dataset viewer (/rows, /statistics) and on local files.

The noisy-reviews fixture (tests/fixtures/hub/viewer_noisy-reviews.json) plants known problems in
150 rows: 4 exact copies, 6 near copies (2 case/punctuation variants, 4 with a word appended),
5 empty and 2 near-empty texts, 3 reviews copied from evals/data/tiny_sentiment, 127/23 labels.
"""

from __future__ import annotations

import itertools
import json
import random
import time

import pytest

from evals.fixture_data import EVAL_DIR
from tests.fakes.hub_api import NOISY, SENTIMENT, hub_settings, serve_hub
from tools.context import ToolContext
from tools.data.quality import (
    CheckDatasetQualityTool,
    _shingles,
    duplicates,
    label_columns,
    language_profile,
    near_duplicate_pairs,
)
from tools.data.rows import _next_offset
from tools.errors import ToolError

EVAL = str(EVAL_DIR)  # evals/data/tiny_sentiment, the folder with test.jsonl


@pytest.fixture
def hub():
    server = serve_hub()
    yield server
    server.close()


def check_tool(server, settings, ledger):
    return CheckDatasetQualityTool(ToolContext(hub_settings(server, settings), ledger, jobs=None))


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_noisy_fixture_numbers_and_verdict(hub, settings, ledger):
    report = check_tool(hub, settings, ledger)(dataset=NOISY, eval_dataset=EVAL)

    viewer = [(r.path, r.query.get("offset"), r.query.get("length")) for r in hub.requests]
    assert viewer == [("/splits", None, None), ("/first-rows", None, None), ("/size", None, None),
                      ("/rows", ["0"], ["100"]), ("/rows", ["100"], ["100"]), ("/statistics", None, None)]
    assert report["sample"] == {"rows": 150, "of": 150, "how": "all rows"}
    assert report["trl_format"] == "needs-conversion"
    assert report["columns"] == {"text": {"empty": 5, "near_empty": 2}, "label": {"empty": 0, "near_empty": 0}}
    assert report["rows_with_empty_fields"] == 7
    dups = report["duplicates"]
    assert {k: dups[k] for k in ("rows_compared", "exact", "exact_share", "near_pairs", "near_rows", "near_share")} == {
        "rows_compared": 143, "exact": 4, "exact_share": 0.028, "near_pairs": 6, "near_rows": 6, "near_share": 0.042}
    assert dups["example"].startswith("<<<UNTRUSTED DATA from dataset:ml-intern-fixtures/noisy-reviews")
    assert report["labels"] == {"label": {"counts": {"negative": 23, "positive": 127}, "classes": 2,
                                          "majority": "positive", "majority_share": 0.8467,
                                          "source": "statistics (full split)"}}
    overlap = report["eval_overlap"]
    assert overlap["eval_dataset"].endswith("tiny_sentiment/test.jsonl") and overlap["eval_split"] == "test"
    assert (overlap["eval_items"], overlap["contaminated"], overlap["fraction"]) == (120, 3, 0.025)
    assert overlap["eval_indices"] == [1, 4, 7] and overlap["train_rows"] == [12, 36, 37]
    assert "our book turned out mediocre in the end" in overlap["example"]
    assert report["lengths"]["unit"] == "whitespace words"
    assert report["lengths"]["columns"]["text"]["min"] == 0 and report["lengths"]["per_example"]["max"] == 26
    assert report["language"]["english_like_share"] == 1.0 and report["language"]["rows_checked"] == 145
    assert report["statistics"]["num_examples"] == 150
    assert report["statistics"]["columns"]["text"] == {"type": "string_text", "null_share": 0.0,
                                                       "length": {"min": 0, "median": 103.0, "max": 123}}

    checks = {p["check"]: p["severity"] for p in report["problems"]}
    assert checks == {"empty fields": "caveat", "exact duplicates": "caveat", "near duplicates": "caveat",
                      "label balance": "caveat", "eval overlap": "blocker", "format": "caveat"}
    blocker = next(p for p in report["problems"] if p["severity"] == "blocker")
    assert "3 of 120 eval items (2.5%)" in blocker["detail"] and "[12, 36, 37]" in blocker["detail"]
    assert "Remove the overlapping training rows" in blocker["fix"]
    assert report["verdict"] == "not usable"
    assert report["summary"].startswith("Not usable as is: eval overlap; also empty fields")


def test_without_an_eval_set_the_noisy_set_is_usable_with_caveats(hub, settings, ledger):
    report = check_tool(hub, settings, ledger)(dataset=NOISY, sample_size=120)
    assert report["eval_overlap"] is None
    assert report["sample"] == {"rows": 120, "of": 150, "how": "first 120 rows"}  # 150 < 2 full pages
    assert report["verdict"] == "usable with caveats"
    assert "eval overlap" not in {p["check"] for p in report["problems"]}


def test_hub_eval_set_uses_its_test_split_and_labels_from_the_sample(hub, settings, ledger):
    report = check_tool(hub, settings, ledger)(dataset=NOISY, eval_dataset=SENTIMENT)
    rows_requests = [(r.query["dataset"][0], r.query["split"][0]) for r in hub.requests if r.path == "/rows"]
    assert rows_requests[-1] == (SENTIMENT, "test")
    overlap = report["eval_overlap"]
    assert overlap["eval_split"] == "test" and overlap["eval_items"] == 100
    # eval prompts are "Review: <review>\nSentiment:": the three copied reviews have 8 words each
    # ("Our book turned out mediocre in the end."), so an 8-gram survives the template around them
    assert overlap["eval_indices"] == [1, 4, 7] and overlap["train_rows"] == [12, 36, 37]


def test_statistics_missing_and_sample_labels(hub, settings, ledger):
    report = check_tool(hub, settings, ledger)(dataset=SENTIMENT, sample_size=60)
    assert report["statistics"] is None
    assert "no full-split statistics" in report["notes"][-1]
    assert report["labels"]["completion"] == {"counts": {"positive": 30, "negative": 30}, "classes": 2,
                                              "majority": "positive", "majority_share": 0.5, "source": "sample"}


def clean_rows(n=30):
    return [{"prompt": f"Question {i}: what is {i} plus {i + 1}?", "completion": f"The answer is {2 * i + 1}."}
            for i in range(n)]


def test_clean_local_file_is_good_with_token_lengths(hub, settings, ledger, tmp_path, tiny_model_dir):
    from transformers import AutoTokenizer

    path = write_jsonl(tmp_path / "clean.jsonl", clean_rows())
    report = check_tool(hub, settings, ledger)(dataset=str(path), tokenizer=str(tiny_model_dir))
    assert hub.requests == []
    assert report["sample"] == {"rows": 30, "of": 30, "how": "all rows"}
    assert report["verdict"] == "good" and report["problems"] == []
    assert report["summary"] == "No problems found in the sample."
    assert report["labels"] == {} and report["statistics"] is None
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    counts = sorted(len(tok(f"{r['prompt']}\n{r['completion']}", add_special_tokens=False)["input_ids"])
                    for r in clean_rows())
    lengths = report["lengths"]
    assert lengths["unit"].startswith("tokens (") and "note" not in lengths
    assert lengths["per_example"]["min"] == counts[0] and lengths["per_example"]["max"] == counts[-1]
    assert lengths["per_example"]["p95"] == counts[28]  # nearest rank: ceil(0.95 * 30) = 29th value


def test_unloadable_tokenizer_falls_back_to_words(hub, settings, ledger, tmp_path):
    path = write_jsonl(tmp_path / "clean.jsonl", clean_rows(12))
    report = check_tool(hub, settings, ledger)(dataset=str(path), tokenizer=str(tmp_path / "no-model"))
    assert report["lengths"]["unit"] == "whitespace words"
    assert "Could not load tokenizer" in report["lengths"]["note"]
    assert report["lengths"]["per_example"]["min"] == 11  # "Question 0: what is 0 plus 1?\nThe answer is 1."


def test_empty_heavy_and_one_class_local_file_is_not_usable(hub, settings, ledger, tmp_path):
    rows = [{"question": "" if i % 2 else f"Is {i} even?", "answer": "yes", "input": ""} for i in range(20)]
    report = check_tool(hub, settings, ledger)(dataset=str(write_jsonl(tmp_path / "bad.jsonl", rows)))
    assert report["columns"]["question"] == {"empty": 10, "near_empty": 0}
    assert report["columns"]["input"] == {"empty": 20, "near_empty": 0}  # optional column: not a problem
    assert report["rows_with_empty_fields"] == 10
    assert report["labels"]["answer"]["classes"] == 1
    problems = {p["check"]: p for p in report["problems"]}
    assert problems["empty fields"]["severity"] == "blocker"
    assert "10 of 20 sampled rows (50.0%)" in problems["empty fields"]["detail"]
    assert problems["label balance"]["severity"] == "caveat"
    assert report["verdict"] == "not usable"


def test_errors_name_what_is_wrong(hub, settings, ledger, tmp_path):
    tool = check_tool(hub, settings, ledger)
    with pytest.raises(ToolError, match="not found on the Hub"):
        tool(dataset="nobody/nothing")
    with pytest.raises(ToolError, match="No file or folder at"):
        tool(dataset=str(write_jsonl(tmp_path / "ok.jsonl", clean_rows(12))), eval_dataset="./missing-eval")
    with pytest.raises(ToolError, match="has no split 'validation'"):
        tool(dataset=NOISY, split="validation")


def test_language_heuristic_and_label_detection():
    profile = language_profile(["The cat sat on the mat with a hat.", "Это пример текста на русском языке",
                                "Le chat est assis sur le tapis rouge", "12345"])
    assert profile["rows_checked"] == 3
    assert (profile["english_like_share"], profile["other_latin_share"], profile["non_latin_share"]) == (
        0.3333, 0.3333, 0.3333)
    rows = [{"text": f"review number {i}", "label": i % 3, "answer": "A", "id": i} for i in range(12)]
    assert label_columns(rows) == {"label", "answer"}
    assert label_columns(rows, {"stars": ["1", "2"]}) == {"label", "answer", "stars"}


def test_near_duplicate_search_is_exact_and_fast():
    rng = random.Random(1)
    vocab = [f"w{i}" for i in range(40)]
    sets = []
    for _ in range(200):  # short sets over a small vocabulary: many borderline pairs
        tokens = rng.choices(vocab, k=rng.randint(3, 30))
        edited = list(tokens)
        edited[rng.randrange(len(edited))] = "x"
        sets += [_shingles(tokens), _shingles(edited)]
    brute = [(i, j) for i, j in itertools.combinations(range(len(sets)), 2)
             if len(sets[i] & sets[j]) / len(sets[i] | sets[j]) >= 0.8]
    assert near_duplicate_pairs(sets) == brute and len(brute) > 10

    vocab = [f"w{i}" for i in range(3000)]
    rows = [{"prompt": " ".join(rng.choices(vocab, k=200)), "completion": " ".join(rng.choices(vocab, k=50))}
            for _ in range(990)]
    for k in range(10):  # one word changed in 10 rows' prompts
        words = rows[k]["prompt"].split()
        words[100] = "changed"
        rows.append({**rows[k], "prompt": " ".join(words)})
    started = time.monotonic()
    report = duplicates(rows, "dataset:x")
    assert time.monotonic() - started < 3
    assert (report["exact"], report["near_pairs"], report["near_rows"]) == (0, 10, 10)


def test_spread_sample_offsets():
    # 300 rows wanted from 1000: pages at 0, 450, 900 rather than 0, 100, 200
    assert _next_offset(100, total=1000, limit=300, pages_read=1, spread=True) == 450
    assert _next_offset(550, total=1000, limit=300, pages_read=2, spread=True) == 900
    assert _next_offset(100, total=1000, limit=300, pages_read=1, spread=False) == 100
    assert _next_offset(100, total=250, limit=200, pages_read=1, spread=True) == 150
    assert _next_offset(100, total=180, limit=150, pages_read=1, spread=True) == 100  # too few rows to spread
    assert _next_offset(150, total=150, limit=500, pages_read=2, spread=True) is None


def test_tool_validates_under_smolagents(hub, settings, ledger):
    tool = check_tool(hub, settings, ledger)
    assert tool.name == "check_dataset_quality" and tool.output_type == "object"
    assert set(tool.inputs) == {"dataset", "split", "sample_size", "tokenizer", "eval_dataset", "config"}
