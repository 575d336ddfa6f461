"""Reading local JSON Lines and converting rows into TRL formats (the formats themselves are in
`tools.trl_formats`). Shared by inspect_dataset, check_dataset_quality and reformat_dataset.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tools.data.choices import ChoiceBuilder, answer_index, options_of
from tools.data.turns import repair_turns
from tools.errors import ToolError
from tools.trl_formats import is_messages, is_sharegpt


def read_local_split(path: Path, n_rows: int) -> tuple[int, list[dict], list[str]]:
    """(row count, first n_rows rows, notes) of a .jsonl or .json file; ToolError on a bad line."""
    if path.suffix == ".jsonl":
        count, rows, keys, odd_line, odd_count = 0, [], None, None, 0
        with path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                row = _parse_line(path, line_no, line)
                count += 1
                keys = set(row) if keys is None else keys
                if set(row) != keys:
                    odd_count += 1
                    odd_line = odd_line or line_no
                if len(rows) < n_rows:
                    rows.append(row)
        notes = [f"{odd_count} rows have other fields than the first row (first at line {odd_line})."
                 ] if odd_count else []
        return count, rows, notes
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ToolError(f"{path} is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}. "
                        "Fix the file and inspect it again.") from err
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        data = lists[0] if len(lists) == 1 else data
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ToolError(f"{path} must hold a JSON list of objects (one per example), or an object "
                        "with one such list; convert it to .jsonl with one object per line.")
    return len(data), data[:n_rows], []


def _parse_line(path: Path, line_no: int, line: str) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as err:
        raise ToolError(f"{path} line {line_no} is not valid JSON ({err.msg}, column {err.colno}). "
                        "Fix or remove that line and inspect again.") from err
    if not isinstance(row, dict):
        raise ToolError(f"{path} line {line_no} is a JSON {type(row).__name__}, not an object: each "
                        "line must be one example like {\"prompt\": ..., \"completion\": ...}.")
    return row


# Converting rows into TRL formats (reformat_dataset)

ROLES = ("prompt", "completion", "input", "system", "conversations", "chosen", "rejected", "choices", "correct",
         "incorrect")
ROLE_ALIASES = {
    "conversations": ("conversations", "messages", "conversation"),
    "chosen": ("chosen",),
    "rejected": ("rejected",),
    "prompt": ("prompt", "question", "instruction", "problem", "query", "input"),
    "completion": ("completion", "answer", "output", "response", "solution"),
    "input": ("input", "context"),
    "system": ("system", "system_prompt"),
    # multiple choice: an options list with an answer (index, letter or text), or one correct and
    # several incorrect answer columns
    "choices": ("choices", "options", "endings"),
    "choice_answer": ("answer", "answerkey", "answer idx", "answer index", "label", "gold", "correct", "target"),
    "correct": ("correct answer", "correct", "right answer"),
}
INCORRECT_COLUMN = re.compile(r"(incorrect|wrong) answers?( \d+)?|distractors?( \d+)?")


def column_key(name: str) -> str:
    """A column name compared loosely: "Correct Answer", "correct_answer", "correct-answer" -> "correct answer"."""
    return " ".join(re.split(r"[\s_\-]+", str(name).strip().lower()))


def find_column(columns, aliases, exclude=frozenset()) -> str | None:
    """The first column whose name matches one of `aliases` (in alias order), case and separators ignored."""
    keyed: dict[str, str] = {}
    for column in columns:
        if column not in exclude:
            keyed.setdefault(column_key(column), column)
    return next((keyed[column_key(a)] for a in aliases if column_key(a) in keyed), None)
SPEAKERS = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
            "chatgpt": "assistant", "bard": "assistant", "bing": "assistant", "model": "assistant",
            "system": "system", "tool": "tool", "function": "tool", "observation": "tool"}


def resolve_roles(columns: list[str], first_row: dict, column_map: dict, target: str) -> tuple[str, dict]:
    """(source shape, {role: column}) for converting rows to `target`; ToolError naming what is missing."""
    available = ", ".join(columns)
    unknown = set(column_map) - set(ROLES)
    if unknown:
        raise ToolError(f"Unknown column_map role(s) {sorted(unknown)}; roles: {', '.join(ROLES)}.")
    for role, mapped in column_map.items():
        for column in mapped if isinstance(mapped, list) and role == "incorrect" else [mapped]:
            if column not in columns:
                raise ToolError(f"Column {column!r} (mapped to {role}) is not in the dataset; available columns: "
                                f"{available}.")

    def find(role: str, exclude: set = frozenset()) -> str | None:
        return column_map.get(role) or find_column(columns, ROLE_ALIASES[role], exclude)

    if target == "preference" or {"chosen", "rejected"} & set(column_map):
        roles = {"chosen": find("chosen"), "rejected": find("rejected")}
        for role, column in roles.items():
            if column is None:
                raise ToolError(f"target_format='preference' needs a {role!r} column; available columns: "
                                f"{available}. Map it with column_map={{'{role}': '<column>'}}.")
        if target != "preference":
            raise ToolError("chosen/rejected apply to target_format='preference' only; to train SFT on the "
                            "preferred replies use column_map={'prompt': '<prompt column>', 'completion': 'chosen'}.")
        roles.update(prompt=find("prompt", {roles["chosen"], roles["rejected"]}), system=find("system"))
        return "preference", {k: v for k, v in roles.items() if v}
    conversations = column_map.get("conversations") or next(
        (c for c in columns if find_column([c], ROLE_ALIASES["conversations"]) and _is_turns(first_row.get(c))), None)
    if conversations and not {"prompt", "completion"} & set(column_map):
        shape = "sharegpt" if is_sharegpt(first_row.get(conversations)) else "messages"
        return shape, {k: v for k, v in {"conversations": conversations, "system": find("system")}.items() if v}
    choice = multiple_choice_roles(columns, first_row, column_map)
    if choice:
        return "multiple-choice", choice
    if find_column(columns, ["chosen"]) and find_column(columns, ["rejected"]) and not column_map:
        raise ToolError("This looks like preference data (chosen/rejected): use target_format='preference', or "
                        "column_map={'prompt': 'prompt', 'completion': 'chosen'} to train SFT on the chosen replies.")
    prompt = find("prompt")
    completion = find("completion", {prompt})
    if prompt is None or (completion is None and target != "prompt-only"):
        role = "prompt" if prompt is None else "completion"
        raise ToolError(f"No {role} column found (looked for {', '.join(ROLE_ALIASES[role])}); available columns: "
                        f"{available}. Pass column_map, e.g. {{'prompt': 'text', 'completion': 'label'}}.")
    extra = find("input", {prompt, completion})
    roles = {"prompt": prompt, "completion": completion, "input": extra, "system": find("system", {prompt, completion})}
    return ("alpaca" if extra else "question-answer"), {k: v for k, v in roles.items() if v}


def multiple_choice_roles(columns: list[str], first_row: dict, column_map: dict) -> dict | None:
    """{prompt, choices, completion} (an options column and the answer's index, letter or text) or
    {prompt, correct, incorrect: [columns]} (GPQA-style answer columns), else None."""
    if column_map and not {"choices", "correct", "incorrect"} & set(column_map):
        return None
    prompt = column_map.get("prompt") or find_column(columns, ROLE_ALIASES["prompt"])
    if prompt is None:
        return None
    choices = column_map.get("choices") or find_column(columns, ROLE_ALIASES["choices"], {prompt})
    if choices and options_of(first_row.get(choices)) is not None:
        answer = column_map.get("completion") or find_column(columns, ROLE_ALIASES["choice_answer"], {prompt, choices})
        if answer is None:
            raise ToolError(f"Column {choices!r} holds options but no answer column was found (looked for "
                            f"{', '.join(ROLE_ALIASES['choice_answer'])}); map it with column_map={{'completion': "
                            "'<answer column>'}}.")
        return {"prompt": prompt, "choices": choices, "completion": answer}
    incorrect = column_map.get("incorrect") or sorted(c for c in columns if INCORRECT_COLUMN.fullmatch(column_key(c)))
    incorrect = [incorrect] if isinstance(incorrect, str) else list(incorrect)
    correct = column_map.get("correct") or find_column(columns, ROLE_ALIASES["correct"], {prompt, *incorrect})
    return {"prompt": prompt, "correct": correct, "incorrect": incorrect} if correct and incorrect else None


def _choice_example(row: dict, roles: dict, label_names: dict,
                    builder: ChoiceBuilder) -> tuple[dict | None, str | None]:
    if "choices" in roles:
        found = options_of(row.get(roles["choices"]))
        if found is None:
            return None, "no_answer"
        options, labels = found
        correct = answer_index(row.get(roles["completion"]), options, labels, label_names.get(roles["completion"]))
    else:
        options = [_as_text(row.get(roles["correct"]))] + [_as_text(row.get(c)) for c in roles["incorrect"]]
        options = [options[0]] + [o for o in options[1:] if o.strip()]
        correct = 0
    if correct is None or not 2 <= len(options) <= 10 or not all(o.strip() for o in options):
        return None, "no_answer"
    question = _as_text(row.get(roles["prompt"]))
    if not question.strip():
        return None, "empty"
    prompt, letter = builder.build(question, options, correct)
    return {"prompt": [{"role": "user", "content": prompt}], "completion": [{"role": "assistant", "content": letter}],
            "flat": True}, None


def _holds_prompt(value) -> bool:
    """Whether a chosen/rejected value is a conversation that holds the user turn (TRL's implicit prompt)."""
    return isinstance(value, list) and any(
        isinstance(t, dict) and SPEAKERS.get(str(t.get("role", t.get("from", ""))).lower()) == "user" for t in value)


def _is_turns(value) -> bool:
    return is_messages(value) or is_sharegpt(value)


def _as_text(value, names: list[str] | None = None) -> str:
    if value is None:
        return ""
    if names and isinstance(value, int) and 0 <= value < len(names):
        return names[value]
    return str(value)


def _turns(value, default_role: str, speakers: dict) -> list[dict] | None:
    """A message list from a {role, content} or {from, value} list, or from text; None on an unknown speaker."""
    if not isinstance(value, list):
        return [{"role": default_role, "content": _as_text(value)}]
    turns = []
    for turn in value:
        speaker = str(turn.get("from", turn.get("role", ""))) if isinstance(turn, dict) else ""
        role = SPEAKERS.get(speaker.lower())
        if role is None:
            return None
        speakers[speaker] = role
        turns.append({"role": role, "content": _as_text(turn.get("value", turn.get("content")))})
    return turns


def conversation_turns(row: dict, shape: str, roles: dict, label_names: dict, system_prompt: str | None,
                       speakers: dict, choices: ChoiceBuilder | None = None) -> tuple[dict | None, str | None]:
    """A row as {"prompt": turns, "completion": turns|None, "rejected": turns|None, "flat": bool,
    "fixes": [turn-order fixes], "implicit": bool}, or (None, reason) when it cannot be converted."""
    def get(role: str):
        return row.get(roles[role]) if role in roles else None

    if shape == "multiple-choice":
        example, reason = _choice_example(row, roles, label_names, choices)
        if example is None:
            return None, reason
    elif shape in ("sharegpt", "messages"):
        turns = _turns(get("conversations") or [], "user", speakers)
        if turns is None:
            return None, "unknown_speaker"
        turns, fixes = repair_turns(turns)
        last = max((i for i, t in enumerate(turns) if t["role"] == "assistant"), default=None)
        if fixes and (last is None or not any(t["role"] == "user" for t in turns[:last])):
            return None, "bad_turn_order"
        example = {"prompt": turns if last is None else turns[:last],
                   "completion": None if last is None else [turns[last]], "flat": False, "fixes": fixes}
    else:
        prompt = get("prompt")
        if not isinstance(prompt, list) and _as_text(get("input")).strip():
            prompt = f"{_as_text(prompt)}\n\n{_as_text(get('input'))}"
        names = label_names.get(roles.get("completion"))  # a ClassLabel completion: index -> name

        def reply(role: str) -> list[dict] | None:
            value = get(role)
            if names and isinstance(value, int):
                return [{"role": "assistant", "content": _as_text(value, names)}]
            return _turns(value, "assistant", speakers)

        implicit = shape == "preference" and _holds_prompt(get("chosen")) and _holds_prompt(get("rejected"))
        first = [] if implicit or (shape == "preference" and prompt is None) else _turns(prompt, "user", speakers)
        replies = [reply(r) for r in ("completion", "chosen", "rejected") if r in roles]
        if first is None or any(r is None for r in replies):
            return None, "unknown_speaker"
        example = {"prompt": first, "completion": replies[0] if replies else None,
                   "rejected": replies[1] if len(replies) > 1 else None, "implicit": implicit,
                   "flat": not any(isinstance(get(r), list) for r in ("prompt", "completion", "chosen", "rejected"))}
    system = system_prompt or _as_text(get("system")).strip()
    if system:
        turns = example["prompt"]
        if turns and turns[0]["role"] == "system":
            turns[0] = {"role": "system", "content": system}
        elif turns or shape != "preference":
            example["prompt"] = [{"role": "system", "content": system}] + turns
        else:  # implicit-prompt preference pairs: the system turn opens both replies
            for key in ("completion", "rejected"):
                rest = example[key][1:] if example[key] and example[key][0]["role"] == "system" else example[key]
                example[key] = [{"role": "system", "content": system}] + rest
    return example, None


def render_row(example: dict, target: str, min_chars: int | None) -> tuple[dict | None, str | None, str | None]:
    """(TRL row, None, how the answer was found) or (None, reason dropped, None)."""
    prompt, completion, rejected = example["prompt"], example["completion"], example.get("rejected")
    spoken = [t for t in prompt + (completion or []) + (rejected or []) if t["role"] != "system"]
    if any(not t["content"].strip() for t in spoken) or (target != "prompt-only" and not completion) or (
            target != "preference" and not any(t["role"] == "user" for t in prompt)):
        return None, "empty", None
    if min_chars and any(len(t["content"].strip()) < min_chars for t in spoken if t["role"] in ("user", "assistant")):
        return None, "too_short", None
    flat = example["flat"] and not any(t["role"] == "system" for t in prompt)

    def text_or_turns(turns: list[dict]):
        return turns[-1]["content"] if flat and len(turns) == 1 else turns

    if target == "messages":
        return {"messages": prompt + completion}, None, None
    if target == "prompt-completion":
        return {"prompt": text_or_turns(prompt), "completion": text_or_turns(completion)}, None, None
    if target == "prompt-only":
        row = {"prompt": text_or_turns(prompt)}
        if not completion:
            return row, None, None
        answer, how = extract_answer(completion[-1]["content"])
        return {**row, "answer": answer}, None, how
    if completion == rejected:
        return None, "identical_pair", None
    row = {"prompt": text_or_turns(prompt)} if prompt else {}
    return {**row, "chosen": text_or_turns(completion), "rejected": text_or_turns(rejected)}, None, None


def extract_answer(text: str) -> tuple[str, str]:
    """The final answer of a worked solution and where it came from: GSM8K's "#### N", the last
    \\boxed{...}, else the whole text."""
    if "####" in text:
        answer = text.rsplit("####", 1)[1].strip()
        return (answer.replace(",", "") if re.fullmatch(r"-?[\d,]+(\.\d+)?", answer) else answer), "#### N"
    start = text.rfind("\\boxed{")
    if start >= 0:
        depth, i = 1, start + len("\\boxed{")
        for j in range(i, len(text)):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                return text[i:j].strip(), "\\boxed{}"
    return text.strip(), "whole completion"
