"""TRL's dataset formats: which format a dataset's columns fit, which trainers take it, the
columns each training method needs, and what to convert a common non-TRL shape into.

Shared by the data tools (inspect, quality, reformat, synthetic) and the training checks.
"""

from __future__ import annotations

import re

# method: the column sets it accepts (any one of them)
METHOD_COLUMNS = {
    "sft": (("messages",), ("prompt", "completion"), ("text",)),
    "dpo": (("prompt", "chosen", "rejected"), ("chosen", "rejected")),
    "grpo": (("prompt",),),
}
# (columns that must all be present, compared in lower case with "_"/"-" as spaces; what to convert them to)
CONVERTIBLE = [
    (("question", "choices"),
     "multiple choice (question, choices, answer index or letter): reformat_dataset builds prompts with lettered, "
     "shuffled options and the answer letter as completion (the right letter's position balanced)."),
    (("question", "correct answer"),
     "multiple choice in answer columns (Question, Correct Answer, Incorrect Answer 1..3): reformat_dataset builds "
     "prompts with lettered, shuffled options; as stored, the right answer sits in one column (position bias)."),
    (("instruction", "output"),
     "Alpaca-style instruction/input/output: build prompt = instruction (+ \"\\n\\n\" + input when "
     "non-empty) and completion = output to get the prompt-completion format for SFT."),
    (("question", "answer"),
     "question/answer: rename to prompt/completion for SFT; for GRPO keep `prompt` only and pass "
     "the answer column to the reward function (prompt-only format)."),
    (("problem", "solution"),
     "problem/solution: rename to prompt/completion for SFT, or keep `prompt` plus the solution "
     "column for a GRPO reward function (prompt-only format)."),
    (("query", "response"), "query/response: rename to prompt/completion (prompt-completion format, SFT)."),
    (("instruction", "response"),
     "instruction/response (+context): build prompt from instruction and context, completion = "
     "response (prompt-completion format, SFT)."),
    (("input", "output"), "input/output: rename to prompt/completion (prompt-completion format, SFT)."),
    (("label",),
     "classification rows (text + label): build prompt = an instruction plus the text and completion "
     "= the label name (prompt-completion format, SFT), or keep the label for a GRPO reward function."),
]
SHAREGPT_NOTE = ("ShareGPT-style turns [{from, value}]: map each turn to {role, content} (human->user, "
                 "gpt->assistant, system->system) in a `messages` column (messages format, SFT).")


def is_messages(value) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(isinstance(m, dict) and "role" in m and "content" in m for m in value))


def is_sharegpt(value) -> bool:
    return (isinstance(value, list) and bool(value)
            and all(isinstance(m, dict) and "from" in m and "value" in m for m in value))


def conversion_note(columns, first_row: dict | None) -> str | None:
    """What to do with a common non-TRL shape (ShareGPT, Alpaca, question/answer, ...), else None."""
    cols, row = {" ".join(re.split(r"[\s_\-]+", str(c).strip().lower())) for c in columns}, first_row or {}
    if any(is_sharegpt(row.get(c)) for c in ("conversations", "messages")) or (
            "conversations" in cols and not row):
        return SHAREGPT_NOTE
    for needed, note in CONVERTIBLE:
        if set(needed) <= cols:
            return note
    return None


def detect_trl_format(columns, first_row: dict | None) -> tuple[str, list[str]]:
    """The TRL dataset format of a dataset with these columns, and the trainers that take it as is.

    Formats: "messages" and "text" (SFT), "prompt-completion" (SFT; GRPO uses the prompt and hands
    the completion to reward functions), "preference" (DPO, reward modelling; the prompt may be
    implicit in chosen/rejected), "unpaired-preference" (KTO), "prompt-only" (GRPO),
    "needs-conversion" (a known shape to convert first: see `conversion_note`), "unknown".
    """
    cols, row = set(columns), first_row or {}
    if "messages" in cols and (is_messages(row.get("messages")) or not row):
        return "messages", ["SFT"]
    if {"chosen", "rejected"} <= cols:
        return "preference", ["DPO", "Reward"]
    if {"prompt", "completion", "label"} <= cols:
        return "unpaired-preference", ["KTO"]
    if {"prompt", "completion"} <= cols:
        return "prompt-completion", ["SFT", "GRPO"]
    if "prompt" in cols:
        return "prompt-only", ["GRPO"]
    if conversion_note(columns, first_row):
        return "needs-conversion", []
    if "text" in cols:
        return "text", ["SFT"]
    return "unknown", []


def format_notes(fmt: str, columns, first_row: dict | None) -> list[str]:
    """What the agent should know about a dataset of format `fmt` before training on it."""
    row, notes = first_row or {}, []
    if fmt == "needs-conversion":
        notes.append(conversion_note(columns, first_row))
    elif fmt == "unknown":
        notes.append(f"No TRL format recognised in columns {sorted(columns)}. TRL expects messages, "
                     "text, prompt+completion, prompt+chosen+rejected or prompt; map columns to one.")
    elif fmt == "preference" and "prompt" not in set(columns):
        notes.append("No prompt column: DPO takes the prompt as the shared start of chosen/rejected "
                     "(implicit prompt).")
    if any(is_messages(row.get(c)) for c in ("prompt", "completion", "chosen", "rejected")):
        notes.append("Conversational style: fields are lists of {role, content}; the trainer applies "
                     "the model's chat template.")
    return notes
