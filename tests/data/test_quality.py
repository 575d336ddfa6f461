"""check_dataset_quality against the fake dataset viewer (/rows, /statistics) and on local files.

The noisy-reviews fixture (tests/fixtures/hub/viewer_noisy-reviews.json) plants known problems in
150 rows: 4 exact copies, 6 near copies (2 case/punctuation variants, 4 with a word appended),
5 empty and 2 near-empty texts, 3 reviews copied from evals/data/tiny_sentiment, 127/23 labels.
"""

from __future__ import annotations

import itertools
import json
import random

import pytest

from evals.fixture_data import EVAL_DIR
from tests.fakes.hub_api import NOISY, SENTIMENT, hub_settings
from tools.context import ToolContext
from tools.data.language import language_profile
from tools.data.quality import CheckDatasetQualityTool, _shingles, duplicates, label_columns, near_duplicate_pairs
from tools.data.rows import _next_offset
from tools.errors import ToolError

EVAL = str(EVAL_DIR)  # evals/data/tiny_sentiment, the folder with test.jsonl


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
    assert report["columns"] == {"text": {"role": "text", "type": "text", "empty": 5, "near_empty": 2},
                                 "label": {"role": "label", "type": "number", "empty": 0, "near_empty": 0}}
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
    assert overlap["eval_column"] == "review"  # the text column, not the label
    assert (overlap["eval_items"], overlap["contaminated"], overlap["fraction"]) == (120, 3, 0.025)
    assert overlap["levels"] == {"exact": 3, "normalised": 0, "fuzzy": 0}
    assert [(m["eval_item"], m["train_row"]) for m in overlap["matches"]] == [(1, 36), (4, 12), (7, 37)]
    assert overlap["train_rows"] == [12, 36, 37]
    assert "Our book turned out mediocre in the end." in overlap["matches"][0]["text"]
    assert overlap["control"] == {"checked": False, "reason": "the eval dataset has no train split to compare"}
    assert report["lengths"]["unit"] == "whitespace words"
    assert report["lengths"]["columns"]["text"]["min"] == 0 and report["lengths"]["per_example"]["max"] == 26
    assert (report["language"]["main"], report["language"]["main_share"]) == ("en", 1.0)
    assert report["language"]["rows_checked"] == 143 and report["length_outliers"]["rows"] == 0
    assert report["statistics"]["num_examples"] == 150
    assert report["statistics"]["columns"]["text"] == {"type": "string_text", "null_share": 0.0,
                                                       "length": {"min": 0, "median": 103.0, "max": 123}}

    checks = {p["check"]: p["severity"] for p in report["problems"]}
    assert checks == {"empty fields": "caveat", "exact duplicates": "caveat", "near duplicates": "caveat",
                      "label balance": "caveat", "eval overlap": "blocker", "format": "caveat"}
    blocker = next(p for p in report["problems"] if p["severity"] == "blocker")
    assert "3 of 120 eval items (2.5%) occur in sampled training rows (3 exact)" in blocker["detail"]
    assert "[12, 36, 37]" in blocker["detail"] and blocker["evidence"]["rows"] == [12, 36, 37]
    assert "decontaminate=" in blocker["fix"]
    assert report["verdict"] == "not usable"
    assert report["summary"].startswith("Not usable as is: eval overlap; also empty fields")
    assert "[empty fields] 7 of 150 sampled rows (4.7%)" in report["summary"]  # each reason with its numbers


def test_without_an_eval_set_the_noisy_set_is_usable_with_caveats(hub, settings, ledger):
    report = check_tool(hub, settings, ledger)(dataset=NOISY, sample_size=120)
    assert report["eval_overlap"] is None
    assert report["sample"] == {"rows": 120, "of": 150, "how": "first 120 rows"}  # 150 < 2 full pages
    assert report["verdict"] == "usable with caveats"
    assert "eval overlap" not in {p["check"] for p in report["problems"]}


