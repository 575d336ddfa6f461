"""generate_synthetic_data: check, clean and save training examples the agent wrote itself.

The LLM writes examples for named edge cases in its code action and passes them in as dicts. This
tool validates each against the target TRL format (naming the example and field of each fault),
drops exact and near duplicates (word 3-gram shingles, Jaccard >= 0.9 on every side: prompt and
reply, or prompt, chosen and rejected), drops examples that share a word 8-gram with the eval set
(evals.contamination), saves the rest to <data_dir>/datasets/<name>/train.jsonl with a dataset
card, optionally pushes them to a new private Hub dataset repo, and records them in the ledger.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import yaml
from huggingface_hub import CommitOperationAdd
from smolagents import Tool

from evals.contamination import find_contamination, words
from tools.backends.hub import cap_text, hf_api, hub_errors, is_hub_id, new_private_dataset_repo
from tools.context import ToolContext
from tools.data.quality import near_duplicate_pairs
from tools.data.rows import load_rows
from tools.errors import ToolError
from tools.trl_formats import detect_trl_format

FORMATS = {"messages": ("messages",), "prompt-completion": ("prompt", "completion"),
           "preference": ("prompt", "chosen", "rejected"), "prompt-only": ("prompt",)}
ROLES = ("system", "user", "assistant")
NEAR_DUPLICATE = 0.9
SHINGLE_WORDS = 3
MAX_PROBLEMS = 10
MAX_EXAMPLES = 20_000
EVAL_ROWS = 20_000
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def turn_problems(turns, field: str) -> list[str]:
    """What is wrong with a list of {role, content} turns (empty when nothing is)."""
    if not isinstance(turns, list) or not turns:
        return [f"{field} must be a non-empty list of {{\"role\", \"content\"}} turns"]
    problems = []
    for j, turn in enumerate(turns):
        where = f"{field}[{j}]"
        if not isinstance(turn, dict):
            problems.append(f"{where} must be a dict with role and content, got {type(turn).__name__}")
            continue
        if turn.get("role") not in ROLES:
            problems.append(f"{where}.role is {turn.get('role')!r}; use system, user or assistant")
        elif turn["role"] == "system" and j:
            problems.append(f"{where} is a system turn; only the first turn may be one")
        if not isinstance(turn.get("content"), str) or not turn["content"].strip():
            problems.append(f"{where}.content must be a non-empty string")
    return problems


def _part_problems(value, field: str, reply: bool) -> list[str]:
    """A prompt (reply=False) or reply (reply=True): a non-empty string or a list of turns."""
    if isinstance(value, str):
        return [] if value.strip() else [f"{field} must be a non-empty string"]
    if not isinstance(value, list):
        return [f"{field} must be a string or a list of {{\"role\", \"content\"}} turns, got "
                f"{type(value).__name__}"]
    problems = turn_problems(value, field)
    roles = [t.get("role") for t in value if isinstance(t, dict)]
    if problems:
        return problems
    if reply and set(roles) != {"assistant"}:
        return [f"{field} turns must all be assistant turns"]
    if not reply and "user" not in roles:
        return [f"{field} needs a user turn"]
    if not reply and roles[-1] == "assistant":
        return [f"{field} ends with an assistant turn; the reply belongs in the completion"]
    return []


def validate(example, fmt: str) -> tuple[list[str], str | None]:
    """(problems as "field: what is wrong", style "text"/"conversational") of one example."""
    if not isinstance(example, dict):
        return [f"example must be a dict, got {type(example).__name__}"], None
    fields = FORMATS[fmt]
    missing = [f for f in fields if f not in example]
    if missing:
        guess, _ = detect_trl_format(list(example), example)
        hint = f" (its fields look like the {guess} format)" if guess in FORMATS and guess != fmt else ""
        return [f"missing field(s) {', '.join(map(repr, missing))} for the {fmt} format{hint}"], None
    problems = [f"field {key!r} must be a string, number, boolean or null (extra fields are metadata)"
                for key, value in example.items()
                if key not in fields and key != "answer" and not isinstance(value, str | int | float | bool | None)]
    if fmt == "messages":
        problems += turn_problems(example["messages"], "messages")
        turns = example["messages"] if isinstance(example["messages"], list) else []
        roles = [t.get("role") for t in turns if isinstance(t, dict)]
        if not problems and "user" not in roles:
            problems.append("messages needs a user turn")
        if not problems and roles[-1] != "assistant":
            problems.append("messages[-1].role must be 'assistant': the last turn is the reply to learn")
        return problems, "conversational"
    for field in fields:
        problems += _part_problems(example[field], field, reply=field != "prompt")
    styles = {isinstance(example[f], list) for f in fields}
    if len(styles) > 1:
        problems.append(f"{', '.join(fields)} must all be strings or all be turn lists")
    if fmt == "preference" and not problems and _norm(example["chosen"]) == _norm(example["rejected"]):
        problems.append("chosen and rejected are the same")
    if "answer" in example:
        answer = example["answer"]
        if fmt != "prompt-only":
            problems.append(f"answer is a prompt-only (GRPO) field; put the reply in {fields[-1]}")
        elif isinstance(answer, bool) or not isinstance(answer, str | int | float) or not str(answer).strip():
            problems.append("answer must be a non-empty string or a number")
    return problems, "conversational" if True in styles else "text"


def _norm(value) -> str:
    return " ".join(json.dumps(value, sort_keys=True, ensure_ascii=False).lower().split())


def _text(value) -> str:
    """The words a field holds: a string, or the contents of its turns."""
    if isinstance(value, list):
        return "\n".join(str(t.get("content", "")) for t in value if isinstance(t, dict))
    return str(value)


def sides(example: dict, fmt: str) -> list[str]:
    """The parts that must all be near-identical for two examples to count as near duplicates."""
    if fmt == "messages":
        return [_text(example["messages"][:-1]), _text(example["messages"][-1:])]
    if fmt == "prompt-only":
        return [_text(example["prompt"]), str(example.get("answer", ""))]
    return [_text(example[f]) for f in FORMATS[fmt]]


def shingles(text: str) -> set[tuple[str, ...]]:
    tokens = words(text)
    if len(tokens) < SHINGLE_WORDS:
        return {tuple(tokens)} if tokens else set()
    return set(zip(*(tokens[i:] for i in range(SHINGLE_WORDS)), strict=False))


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def deduplicate(examples: list[dict], fmt: str, threshold: float = NEAR_DUPLICATE):
    """(kept indices, {dropped index: (kept index it repeats, "exact" | "near")}).

    Shingles are tagged with their side, so every side being near-identical makes the whole
    near-identical too: candidate pairs come from the whole, then each side is checked.
    """
    per_side = [[shingles(part) for part in sides(e, fmt)] for e in examples]
    whole = [frozenset((k, g) for k, side in enumerate(parts) for g in side) for parts in per_side]
    twins: dict[int, list[int]] = {}
    for i, j in near_duplicate_pairs(whole, threshold):
        if all(jaccard(a, b) >= threshold for a, b in zip(per_side[i], per_side[j], strict=True)):
            twins.setdefault(j, []).append(i)
    exact: dict[str, int] = {}
    kept, dropped = [], {}
    for i, example in enumerate(examples):
        key = _norm({k: example[k] for k in (*FORMATS[fmt], "answer") if k in example})
        twin = next((j for j in twins.get(i, ()) if j not in dropped), None)
        if key in exact:
            dropped[i] = (exact[key], "exact")
        elif twin is not None:
            dropped[i] = (twin, "near")
        else:
            exact[key] = i
            kept.append(i)
    return kept, dropped


def _strings(value) -> list[str]:
    """Every string inside a row's field (turn contents, list items), each a separate eval text."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _eval_location(ctx: ToolContext, eval_dataset: str) -> str:
    """A relative eval path as given when it is in the workspace, else the same path under the project
    (evals/data/... ships with it)."""
    path = Path(eval_dataset).expanduser()
    if path.is_absolute() or (ctx.workspace / path).exists():
        return eval_dataset
    return str(PROJECT_ROOT / path) if (PROJECT_ROOT / path).exists() else eval_dataset


