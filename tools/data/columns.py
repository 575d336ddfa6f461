"""Each column's role (prompt, answer, label, conversation, optional, text) and type (text, short
text, number, letter, boolean, messages), empty fields judged by them, and length outliers.

A short answer is a whole answer: "3", "25" or "B" in an answer column, or in a column of numbers
or letters, is not "near-empty". Near-empty applies to free text only (a review of "ok").
"""

from __future__ import annotations

import re
import statistics

from tools.data.formats import ROLE_ALIASES, column_key, find_column
from tools.data.rows import row_text
from tools.untrusted import fence

NEAR_EMPTY_CHARS = 3  # a free-text field with fewer non-space characters is near-empty
FREE_TEXT_MEDIAN = 20  # a column whose median value has at least this many characters holds free text
OUTLIER_FACTOR, OUTLIER_MIN_CHARS = 10, 2000  # a field longer than both 10x its column's median and this
OPTIONAL_COLUMNS = {"input", "context", "system", "system_prompt", "id", "idx", "source", "metadata",
                    "history", "tools", "explanation", "rationale"}
ANSWER_NAMES = (*ROLE_ALIASES["completion"], *ROLE_ALIASES["choice_answer"], *ROLE_ALIASES["correct"],
                "labels", "answer_idx", "class", "category", "final answer", "chosen", "rejected")
INCORRECT = re.compile(r"(in)?correct answer( \d+)?|(wrong|incorrect) answers?( \d+)?")
NUMBER = re.compile(r"[-+]?[$€£]?\d[\d,]*(\.\d+)?%?|[-+]?\d+/\d+")
LETTER = re.compile(r"\(?[A-Za-z]\)?[.)]?")


def _value_type(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list | dict):
        return "messages" if isinstance(value, list) and value and isinstance(value[0], dict) else "structured"
    text = str(value).strip()
    return "number" if NUMBER.fullmatch(text) else "letter" if LETTER.fullmatch(text) else "text"


def _column_role(column: str, labels: set[str], kind: str) -> str:
    if column.lower() in OPTIONAL_COLUMNS:
        return "optional"
    if column in labels:
        return "label"
    if kind == "messages":
        return "conversation"
    if find_column([column], ANSWER_NAMES) or INCORRECT.fullmatch(column_key(column)):
        return "answer"
    return "prompt" if find_column([column], ROLE_ALIASES["prompt"]) else "text"


def column_profiles(rows: list[dict], labels: set[str]) -> tuple[dict, set[int]]:
    """Per column: role, type, empty and near-empty counts; and the rows with an empty required field.

    A column's type is the one all its values share (number, letter, boolean, messages) or, for
    strings, "text" (free text: median >= FREE_TEXT_MEDIAN characters) or "short text". Near-empty
    (under NEAR_EMPTY_CHARS characters) applies to free text only: "3", "25" or "B" is a whole answer."""
    names = sorted({c for r in rows for c in r}, key=lambda c: next(i for i, r in enumerate(rows) if c in r))
    columns, bad = {}, set()
    for column in names:
        values = [r.get(column) for r in rows]
        present = [v for v in values if v is not None and row_text({column: v}).strip()]
        kinds = {_value_type(v) for v in present}
        kind = kinds.pop() if len(kinds) == 1 else "mixed" if kinds else "empty"
        if kind in ("text", "mixed"):
            median = statistics.median(len(row_text({column: v}).strip()) for v in present)
            kind = "text" if median >= FREE_TEXT_MEDIAN else "short text"
        role = _column_role(column, labels, kind)
        free_text = kind == "text" and role not in ("answer", "label")
        counts = {"role": role, "type": kind, "empty": 0, "near_empty": 0}
        for index, value in enumerate(values):
            text = row_text({column: value}).strip() if value is not None else ""
            empty = not text
            near = free_text and not empty and len("".join(text.split())) < NEAR_EMPTY_CHARS
            counts["empty"] += empty
            counts["near_empty"] += near
            if (empty or near) and role != "optional":
                bad.add(index)
        columns[column] = counts
    return columns, bad


def length_outliers(rows: list[dict], row_ids: list[int], source: str) -> dict:
    """Fields far longer than their column's median (a scraped page in a Q&A set): counts and the longest."""
    found, by_column = [], {}
    for column in sorted({c for r in rows for c in r}):
        lengths = [(k, len(row_text({column: r.get(column)}))) for k, r in enumerate(rows)]
        nonzero = [n for _, n in lengths if n]
        if not nonzero:
            continue
        median = statistics.median(nonzero)
        limit = max(OUTLIER_FACTOR * median, OUTLIER_MIN_CHARS)
        over = [(k, n) for k, n in lengths if n > limit]
        if over:
            by_column[column] = {"count": len(over), "median_chars": median, "limit_chars": int(limit),
                                 "max_chars": max(n for _, n in over)}
            found += [(n, k, column) for k, n in over]
    rows_over = sorted({k for _, k, _ in found})
    examples = [{"row": row_ids[k], "column": column, "chars": n,
                 "start": fence(row_text({column: rows[k].get(column)}), f"{source} row {row_ids[k]}", 120)}
                for n, k, column in sorted(found, reverse=True)[:3]]
    return {"rule": f"a field longer than {OUTLIER_FACTOR}x its column's median and {OUTLIER_MIN_CHARS} characters",
            "rows": len(rows_over), "share": round(len(rows_over) / len(rows), 4) if rows else 0.0,
            "row_ids": [row_ids[k] for k in rows_over][:20], "columns": by_column, "examples": examples}