def test_hub_eval_set_uses_its_test_split_and_labels_from_the_sample(hub, settings, ledger):
    report = check_tool(hub, settings, ledger)(dataset=NOISY, eval_dataset=SENTIMENT)
    rows_requests = [(r.query["dataset"][0], r.query["split"][0]) for r in hub.requests if r.path == "/rows"]
    assert rows_requests[-2:] == [(SENTIMENT, "test"), (SENTIMENT, "train")]  # eval items, then the control
    overlap = report["eval_overlap"]
    assert overlap["eval_split"] == "test" and overlap["eval_items"] == 100 and overlap["eval_column"] == "prompt"
    # eval prompts are "Review: <review>\nSentiment:": the frame shared by every item is set aside,
    # and the review inside it is found in the training text (case and punctuation aside)
    assert [m["eval_item"] for m in overlap["matches"]] == [1, 4, 7] and overlap["train_rows"] == [12, 36, 37]
    assert overlap["levels"] == {"exact": 0, "normalised": 3, "fuzzy": 0}
    control = overlap["control"]
    assert (control["checked"], control["split"], control["contaminated"]) == (True, "train", 0)


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
    assert report["columns"]["question"] == {"role": "prompt", "type": "short text", "empty": 10, "near_empty": 0}
    assert report["columns"]["input"]["empty"] == 20 and report["columns"]["input"]["role"] == "optional"
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
                                "Le chat est assis sur le tapis rouge", "12345", "The dog is in the garden."])
    assert (profile["rows_checked"], profile["undetermined"], profile["main"]) == (4, 1, "en")
    assert profile["other_languages"] == {"cyrillic": 1, "fr": 1} and profile["other_share"] == 0.5
    assert profile["other_rows"] == {"cyrillic": [1], "fr": [2]}
    rows = [{"text": f"review number {i}", "label": i % 3, "answer": "A", "id": i} for i in range(12)]
    assert label_columns(rows) == {"label", "answer"}
    assert label_columns(rows, {"stars": ["1", "2"]}) == {"label", "answer", "stars"}


def test_near_duplicate_search_is_exact():
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
    report = duplicates(rows, "dataset:x")  # 1,000 rows of 250 words: prefix filtering, not all pairs
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


# Issue 13: judged by column role and type, minority languages, length outliers, eval copies by level.
DATA = EVAL_DIR.parent.parent.parent / "tests" / "fixtures" / "data"


def read(name):
    return [json.loads(line) for line in (DATA / name).read_text().splitlines()]


def final_answer(solution: str) -> str:
    return solution.rsplit("####", 1)[1].strip()


def test_short_numeric_and_letter_answers_are_whole_answers_not_near_empty(hub, settings, ledger, tmp_path):
    math = [{"question": r["question"], "answer": final_answer(r["answer"])}
            for r in read("gsm8k_train.jsonl") + read("gsm8k_test.jsonl")]
    assert {"3", "5", "6"} <= {r["answer"] for r in math}
    report = check_tool(hub, settings, ledger)(dataset=str(write_jsonl(tmp_path / "math.jsonl", math)))
    assert report["columns"]["answer"] == {"role": "answer", "type": "number", "empty": 0, "near_empty": 0}
    assert report["rows_with_empty_fields"] == 0 and {p["check"] for p in report["problems"]} == {"format"}

    letters = [{"question": r["question"] + "\n" + "\n".join(f"{k}. {c}" for k, c in zip("ABCD", r["choices"],
                                                                                        strict=True)),
                "answer": "ABCD"[r["answer"]]} for r in read("mmlu_style.jsonl")] * 3
    report = check_tool(hub, settings, ledger)(dataset=str(write_jsonl(tmp_path / "mc.jsonl", letters)))
    assert report["columns"]["answer"]["near_empty"] == 0 and report["columns"]["answer"]["type"] == "letter"
    assert "empty fields" not in {p["check"] for p in report["problems"]}