class GenerateSyntheticDataTool(Tool):
    name = "generate_synthetic_data"
    description = """Check and save training examples you wrote (e.g. edge cases a dataset lacks): drops invalid \
ones, near duplicates and eval-set overlaps; saves and records the rest.
Returns {"dataset_id", "path", "rows", "dropped": {"invalid", "duplicates", "contaminated"}, "problems", \
"hub_id"}; train on out["path"].
Example: generate_synthetic_data(spec="negation", examples=[{"prompt": "Not bad?", "completion": "positive"}], \
target_format="prompt-completion", eval_dataset="evals/data/tiny_sentiment")"""
    inputs = {
        "spec": {"type": "string", "description": "What the data is for (edge cases covered)."},
        "examples": {"type": "array", "description": "Dicts with target_format's keys (messages end with an "
                     "assistant turn; prompt-only may add \"answer\"); extra scalars kept."},
        "target_format": {"type": "string", "description": "messages (default), prompt-completion, preference, "
                          "prompt-only.", "nullable": True},
        "eval_dataset": {"type": "string", "description": "Eval set (local path or Hub id) to drop overlaps with; "
                         "recommended.", "nullable": True},
        "name": {"type": "string", "description": "Saved dataset's folder name.", "nullable": True},
        "push_to_hub": {"type": "boolean", "description": "Push to a new private Hub dataset repo.",
                        "nullable": True},
        "hub_dataset_id": {"type": "string", "description": "Repo id for the push.",
                           "nullable": True},
        "min_examples": {"type": "integer", "description": "Save nothing if fewer survive.",
                         "nullable": True},
    }
    output_type = "object"

    def __init__(self, ctx: ToolContext):
        super().__init__()
        self.ctx = ctx

    def forward(self, spec: str, examples: list, target_format: str | None = "messages",
                eval_dataset: str | None = None, name: str | None = None, push_to_hub: bool | None = False,
                hub_dataset_id: str | None = None, min_examples: int | None = None) -> dict:
        if self.ctx.rules is not None and not self.ctx.rules.allow_llm_data:
            raise ToolError("Refused: in this benchmark run no LLM writes training data (an outside-API teacher gets "
                            "the run flagged); the run was started without --allow-llm-data. Use existing datasets.")
        fmt = target_format or "messages"
        self._check_arguments(spec, examples, fmt, push_to_hub, hub_dataset_id)
        problems: list[str] = []
        valid, styles, invalid = [], Counter(), 0
        for i, example in enumerate(examples):
            found, style = validate(example, fmt)
            if not found and styles and style not in styles:
                found = [f"uses {style} fields but earlier examples use {next(iter(styles))} ones; use one style"]
            if found:
                invalid += 1
                problems += [f"example {i}: {p}" for p in found[:3]]
                continue
            styles[style] += 1
            valid.append(i)
        notes: list[str] = []
        rows = self._rows([examples[i] for i in valid], fmt, notes)
        kept, repeats = deduplicate(rows, fmt)
        for j, (twin, kind) in repeats.items():
            problems.append(f"example {valid[j]}: {'repeats' if kind == 'exact' else 'nearly repeats'} example "
                            f"{valid[twin]} (dropped)")
        unique = [rows[j] for j in kept]
        origin = [valid[j] for j in kept]
        contaminated, contamination = self._contamination(unique, origin, fmt, eval_dataset, problems, notes)
        final = [row for k, row in enumerate(unique) if k not in contaminated]
        dropped = {"invalid": invalid, "duplicates": len(repeats), "contaminated": len(contaminated)}
        needed = max(1, int(min_examples or 1))
        if len(final) < needed:
            shown = "; ".join(problems[:MAX_PROBLEMS])
            raise ToolError(f"Only {len(final)} of {len(examples)} examples survive the checks (dropped {dropped}), "
                            f"fewer than min_examples={needed}; nothing was saved. Problems: {shown}. Fix or "
                            "replace the dropped examples (new ones, not rewordings) and call again.")
        folder = _new_folder(self.ctx.data_area("datasets"), name or hub_dataset_id, fmt)
        with (folder / "train.jsonl").open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in final)
        transform = {"tool": "generate_synthetic_data", "spec": spec, "target_format": fmt,
                     "style": next(iter(styles)), "examples_given": len(examples), "dropped": dropped,
                     "exact_duplicates": sum(k == "exact" for _, k in repeats.values()),
                     "near_duplicates": sum(k == "near" for _, k in repeats.values()),
                     "near_duplicate_rule": f"word {SHINGLE_WORDS}-gram Jaccard >= {NEAR_DUPLICATE} on every side",
                     "contamination": contamination, "min_examples": min_examples, "rows": len(final)}
        card = dataset_card(folder.name if not hub_dataset_id else hub_dataset_id.split("/")[-1], transform)
        (folder / "README.md").write_text(card, encoding="utf-8")
        hub_id, push_error = None, None
        if push_to_hub:
            try:
                hub_id = self._push(folder, hub_dataset_id or folder.name, card, len(final))
            except ToolError as err:
                push_error = str(err)
        dataset_id = self.ctx.ledger.record_dataset(
            source="synthetic", path=str(folder), format=fmt, rows=len(final), transform=transform,
            experiment_id=self.ctx.current_experiment(), hub_id=hub_id, user=self.ctx.user)
        if push_error:
            raise ToolError(f"Saved {len(final)} examples to {folder} (ledger dataset {dataset_id}), but the push "
                            f"failed: {push_error}")
        return {"dataset_id": dataset_id, "path": str(folder), "rows": len(final), "format": fmt,
                "dropped": dropped, "problems": problems[:MAX_PROBLEMS], "problems_total": len(problems),
                "hub_id": hub_id, "notes": notes}

    def _check_arguments(self, spec, examples, fmt, push_to_hub, hub_dataset_id) -> None:
        if fmt not in FORMATS:
            raise ToolError(f"Unknown target_format {fmt!r}; use one of: {', '.join(FORMATS)}.")
        if not isinstance(spec, str) or not spec.strip():
            raise ToolError("spec is empty: say what the data is for and which edge cases it covers.")
        if not isinstance(examples, list | tuple) or not examples:
            raise ToolError("examples must be a non-empty list of dicts in the target format, e.g. "
                            "[{\"prompt\": \"...\", \"completion\": \"...\"}, ...].")
        if len(examples) > MAX_EXAMPLES:
            raise ToolError(f"{len(examples)} examples is more than {MAX_EXAMPLES} in one call; split them over "
                            "several datasets or call once per edge case.")
        if push_to_hub and not self.ctx.settings.hf_token:
            raise ToolError("push_to_hub needs an HF token with write access: set HF_TOKEN, or call again with "
                            "push_to_hub=False to save the data locally only.")
        if hub_dataset_id and not is_hub_id(hub_dataset_id):
            raise ToolError(f"hub_dataset_id {hub_dataset_id!r} is not a repo id: use \"owner/name\" or \"name\" with "
                            "letters, digits, '-', '_' and '.' (at most 96 characters).")

    @staticmethod
    def _rows(examples: list[dict], fmt: str, notes: list[str]) -> list[dict]:
        """The examples as saved: format fields first; numeric answers, and extra fields whose values mix
        types (which a JSON Lines loader cannot put in one column), as strings."""
        rows = [{**{k: e[k] for k in FORMATS[fmt]}, **e} for e in examples]
        for key in sorted({k for r in rows for k in r} - set(FORMATS[fmt])):
            kinds = {type(r[key]).__name__ for r in rows if r.get(key) is not None}
            if (key == "answer" and kinds - {"str"}) or len(kinds) > 1:
                for row in (r for r in rows if r.get(key) is not None):
                    row[key] = str(row[key])
                notes.append(f"{key!r} values given as {', '.join(sorted(kinds))} were saved as strings"
                             + (", as reward functions compare text." if key == "answer" else "."))
        return rows

    def _contamination(self, rows, origin, fmt, eval_dataset, problems, notes) -> tuple[set[int], dict | None]:
        """Indices (into rows) that share a word 8-gram with the eval set, and what was checked."""
        if not eval_dataset:
            notes.append("No eval_dataset given: contamination against the eval set was not checked; pass "
                         "eval_dataset to check it.")
            return set(), None
        loaded = load_rows(self.ctx, _eval_location(self.ctx, eval_dataset), prefer_split="test", limit=EVAL_ROWS)
        eval_texts, eval_rows = [], []
        for r, row in enumerate(loaded.rows):
            for text in _strings(row):
                eval_texts.append(text)
                eval_rows.append(r)
        report = find_contamination(["\n".join(sides(row, fmt)) for row in rows], eval_texts)
        hits = set(report.train_matches)
        if hits:
            shared = "; ".join(f"{cap_text(m.eval_text, 80)!r} (eval row {eval_rows[m.eval_index]}, {m.level})"
                               for m in report.matches[:3])
            problems += [f"example {origin[k]}: holds eval row {eval_rows[m.eval_index]} ({m.level} copy; dropped)"
                         for k, m in report.train_matches.items()]
            notes.append(f"{len(hits)} examples copied items of the eval set {loaded.split!r} split, e.g. {shared}. "
                         "Write examples about other content than the eval items.")
        where = {k: v for k, v in loaded.describe().items() if k not in ("path", "dataset")}
        return hits, {"eval_dataset": eval_dataset, **where, "levels": report.levels, "eval_texts": len(eval_texts),
                      "eval_items_hit": report.contaminated, "examples_dropped": len(hits)}

    def _push(self, folder: Path, repo_id: str, card: str, rows: int) -> str:
        settings = self.ctx.settings
        api = hf_api(settings)
        with hub_errors("generate_synthetic_data push", settings.hf_endpoint):
            repo_id = new_private_dataset_repo(api, settings, repo_id)
            api.create_commit(repo_id, [CommitOperationAdd("README.md", card.encode()),
                                        CommitOperationAdd("data/train.jsonl", str(folder / "train.jsonl"))],
                              repo_type="dataset", commit_message=f"Add {rows} synthetic examples (ml-intern)")
        return repo_id


