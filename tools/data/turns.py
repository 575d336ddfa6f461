"""Cleaning conversation turns before training: turn order, empty turns, answer annotations.

A chat dataset for SFT alternates user and assistant after an optional system turn. Scraped
conversations break that: they open with the assistant's greeting, hold two user turns in a row
(a reply lost) or empty turns. `repair_turns` drops leading assistant turns and cuts the
conversation before the first repeated role or empty turn, keeping the valid start; the caller
drops a row when nothing trainable is left. `strip_annotations` removes calculator annotations
such as GSM8K's `<<48/2=24>>` from replies: training on them teaches the model to write them.
"""

from __future__ import annotations

import re

ANNOTATION = re.compile(r"<<[^<>\n]*=[^<>\n]*>>")
SPOKEN = ("user", "assistant")


def repair_turns(turns: list[dict]) -> tuple[list[dict], list[str]]:
    """(the valid turns, the fixes made: "leading_assistant_dropped", "cut_at_repeated_role",
    "cut_at_empty_turn")."""
    fixes = []
    start = 0
    while start < len(turns) and turns[start]["role"] == "system":
        start += 1
    first_user = next((i for i in range(start, len(turns)) if turns[i]["role"] == "user"), len(turns))
    if any(turns[i]["role"] == "assistant" for i in range(start, first_user)):
        fixes.append("leading_assistant_dropped")
    kept = turns[:start] + [t for t in turns[start:first_user] if t["role"] != "assistant"]
    previous = None
    for turn in turns[first_user:]:
        if not str(turn["content"]).strip():
            fixes.append("cut_at_empty_turn")
            break
        if turn["role"] in SPOKEN and turn["role"] == previous:
            fixes.append("cut_at_repeated_role")
            break
        kept.append(turn)
        previous = turn["role"]
    return kept, fixes


def strip_annotations(turns: list[dict]) -> int:
    """Remove calculator annotations from assistant turns in place; the number of turns changed."""
    changed = 0
    for turn in turns:
        if turn["role"] == "assistant" and ANNOTATION.search(turn["content"]):
            turn["content"] = ANNOTATION.sub("", turn["content"])
            changed += 1
    return changed
