"""evals.contamination: exact / normalised / fuzzy copies of eval items, template wording set aside.

Fixtures (tests/fixtures/data/): gsm8k_test.jsonl (20 GSM8K-shaped test items, calculator
annotations and "#### N" answers), gsm8k_train.jsonl (24 other GSM8K-shaped problems: the
negative control), contamination_mix.jsonl (32 SFT rows, all in one instruction preamble and
"Question: ... Answer:" frame: 4 exact copies of test items, 3 re-cased/re-punctuated, 3 lightly
paraphrased, 22 other problems; each row's `origin` says which).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from evals.contamination import FUZZY_MIN, decontaminate, find_contamination, words
from evals.fixture_data import EVAL_DIR, TRAIN_FILE

DATA = Path(__file__).parent.parent / "fixtures" / "data"
PREAMBLE = ("Solve the following grade school math problem. Think step by step, show your calculations, and "
            "write the final answer after '####'.")


def read(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines()]


def framed(question: str, answer: str = "") -> str:
    return f"Question: {question}\nAnswer: {answer}".rstrip()


def test_words_lowercase_and_drop_punctuation():
    assert words("Hello, World!  It's 2+2=4.") == ["hello", "world", "it", "s", "2", "2", "4"]


def test_the_mix_finds_the_ten_real_copies_at_their_levels_and_none_of_the_template_rows():
    mix, test = read("contamination_mix.jsonl"), read("gsm8k_test.jsonl")
    evals = [f"{PREAMBLE}\n\n{framed(r['question'])}" for r in test]  # the benchmark's prompts, same frame
    report = find_contamination([r["prompt"] + r["completion"] for r in mix], evals)

    copies = {i for i, r in enumerate(mix) if not r["origin"].endswith("template only")}
    assert len(copies) == 10 and set(report.train_matches) == copies
    assert report.levels == {"exact": 4, "normalised": 3, "fuzzy": 3}
    assert (report.contaminated, report.checked, report.fraction) == (10, 20, 0.5)
    for match in report.matches:  # each names the eval item it copies, at the level planted
        origin = mix[match.train_index]["origin"]
        assert origin.startswith(f"test {match.eval_index}:")
        planted = {"exact": "exact", "re-cased/punctuated": "normalised", "paraphrased": "fuzzy"}[origin.split(": ")[1]]
        assert match.level == planted and evals[match.eval_index].startswith(match.eval_text)
        assert match.score >= FUZZY_MIN
    assert "by step show" in report.template  # the preamble was recognised as template wording
    summary = report.summary()
    assert summary["levels"] == report.levels and summary["train_rows_matching"] == 10
    assert summary["matches"][0]["level"] == "exact" and "template wording" in summary["method"]

    plain = find_contamination([r["prompt"] + r["completion"] for r in mix], [r["question"] for r in test])
    assert plain.levels == {"exact": 4, "normalised": 3, "fuzzy": 3} and set(plain.train_matches) == copies


def test_negative_control_a_benchmarks_train_split_holds_none_of_its_test_split():
    train, test = read("gsm8k_train.jsonl"), read("gsm8k_test.jsonl")
    for render in (lambda r: framed(r["question"], r["answer"]),
                   lambda r: f"{PREAMBLE}\n\n{framed(r['question'], r['answer'])}"):
        report = find_contamination([render(r) for r in train], [render(r) for r in test])
        assert report.levels == {"exact": 0, "normalised": 0, "fuzzy": 0} and report.train_matches == {}
        assert report.skipped == [] and report.closest_miss < FUZZY_MIN / 2  # a wide margin below the fuzzy bar
    questions = find_contamination([framed(r["question"], r["answer"]) for r in train], [r["question"] for r in test])
    assert questions.contaminated == 0


def test_decontaminate_drops_only_the_real_copies_and_says_how_many():
    mix, test = read("contamination_mix.jsonl"), read("gsm8k_test.jsonl")
    kept, report = decontaminate(mix, [r["prompt"] + r["completion"] for r in mix], [r["question"] for r in test])
    assert len(kept) == 22 and len(report.train_matches) == 10
    assert all(r["origin"].endswith("template only") for r in kept)


def test_short_template_heavy_items_count_only_as_whole_copies_and_tiny_ones_are_skipped():
    evals = [f"My friends said this {thing} is {word}." for thing, word in
             [("park", "excellent"), ("trip", "awful"), ("film", "dull"), ("book", "superb"), ("room", "bland")]]
    evals += ["excellent", "Great stuff"]
    train = ["Review: my friends said this PARK is excellent!\nSentiment: positive",  # a whole copy, re-cased
             "Review: My friends said this trip is wonderful.\nSentiment: positive"]  # same frame, another item
    report = find_contamination(train, evals)
    assert [(m.eval_index, m.train_index, m.level) for m in report.matches] == [(0, 0, "normalised")]
    assert report.skipped == [5, 6] and report.checked == 5


def test_shipped_demo_training_set_does_not_overlap_the_tiny_sentiment_eval():
    train = [json.loads(line) for line in TRAIN_FILE.read_text().splitlines()]
    evals = [json.loads(line)["review"] for line in (EVAL_DIR / "test.jsonl").read_text().splitlines()]
    report = find_contamination([r["prompt"] + r["completion"] for r in train], evals)
    assert report.eval_items == 120 and report.skipped == [] and report.contaminated == 0
    leaked = find_contamination([r["prompt"] for r in train] + [f"Review: {evals[5]}"], evals)
    assert [m.eval_index for m in leaked.matches] == [5] and list(leaked.train_matches) == [len(train)]
    assert leaked.matches[0].level == "exact"


def test_no_eval_items_and_a_large_training_set():
    empty = find_contamination(["some training text"], [])
    assert (empty.contaminated, empty.fraction, empty.eval_items) == (0, 0.0, 0)
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(5000)]
    train = [" ".join(rng.choices(vocab, k=100)) for _ in range(5000)]
    evals = [" ".join(train[i].split()[10:30]) for i in range(0, 1000, 10)] + ["nothing like the training text here"]
    report = find_contamination(train, evals)
    assert report.levels["exact"] == 100 and [m.eval_index for m in report.matches] == list(range(100))
    assert list(report.train_matches) == list(range(0, 1000, 10))
