"""Training/eval contamination: which eval items a training set holds, at three levels.

- exact: the eval item's text occurs verbatim in a training text (whitespace collapsed);
- normalised: its words occur in order once case and punctuation are dropped;
- fuzzy: at least FUZZY_MIN of its distinctive word 3-grams occur in one training text
  (a light paraphrase: a few words changed, a clause moved); only for items with at least
  FUZZY_MIN_GRAMS distinctive 3-grams, as a short item cannot be told from a similar one.

Shared template wording does not count. A word 3-gram that recurs across many eval items
(a "Question: ... Answer:" frame, a benchmark's instruction preamble, answer-letter lists) is
template, not content, and so are opening or closing words that most items share ("Review: ...
Sentiment:"): partial overlap is measured on the rest. An item made mostly of template counts
only when it occurs whole, or its core (the words inside the frame) does; an item of fewer than
MIN_WORDS words is skipped as too generic.
Calibrated on a negative control (a benchmark's own train split against its test split: no
matches at any level).

    report = find_contamination(train_texts, eval_texts)
    report.levels, report.matches[0].as_dict(), sorted(report.train_matches)  # rows to drop

Pure Python over hashed 3-grams of the eval side; training texts are streamed once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

WORD = re.compile(r"\w+")
GRAM = 3
MIN_WORDS = 4  # content words an eval item needs to be judged
FUZZY_MIN = 0.5  # share of an item's content 3-grams found in one training text
FUZZY_MIN_GRAMS = 8
TEMPLATE_SHARE = 0.05  # a 3-gram in at least this share of eval items (and at least TEMPLATE_MIN) is template
TEMPLATE_MIN = 3
MAX_FRAME = 64  # words of a frame (a preamble, "Question:") looked for at an item's start and end
FRAME_SHARE = 0.5  # opening or closing words shared by at least this share of items are a frame
LEVELS = ("exact", "normalised", "fuzzy")


def words(text: str) -> list[str]:
    """The lowercased words of `text`, punctuation and whitespace dropped."""
    return WORD.findall(str(text).lower())


@dataclass
class Match:
    eval_index: int
    train_index: int
    level: str  # "exact", "normalised" or "fuzzy"
    score: float  # share of the eval item's content 3-grams found in the training text
    eval_text: str  # the eval item, capped

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class ContaminationReport:
    train_items: int
    eval_items: int
    matches: list[Match]  # the strongest match of each contaminated eval item, by eval index
    train_matches: dict[int, Match]  # training index -> the strongest eval item it holds
    skipped: list[int] = field(default_factory=list)  # eval items too short to judge
    template: list[str] = field(default_factory=list)  # template 3-grams set aside, most frequent first
    closest_miss: float = 0.0  # the highest share of an item's content 3-grams in a row that did not match

    @property
    def checked(self) -> int:
        return self.eval_items - len(self.skipped)

    @property
    def contaminated(self) -> int:
        return len(self.matches)

    @property
    def fraction(self) -> float:
        return round(self.contaminated / self.checked, 4) if self.checked else 0.0

    @property
    def levels(self) -> dict[str, int]:
        return {level: sum(m.level == level for m in self.matches) for level in LEVELS}

    def summary(self, max_matches: int = 20) -> dict:
        """A JSON-able account: counts per level, the matched eval items, what was skipped as template."""
        return {"eval_items": self.eval_items, "checked": self.checked, "skipped": len(self.skipped),
                "contaminated": self.contaminated, "fraction": self.fraction, "levels": self.levels,
                "train_rows_matching": len(self.train_matches),
                "matches": [m.as_dict() for m in self.matches[:max_matches]],
                "closest_miss": self.closest_miss,
                "template_ngrams_ignored": len(self.template), "template_examples": self.template[:5],
                "method": f"exact / normalised (case, punctuation) / fuzzy (>= {FUZZY_MIN:.0%} of the item's "
                          f"distinctive word {GRAM}-grams in one training row, items with >= {FUZZY_MIN_GRAMS}); "
                          f"{GRAM}-grams in >= {TEMPLATE_SHARE:.0%} of eval items (min {TEMPLATE_MIN}) are template "
                          "wording and count only as part of a whole copy"}


def _grams(tokens: list[str]) -> list[tuple[str, ...]]:
    return list(zip(*(tokens[i:] for i in range(GRAM)), strict=False))


def _squash(text: str) -> str:
    return " ".join(str(text).split())


@dataclass
class _Item:
    text: str
    words: str  # all its words, joined by spaces
    core: str  # its words without the frame most items open or close with (all of them if that leaves too few)
    runs: list[str]  # maximal runs of content words, each joined by spaces
    grams: set[int]  # hashes of content 3-grams; empty when the item is mostly template


def _prepare(eval_texts: list[str]) -> tuple[list[_Item | None], list[str]]:
    """Each eval item's words and content (template set aside), or None when too short; the template 3-grams."""
    tokenised = [words(t) for t in eval_texts]
    frequency: dict[tuple[str, ...], int] = {}
    for tokens in tokenised:
        for g in set(_grams(tokens)):
            frequency[g] = frequency.get(g, 0) + 1
    floor = max(TEMPLATE_MIN, math.ceil(TEMPLATE_SHARE * len(tokenised)))
    template = {g for g, k in frequency.items() if k >= floor}
    prefixes, suffixes = _frequent_ends(tokenised, max(TEMPLATE_MIN, math.ceil(FRAME_SHARE * len(tokenised))))
    items: list[_Item | None] = []
    for text, tokens in zip(eval_texts, tokenised, strict=True):
        grams = _grams(tokens)
        covered = [False] * len(tokens)
        for i, g in enumerate(grams):
            if g in template:
                covered[i:i + GRAM] = [True] * GRAM
        start = max((k for k in range(1, min(len(tokens), MAX_FRAME) + 1) if tuple(tokens[:k]) in prefixes), default=0)
        end = max((k for k in range(1, min(len(tokens), MAX_FRAME) + 1) if tuple(tokens[-k:]) in suffixes), default=0)
        covered[:start] = [True] * start
        covered[len(tokens) - end:] = [True] * end
        runs, current = [], []
        for token, is_template in zip(tokens, covered, strict=True):
            if not is_template:
                current.append(token)
            elif current:
                runs.append(" ".join(current))
                current = []
        runs += [" ".join(current)] if current else []
        content = {hash(g) for g in grams if g not in template}
        enough = sum(len(r.split()) for r in runs) >= MIN_WORDS and content
        core = tokens[start:len(tokens) - end]
        core = core if len(core) >= MIN_WORDS else tokens
        items.append(_Item(text, " ".join(tokens), " ".join(core), runs, content if enough else set())
                     if len(tokens) >= MIN_WORDS else None)
    ordered = sorted(template, key=lambda g: (-frequency[g], g))
    return items, [" ".join(g) for g in ordered]