def test_a_minority_of_rows_in_other_languages_is_flagged_with_counts_and_rows(hub, settings, ledger, tmp_path):
    rows = [{"question": r["question"], "answer": r["answer"]}
            for r in read("gsm8k_train.jsonl") + read("gsm8k_test.jsonl")]
    others = [
        {"question": "娜塔莉亚在四月份向她的48个朋友出售了夹子，然后在五月份售出了一半的夹子。她总共售出了多少个夹子？",
         "answer": "五月售出 48/2 = 24 个。\n总共 48+24 = 72 个。\n#### 72"},
        {"question": "一家商店周一卖出15个苹果，周二卖出的是周一的两倍。两天一共卖出多少个苹果？",
         "answer": "周二卖出 15*2 = 30 个。\n一共 15+30 = 45 个。\n#### 45"},
        {"question": "Наталья продала заколки 48 своим подругам в апреле, а в мае она продала вдвое меньше. "
                     "Сколько всего заколок она продала?", "answer": "В мае 48/2 = 24.\nВсего 48+24 = 72.\n#### 72"},
        {"question": "Natalia vendió clips a 48 de sus amigas en abril, y luego vendió la mitad en mayo. ¿Cuántos "
                     "clips vendió en total?",
         "answer": "En mayo vendió 48/2 = 24 clips.\nEn total 48+24 = 72.\n#### 72"},
    ]
    rows = rows[:10] + others[:2] + rows[10:30] + others[2:] + rows[30:]  # 44 English, 4 others: 8.3%
    report = check_tool(hub, settings, ledger)(dataset=str(write_jsonl(tmp_path / "mixed.jsonl", rows)))
    language = report["language"]
    assert (language["main"], language["rows_checked"]) == ("en", 48)
    assert language["other_languages"] == {"zh": 2, "cyrillic": 1, "es": 1} and language["other_share"] == 0.0833
    assert language["other_rows"] == {"zh": [10, 11], "cyrillic": [32], "es": [33]}
    assert "Наталья" in language["examples"]["cyrillic"] and "UNTRUSTED DATA" in language["examples"]["zh"]
    problem = next(p for p in report["problems"] if p["check"] == "language mix")
    assert problem["detail"].startswith("4 of 48 rows judged (8.3%) are not in the main language 'en': zh 2 "
                                        "(rows [10, 11]), cyrillic 1 (rows [32]), es 1 (rows [33])")
    assert report["verdict"] == "usable with caveats" and "[language mix] 4 of 48 rows" in report["summary"]


def test_a_scraped_240_kb_field_is_a_length_outlier_with_its_row(hub, settings, ledger, tmp_path):
    rows = [{"question": r["question"], "answer": r["answer"]} for r in read("gsm8k_train.jsonl")]
    page = "<div class=\"nav\"><a href=\"/\">Home</a> | <a href=\"/forum\">Forum</a></div>\n" * 3300
    rows[7]["answer"] = rows[7]["answer"] + "\n" + page  # a scrape that kept the whole forum page
    report = check_tool(hub, settings, ledger)(dataset=str(write_jsonl(tmp_path / "scraped.jsonl", rows)))
    outliers = report["length_outliers"]
    assert outliers["rows"] == 1 and outliers["row_ids"] == [7] and list(outliers["columns"]) == ["answer"]
    assert outliers["examples"][0]["chars"] > 240_000 and outliers["examples"][0]["row"] == 7
    problem = next(p for p in report["problems"] if p["check"] == "length outliers")
    assert "1 of 24 sampled rows (4.2%)" in problem["detail"] and "row 7, 'answer'" in problem["detail"]
    assert problem["evidence"]["rows"] == [7]


def test_eval_copies_are_reported_by_level_against_a_benchmark_with_its_negative_control(hub, settings, ledger):
    mix = str(DATA / "contamination_mix.jsonl")
    report = check_tool(hub, settings, ledger)(dataset=mix, eval_dataset="gsm8k")  # the catalogue name
    overlap = report["eval_overlap"]
    assert (overlap["eval_dataset"], overlap["eval_split"], overlap["eval_column"]) == ("openai/gsm8k", "test",
                                                                                        "question")
    assert overlap["levels"] == {"exact": 4, "normalised": 3, "fuzzy": 3} and overlap["contaminated"] == 10
    copies = sorted(i for i, r in enumerate(read("contamination_mix.jsonl")) if not r["origin"].endswith("only"))
    assert overlap["train_rows"] == copies
    assert overlap["control"] == {"checked": True, "split": "train", "rows": 24, "contaminated": 0, "fraction": 0.0,
                                  "levels": {"exact": 0, "normalised": 0, "fuzzy": 0},
                                  "closest_miss": overlap["control"]["closest_miss"]}
    assert overlap["control"]["closest_miss"] < 0.25
    problem = next(p for p in report["problems"] if p["check"] == "eval overlap")
    assert "10 of 20 eval items (50.0%) occur in sampled training rows (4 exact, 3 normalised, 3 fuzzy)" in \
        problem["detail"] and "Negative control: the benchmark's own train split (24 rows) matched 0" in \
        problem["detail"]
