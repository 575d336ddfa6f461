"""evals.contamination: word n-gram overlap between training and eval texts."""

from __future__ import annotations

import json
import random
import time

import pytest

from evals.contamination import ngram_overlap, words
from evals.fixture_data import EVAL_DIR, TRAIN_FILE

LONG = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May."


def test_words_lowercase_and_drop_punctuation():
    assert words("Hello, World!  It's 2+2=4.") == ["hello", "world", "it", "s", "2", "2", "4"]


def test_shared_8gram_flags_the_eval_item_whatever_the_case_and_punctuation():
    train = ["Unrelated text about cooking pasta for dinner tonight with friends.",
             "Copied: NATALIA sold clips to 48 of her friends in april -- then more."]
    evals = [LONG, "A completely different question about trains leaving stations at noon today."]
    report = ngram_overlap(train, evals, n=8)
    assert (report.contaminated, report.eval_items, report.fraction) == (1, 2, 0.5)
    assert report.eval_indices == [0] and report.train_indices == [1]
    assert report.examples == {0: "natalia sold clips to 48 of her friends"}
    assert report.as_dict()["examples"] == {0: "natalia sold clips to 48 of her friends"}


def test_seven_shared_words_are_not_an_8gram_match():
    train = ["natalia sold clips to 48 of her cousins yesterday"]  # 7 words in common, then different
    report = ngram_overlap(train, [LONG], n=8)
    assert report.contaminated == 0 and report.train_indices == [] and report.examples == {}
    assert ngram_overlap(train, [LONG], n=7).contaminated == 1


def test_short_eval_items_match_only_as_a_whole_and_tiny_ones_are_skipped():
    train = ["Review: My friends said this park is excellent.\nSentiment: positive"]
    evals = ["My friends said this park is excellent.",  # 7 words < n: found whole inside the training text
             "My friends said this park is awful.",  # 7 words, not found whole
             "excellent",  # 1 word: too generic to judge
             ""]
    report = ngram_overlap(train, evals, n=8, min_words=3)
    assert report.eval_indices == [0] and report.skipped == [2, 3]
    assert report.fraction == 0.5  # 1 of the 2 items checked
    assert report.examples == {0: "my friends said this park is excellent"}


def test_no_eval_items():
    report = ngram_overlap(["some training text"], [])
    assert (report.contaminated, report.fraction, report.eval_items) == (0, 0.0, 0)
    with pytest.raises(ValueError):
        ngram_overlap([], [], n=0)


def test_shipped_demo_training_set_does_not_overlap_the_tiny_sentiment_eval():
    train = [json.loads(line) for line in TRAIN_FILE.read_text().splitlines()]
    evals = [json.loads(line) for line in (EVAL_DIR / "test.jsonl").read_text().splitlines()]
    report = ngram_overlap([r["prompt"] + r["completion"] for r in train], [e["review"] for e in evals])
    assert report.eval_items == 120 and report.skipped == []
    assert report.contaminated == 0
    leaked_train = [r["prompt"] for r in train] + [f"Review: {evals[5]['review']}"]
    leaked = ngram_overlap(leaked_train, [e["review"] for e in evals])
    assert 5 in leaked.eval_indices and leaked.train_indices == [len(train)]


def test_large_training_set_is_fast():
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(5000)]
    train = [" ".join(rng.choices(vocab, k=100)) for _ in range(5000)]  # half a million 8-grams
    evals = [" ".join(train[i].split()[10:30]) for i in range(0, 1000, 10)] + ["nothing like the training text here"]
    started = time.monotonic()
    report = ngram_overlap(train, evals)
    assert time.monotonic() - started < 5
    assert report.contaminated == 100 and report.eval_indices == list(range(100))
    assert report.train_indices == list(range(0, 1000, 10))