def _frequent_ends(tokenised: list[list[str]], floor: int) -> tuple[set[tuple], set[tuple]]:
    """Word sequences that open (or close) at least `floor` items: a frame such as "Review: ... Sentiment:"."""
    starts: dict[tuple, int] = {}
    ends: dict[tuple, int] = {}
    for tokens in tokenised:
        for k in range(1, min(len(tokens), MAX_FRAME) + 1):
            starts[tuple(tokens[:k])] = starts.get(tuple(tokens[:k]), 0) + 1
            ends[tuple(tokens[-k:])] = ends.get(tuple(tokens[-k:]), 0) + 1
    return {p for p, n in starts.items() if n >= floor}, {p for p, n in ends.items() if n >= floor}


def _level(item: _Item, raw: str, normal: str, shared: int) -> tuple[str | None, float]:
    score = round(shared / len(item.grams), 4) if item.grams else 1.0
    if _squash(item.text) in raw:
        return "exact", score
    if f" {item.core} " in normal or f" {item.words} " in normal or (
            item.grams and all(f" {run} " in normal for run in item.runs)):
        return "normalised", score
    return ("fuzzy" if score >= FUZZY_MIN and len(item.grams) >= FUZZY_MIN_GRAMS else None), score


def _stronger(new: Match, old: Match | None) -> bool:
    return old is None or (LEVELS.index(new.level), -new.score) < (LEVELS.index(old.level), -old.score)


def find_contamination(train_texts: Iterable[str], eval_texts: Iterable[str],
                       max_text: int = 300) -> ContaminationReport:
    """Which eval items occur in the training texts (exact, normalised or fuzzy), and which training
    rows hold them. Only candidates sharing content 3-grams with an item are compared."""
    evals = [str(t) for t in eval_texts]
    items, template = _prepare(evals)
    index: dict[int, list[int]] = {}  # content 3-gram -> items
    whole: dict[int, dict[int, list[int]]] = {}  # length -> hash of a template-heavy item's core -> items
    for e, item in enumerate(items):
        for h in item.grams if item else ():
            index.setdefault(h, []).append(e)
        for sequence in {item.core, item.words} if item and not item.grams else ():
            tokens = tuple(sequence.split())
            whole.setdefault(len(tokens), {}).setdefault(hash(tokens), []).append(e)
    keys = set(index)
    best: dict[int, Match] = {}
    train_best: dict[int, Match] = {}
    train_count, closest_miss = 0, 0.0
    for t, text in enumerate(train_texts):
        train_count += 1
        tokens = words(text)
        shared: dict[int, int] = {}
        for h in keys.intersection(map(hash, _grams(tokens))):
            for e in index[h]:
                shared[e] = shared.get(e, 0) + 1
        for k, by_hash in whole.items():
            for h in by_hash.keys() & set(map(hash, zip(*(tokens[i:] for i in range(k)), strict=False))):
                shared.update(dict.fromkeys(by_hash[h], 0))
        raw, normal = None, None
        for e, count in shared.items():
            item = items[e]
            if count < len(item.grams) * FUZZY_MIN:  # a copy at any level shares at least this much
                closest_miss = max(closest_miss, round(count / len(item.grams), 4))
                continue
            raw = raw if raw is not None else _squash(text)
            normal = normal if normal is not None else f" {' '.join(tokens)} "
            level, score = _level(item, raw, normal, count)
            if level is None:
                closest_miss = max(closest_miss, score if item.grams else 0.0)
                continue
            match = Match(e, t, level, score, item.text[:max_text])
            if _stronger(match, best.get(e)):
                best[e] = match
            if _stronger(match, train_best.get(t)):
                train_best[t] = match
    skipped = [e for e, item in enumerate(items) if item is None]
    return ContaminationReport(train_items=train_count, eval_items=len(evals),
                               matches=[best[e] for e in sorted(best)], train_matches=dict(sorted(train_best.items())),
                               skipped=skipped, template=template, closest_miss=closest_miss)


def decontaminate(rows: list, texts: list[str], eval_texts: Iterable[str]) -> tuple[list, ContaminationReport]:
    """`rows` without those whose text (texts[i]) holds an eval item at any level, and the report."""
    report = find_contamination(texts, eval_texts)
    return [r for i, r in enumerate(rows) if i not in report.train_matches], report
