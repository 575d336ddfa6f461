"""Multiple-choice rows as prompts with lettered, shuffled options.

Datasets store the right answer in a fixed place (GPQA's `Correct Answer` column, an MMLU
index that is often the same letter): trained as is, a model learns the position. Options are
shuffled with a seeded generator, and the right answer's position is dealt from a shuffled deck
of positions so that every letter is right about equally often.

    builder = ChoiceBuilder(seed=42)
    prompt, letter = builder.build("What is 2+2?", ["3", "4", "5", "22"], correct=1)
    builder.record()  # answer positions before and after, for the ledger
"""

from __future__ import annotations

import random
from collections import Counter

LETTERS = "ABCDEFGHIJ"
INSTRUCTION = "Answer with the letter of the correct option."


def options_of(value) -> tuple[list[str], list[str] | None] | None:
    """(option texts, their labels if the data names them) from a list, or ARC's {"text": [...], "label": [...]}."""
    if isinstance(value, dict) and isinstance(value.get("text"), list):
        labels = value.get("label")
        return [str(t) for t in value["text"]], [str(x) for x in labels] if isinstance(labels, list) else None
    if isinstance(value, list) and value and all(isinstance(v, str | int | float) for v in value):
        return [str(v) for v in value], None
    return None


def answer_index(answer, options: list[str], labels: list[str] | None, names: list[str] | None = None) -> int | None:
    """Which option `answer` points at: an index, a label or letter ("B", "2"), a ClassLabel, or the option text."""
    if isinstance(answer, bool) or answer is None:
        return None
    if isinstance(answer, int):
        if names and 0 <= answer < len(names) and names[answer] != str(answer):
            answer = names[answer]  # a ClassLabel whose names are letters
        else:
            return answer if 0 <= answer < len(options) else None
    text = str(answer).strip()
    if labels and text in labels:
        return labels.index(text)
    if len(text) == 1 and text.upper() in LETTERS[:len(options)]:
        return LETTERS.index(text.upper())
    if text.isdigit() and int(text) < len(options):
        return int(text)
    return options.index(text) if text in options else None


class ChoiceBuilder:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.decks: dict[int, list[int]] = {}  # number of options -> positions still to deal
        self.before: Counter = Counter()
        self.after: Counter = Counter()

    def _position(self, n: int) -> int:
        if not self.decks.get(n):
            self.decks[n] = self.rng.sample(range(n), n)
        return self.decks[n].pop()

    def build(self, question: str, options: list[str], correct: int) -> tuple[str, str]:
        """(prompt with lettered options and the instruction, the right letter)."""
        position = self._position(len(options))
        others = [o for i, o in enumerate(options) if i != correct]
        self.rng.shuffle(others)
        ordered = others[:position] + [options[correct]] + others[position:]
        self.before[LETTERS[correct]] += 1
        self.after[LETTERS[position]] += 1
        lines = "\n".join(f"{LETTERS[i]}. {option.strip()}" for i, option in enumerate(ordered))
        return f"{question.strip()}\n\n{lines}\n\n{INSTRUCTION}", LETTERS[position]

    def record(self) -> dict:
        return {"options_shuffled": True, "instruction": INSTRUCTION,
                "answer_positions_before": dict(sorted(self.before.items())),
                "answer_positions_after": dict(sorted(self.after.items()))}
