"""Measure evals.contamination on the issue-13 fixtures and at scale; prints counts and seconds.

    python -m bench.contamination

Precision and recall: the 32-row mix (10 planted copies of GSM8K-shaped test items, 22 rows sharing
only the template wording) and the negative control (a GSM8K-shaped train split against its test
split in the same "Question: ... Answer:" frame), by the old 8-gram rule and by the levelled check.
Speed: 100k training texts of 150 words against 1,000 eval items of 40 words, 100 of them planted.
"""

from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path

from evals.contamination import find_contamination

DATA = Path(__file__).parent.parent / "tests" / "fixtures" / "data"
PREAMBLE = ("Solve the following grade school math problem. Think step by step, show your calculations, and "
            "write the final answer after '####'.")


def read(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text().splitlines()]


def eight_gram_hits(train: list[str], evals: list[str]) -> tuple[int, int]:
    """The old rule: an eval item counts when any word 8-gram of it occurs in training (items, rows)."""
    def grams(text):
        words = re.findall(r"\w+", text.lower())
        return {tuple(words[i:i + 8]) for i in range(len(words) - 7)}
    seen = [grams(t) for t in train]
    pool = set().union(*seen)
    hits = [e for e in evals if grams(e) & pool]
    hit_grams = set().union(*(grams(e) for e in hits)) if hits else set()
    return len(hits), sum(bool(s & hit_grams) for s in seen)


def main() -> None:
    mix, test, train = read("contamination_mix.jsonl"), read("gsm8k_test.jsonl"), read("gsm8k_train.jsonl")
    evals = [f"{PREAMBLE}\n\nQuestion: {r['question']}\nAnswer:" for r in test]
    texts = [r["prompt"] + r["completion"] for r in mix]
    report = find_contamination(texts, evals)
    old_items, old_rows = eight_gram_hits(texts, evals)
    print(f"mix (10 real copies in 32 rows): levelled {len(report.train_matches)} rows {report.levels}; "
          f"8-gram {old_rows} rows, {old_items}/{len(evals)} eval items")
    frame = [f"{PREAMBLE}\n\nQuestion: {r['question']}\nAnswer: {r['answer']}" for r in train]
    control = find_contamination(frame, [f"{PREAMBLE}\n\nQuestion: {r['question']}\nAnswer: {r['answer']}"
                                         for r in test])
    old_items, _ = eight_gram_hits(frame, [f"{PREAMBLE}\n\nQuestion: {r['question']}" for r in test])
    print(f"negative control (train vs test, same frame): levelled {control.contaminated} items "
          f"(closest miss {control.closest_miss:.2f}); 8-gram {old_items}/{len(test)} items")

    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(20_000)]
    big = [" ".join(rng.choices(vocab, k=150)) for _ in range(100_000)]
    items = [" ".join(big[i].split()[20:60]) for i in range(0, 100_000, 1000)]
    items += [" ".join(rng.choices(vocab, k=40)) for _ in range(900)]
    started = time.monotonic()
    report = find_contamination(big, items)
    print(f"scale: 100k training texts x 1000 eval items: {time.monotonic() - started:.1f} s, "
          f"{report.contaminated} items found (100 planted)")


if __name__ == "__main__":
    main()
