"""Training/eval contamination by word n-gram overlap.

An eval item counts as contaminated when any of its word n-grams (lowercased, punctuation
dropped) also occurs in the training texts. An eval item shorter than n words is checked whole:
contaminated when its entire word sequence occurs in a training text. Items with fewer than
`min_words` words are too generic to judge and are reported as skipped.

    report = ngram_overlap(train_texts, eval_texts, n=8)
    report.fraction, report.eval_indices, report.examples[0]

Pure Python and sets of hashed n-grams: a few seconds for 100k training texts of a few hundred words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field

WORD = re.compile(r"\w+")


@dataclass
class OverlapReport:
    n: int
    train_items: int
    eval_items: int
    contaminated: int  # eval items with an overlap
    fraction: float  # contaminated / eval items checked (skipped ones excluded)
    eval_indices: list[int]  # indices of contaminated eval items
    train_indices: list[int]  # indices of training items holding a matching sequence
    examples: dict[int, str] = field(default_factory=dict)  # eval index -> one shared word sequence
    skipped: list[int] = field(default_factory=list)  # eval items with fewer than min_words words

    def as_dict(self) -> dict:
        return asdict(self)


def words(text: str) -> list[str]:
    """The lowercased words of `text`, punctuation and whitespace dropped."""
    return WORD.findall(str(text).lower())


def _grams(tokens: list[str], n: int) -> Iterator[tuple[str, ...]]:
    return zip(*(tokens[i:] for i in range(n)), strict=False)


def _hashes(tokens: list[str], n: int) -> set[int]:
    return set(map(hash, _grams(tokens, n)))


def ngram_overlap(train_texts: Iterable[str], eval_texts: Iterable[str], n: int = 8,
                  min_words: int = 3, max_examples: int = 20) -> OverlapReport:
    """How many eval texts share a word n-gram (or, when shorter than n, their whole text) with training."""
    if n < 1:
        raise ValueError("n must be at least 1")
    train = list(train_texts)  # tokenised on the fly, twice at most, to keep memory to the n-gram hashes
    evals = [words(t) for t in eval_texts]
    short_lengths = {len(e) for e in evals if min_words <= len(e) < n}
    train_grams: dict[int, set[int]] = {k: set() for k in short_lengths | {n}}
    for text in train:
        tokens = words(text)
        for k, seen in train_grams.items():
            seen |= _hashes(tokens, k)

    hits, examples, skipped, matched = [], {}, [], {}
    for index, tokens in enumerate(evals):
        if len(tokens) < min(min_words, n):
            skipped.append(index)
            continue
        k = min(n, len(tokens))
        found = _hashes(tokens, k) & train_grams[k]
        if not found:
            continue
        hits.append(index)
        matched.setdefault(k, set()).update(found)
        if len(examples) < max_examples:
            examples[index] = next(" ".join(g) for g in _grams(tokens, k) if hash(g) in found)
    train_hits = []
    for i, text in enumerate(train if matched else []):
        tokens = words(text)
        if any(not found.isdisjoint(_hashes(tokens, k)) for k, found in matched.items()):
            train_hits.append(i)
    checked = len(evals) - len(skipped)
    return OverlapReport(n=n, train_items=len(train), eval_items=len(evals), contaminated=len(hits),
                         fraction=round(len(hits) / checked, 4) if checked else 0.0,
                         eval_indices=hits, train_indices=train_hits, examples=examples, skipped=skipped)