def dataset_card(title: str, transform: dict) -> str:
    """README.md: YAML front matter (configs, tags), the spec, that the data is synthetic, and the counts."""
    rows = transform["rows"]
    size = next(label for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                                           (math.inf, "n>100K")) if rows < limit)
    meta = {"pretty_name": title, "tags": ["ml-intern", "synthetic", "trl", transform["target_format"]],
            "size_categories": [size],
            "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train.jsonl"}]}]}
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", transform["spec"])), default=0))
    dropped = transform["dropped"]
    check = transform["contamination"]
    if check:
        eval_name = Path(check["eval_dataset"]).name if check["source"] == "local" else check["eval_dataset"]
        contamination = (f"Checked against the eval set `{eval_name}` (split `{check['split']}`): "
                         f"{dropped['contaminated']} examples holding one of its items (exact, normalised or "
                         "fuzzy copies; shared template wording does not count) were dropped.")
    else:
        contamination = "Not checked against an eval set."
    return (f"---\n{yaml.safe_dump(meta, sort_keys=False)}---\n\n# {title}\n\n"
            "Synthetic, generated by ml-intern's agent: an LLM wrote these examples from the specification "
            f"below, in the TRL `{transform['target_format']}` format.\n\n## Specification\n\n"
            f"{fence}text\n{transform['spec'].strip()}\n{fence}\n\n## Counts\n\n"
            f"- examples written: {transform['examples_given']}\n- kept: {rows}\n"
            f"- dropped as invalid: {dropped['invalid']}\n- dropped as duplicates: {dropped['duplicates']} "
            f"({transform['exact_duplicates']} exact, {transform['near_duplicates']} near: "
            f"{transform['near_duplicate_rule']})\n- dropped as eval contamination: {dropped['contaminated']}\n\n"
            f"{contamination}\n")


def _new_folder(root: Path, name: str | None, fmt: str) -> Path:
    """A fresh folder under `root` named after `name` (its last path part), else `synthetic-<format>`."""
    base = re.sub(r"[^\w.-]+", "-", (name or f"synthetic-{fmt}").split("/")[-1]).strip("-.").lower() or "synthetic"
    folder, n = root / base, 1
    while folder.exists():
        n += 1
        folder = root / f"{base}-{n}"
    folder.mkdir(parents=True)
    return folder
