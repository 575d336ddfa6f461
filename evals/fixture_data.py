"""Generate the shipped fixture data for the `tiny_sentiment` and `tiny_sentiment_gen` tasks.

The eval set (`evals/data/tiny_sentiment/test.jsonl`) and the demo's training set
(`evals/data/demo_train/sentiment_train.jsonl`) use the same sentiment words but disjoint
sentence templates, so a model must learn the words' polarity, not memorise test sentences.
On the tiny model (`evals.tiny_model`), TRL SFT with lr 3e-3, batch 16 and 150-200 steps lifts
tiny_sentiment accuracy from chance (~0.5) to ~1.0 in seconds on CPU; at 120 steps or fewer it
often stays near chance (the model learns the label prior first, then the words).
`tiny_sentiment_gen` asks the same question generatively (the model must write the label word;
exact match) on 60 other test-template reviews.
Run `python -m evals.fixture_data` to regenerate them (deterministic), then
`python -m evals.integrity --write` and pin the printed digest in evals/integrity.py.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"
EVAL_DIR = DATA_DIR / "tiny_sentiment"
GEN_EVAL_DIR = DATA_DIR / "tiny_sentiment_gen"
TRAIN_FILE = DATA_DIR / "demo_train" / "sentiment_train.jsonl"

POSITIVE = ["great", "wonderful", "excellent", "delightful", "superb", "lovely", "fantastic",
            "brilliant", "charming", "pleasant", "amazing", "enjoyable", "terrific", "splendid"]
NEGATIVE = ["awful", "terrible", "dreadful", "boring", "horrible", "poor", "disappointing",
            "bland", "tedious", "dull", "painful", "lousy", "mediocre", "miserable"]
NOUNS = ["movie", "food", "hotel", "service", "book", "concert", "game", "show", "trip", "meal",
         "room", "staff", "music", "park", "class"]

TRAIN_TEMPLATES = ["The {noun} was {adj}.", "What a {adj} {noun}.",
                   "I thought the {noun} was {adj}.", "Honestly, a {adj} {noun}.",
                   "Our {noun} was {adj}.", "In the end, the {noun} was {adj}.",
                   "Everyone said this {noun} is {adj}.", "The {noun} felt {adj} to me.",
                   "It turned out to be a {adj} {noun}.", "We agreed: a {adj} {noun}.",
                   "My friends thought the {noun} was {adj}.", "This {noun} is {adj}.",
                   "The {noun} was {adj} in every way.", "A {adj} {noun}, my friends said.",
                   "The {noun} is {adj} and everyone agreed.", "It felt {adj}, our {noun}, in the end.",
                   "They said it was {adj} to me.", "So {adj}, this {noun}, honestly."]
# Every word of these templates appears in the training templates, never in the same sentence.
TEST_TEMPLATES = ["Our {noun} turned out {adj} in the end.",
                  "Everyone agreed the {noun} felt {adj}.",
                  "My friends said this {noun} is {adj}."]


def prompt_for(review: str) -> str:
    return f"Review: {review}\nSentiment:"


def _rows(templates: list[str], n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "positive" if i % 2 == 0 else "negative"
        adj = rng.choice(POSITIVE if label == "positive" else NEGATIVE)
        review = rng.choice(templates).format(noun=rng.choice(NOUNS), adj=adj)
        rows.append({"review": review, "label": label})
    return rows


def train_rows(n: int = 600, seed: int = 0) -> list[dict]:
    """Prompt/completion rows for SFT."""
    return [{"prompt": prompt_for(r["review"]), "completion": " " + r["label"]}
            for r in _rows(TRAIN_TEMPLATES, n, seed)]


def test_rows(n: int = 120, seed: int = 1) -> list[dict]:
    return _rows(TEST_TEMPLATES, n, seed)


def gen_test_rows(n: int = 60, seed: int = 2) -> list[dict]:
    return _rows(TEST_TEMPLATES, n, seed)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def main() -> None:
    _write_jsonl(EVAL_DIR / "test.jsonl", test_rows())
    _write_jsonl(GEN_EVAL_DIR / "test.jsonl", gen_test_rows())
    _write_jsonl(TRAIN_FILE, train_rows())


if __name__ == "__main__":
    main()
