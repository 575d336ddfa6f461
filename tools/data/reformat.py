"""reformat_dataset: convert a Hub or local dataset into a TRL format, clean it, split it, save it
under <data_dir>/datasets/<name>/, optionally push it to the Hub with a card naming its source,
and record the exact transformation in the ledger so a training run traces back to its data.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import yaml
from huggingface_hub import CommitOperationAdd
from smolagents import Tool

from tools.backends.hub import hf_api, hub_errors, is_hub_id, new_private_dataset_repo
from tools.context import ToolContext
from tools.data.choices import ChoiceBuilder
from tools.data.formats import SPEAKERS, conversation_turns, render_row, resolve_roles
from tools.data.held_out import decontaminate_rows, describe_drop, evaluation_split
from tools.data.rows import LoadedRows, load_rows
from tools.data.turns import strip_annotations
from tools.errors import ToolError
from tools.paths import looks_local
from tools.untrusted import fence

TARGETS = ("messages", "prompt-completion", "prompt-only", "preference")
MAX_HUB_ROWS = 20_000  # 200 viewer calls; bigger sets are converted inside a job with `datasets`
SEED = 42


class ReformatDatasetTool(Tool):
    name = "reformat_dataset"
    description = """Convert a dataset to a TRL format, clean it (empty, duplicate, broken-turn rows; calculator \
annotations), save and record it. Detects columns (ShareGPT, Alpaca, question/answer, multiple choice: lettered, \
shuffled options) unless column_map says.
Returns {"dataset_id", "path", "rows", "splits", "hub_id", "columns", "dropped", "fixed", "sample", "notes"}.
Example: reformat_dataset(dataset="openai/gsm8k", config="main", target_format="prompt-only", decontaminate="gsm8k")"""
    inputs = {
        "dataset": {"type": "string", "description": "Hub dataset id or local .jsonl/.json path."},
        "target_format": {"type": "string", "description": "messages or prompt-completion (SFT), preference (DPO), "
                          "prompt-only (GRPO; adds an `answer` column from \"#### N\" or \\boxed{})."},
        "column_map": {"type": "object", "description": "{role: column}; roles: prompt, completion, input, "
                       "system, conversations, chosen, rejected; multiple choice: choices (+ completion = "
                       "answer) or correct + incorrect (a column list).", "nullable": True},
        "system_prompt": {"type": "string", "description": "Added as the first turn.", "nullable": True},
        "filter_min_chars": {"type": "integer", "description": "Drop rows with a shorter prompt or reply.",
                             "nullable": True},
        "max_rows": {"type": "integer", "description": "Most source rows to read.", "nullable": True},
        "test_size": {"type": "number", "description": "Test split: a fraction (0-1) or a row count.",
                      "nullable": True},
        "split": {"type": "string", "description": "Source split; default train.", "nullable": True},
        "push_to_hub": {"type": "boolean", "description": "Push to a new private Hub dataset repo.",
                        "nullable": True},
        "hub_dataset_id": {"type": "string", "description": "Repo id for the push.",
                           "nullable": True},
        "config": {"type": "string", "description": "Source config (subset).", "nullable": True},
        "decontaminate": {"type": "string", "description": "Eval set whose items to drop: a benchmark (gsm8k), "
                          "Hub id or local path.", "nullable": True},
        "allow_eval_split": {"type": "boolean", "description": (
                             "Allow an eval split (a benchmark's, or one named test); recorded."),
                             "nullable": True},
    }
    output_type = "object"

    def __init__(self, ctx: ToolContext):
        super().__init__()
        self.ctx = ctx

    def forward(self, dataset: str, target_format: str, column_map: dict | None = None,
                system_prompt: str | None = None, filter_min_chars: int | None = None,
                max_rows: int | None = None, test_size: float | None = None, split: str | None = "train",
                push_to_hub: bool | None = False, hub_dataset_id: str | None = None,
                config: str | None = None, decontaminate: str | None = None,
                allow_eval_split: bool | None = False) -> dict:
        if target_format not in TARGETS:
            raise ToolError(f"Unknown target_format {target_format!r}; supported: {', '.join(TARGETS)}.")
        if push_to_hub and not self.ctx.settings.hf_token:
            raise ToolError("push_to_hub needs an HF token with write access: set HF_TOKEN, or call again "
                            "with push_to_hub=False to save the dataset locally only.")
        if hub_dataset_id and not is_hub_id(hub_dataset_id):
            raise ToolError(f"hub_dataset_id {hub_dataset_id!r} is not a repo id: use \"owner/name\" or \"name\" "
                            "with letters, digits, '-', '_' and '.' (at most 96 characters).")
        if max_rows is not None and int(max_rows) < 1:
            raise ToolError("max_rows must be a positive number of rows.")
        limit = int(max_rows) if max_rows else None
        loaded = load_rows(self.ctx, dataset, config=config, split=split,
                           limit=limit or (MAX_HUB_ROWS if not looks_local(self.ctx, dataset) else 10**9))
        held_out = evaluation_split(loaded)
        if held_out and not allow_eval_split:
            raise ToolError(f"Refused: {held_out}. A model trained on evaluation data scores high on it without "
                            "being better. Use the train split (split='train'), or pass allow_eval_split=True only "
                            "if this data will never be used to evaluate (the override is recorded in the ledger).")
        if not loaded.rows:
            raise ToolError(f"{loaded.dataset} ({loaded.config}/{loaded.split}) has no rows to convert.")
        columns = sorted({k for r in loaded.rows for k in r})
        shape, roles = resolve_roles(columns, loaded.rows[0], column_map or {}, target_format)
        choices = ChoiceBuilder(SEED) if shape == "multiple-choice" else None
        rows, dropped, fixed, answers, speakers = self._convert(loaded, shape, roles, target_format, system_prompt,
                                                                filter_min_chars, choices)
        notes = list(loaded.notes)
        decontamination = None
        if decontaminate and rows:
            rows, decontamination = decontaminate_rows(self.ctx, rows, decontaminate)
            if decontamination["rows_dropped"]:
                dropped["contaminated"] = decontamination["rows_dropped"]
            notes.append(describe_drop(decontamination))
        if not rows:
            raise ToolError(f"No rows left after dropping {dropped}; check column_map and filter_min_chars.")
        splits = split_rows(rows, test_size)
        if held_out:
            notes.append(f"Converted although {held_out} (allow_eval_split=True, recorded in the ledger).")
        notes += _fix_notes(fixed, shape, roles)
        if dropped.get("unknown_speaker"):
            notes.append(f"{dropped['unknown_speaker']} rows had turns from speakers other than "
                         f"{', '.join(SPEAKERS)} and were dropped.")
        if loaded.total and len(loaded.rows) < loaded.total:
            notes.append(f"Read {len(loaded.rows)} of {loaded.total} rows" + (
                "" if limit else f" (the viewer limit here is {MAX_HUB_ROWS}; convert the full set inside a "
                "training job with datasets.load_dataset)") + ".")
        folder = _new_folder(self.ctx.data_area("datasets"), hub_dataset_id, loaded, target_format)
        for name, part in splits.items():
            _write_jsonl(folder / f"{name}.jsonl", part)
        transform = {
            "tool": "reformat_dataset", "source": loaded.describe(), "source_shape": shape, "columns": roles,
            "target_format": target_format, "system_prompt": system_prompt,
            "filter_min_chars": filter_min_chars, "dedupe": "exact, after lowercasing and collapsing whitespace",
            "drop_empty": True, "max_rows": limit, "test_size": test_size, "seed": SEED, "dropped": dropped,
            "rows": {k: len(v) for k, v in splits.items()}, "fixed": fixed,
            **({"speaker_map": speakers} if speakers else {}),
            **({"answer_extracted_from": answers} if answers else {}),
            **({"multiple_choice": {**choices.record(), "seed": SEED}} if choices else {}),
            **({"decontamination": decontamination} if decontamination else {}),
            **({"eval_split_override": {"reason": held_out, "allow_eval_split": True}} if held_out else {}),
        }
        hub_id, push_error = None, None
        if push_to_hub:
            try:
                hub_id = self._push(folder, hub_dataset_id or folder.name, transform, loaded)
            except ToolError as err:
                push_error = str(err)
        dataset_id = self.ctx.ledger.record_dataset(
            source=loaded.dataset, path=str(folder), format=target_format, rows=len(rows), transform=transform,
            experiment_id=self.ctx.current_experiment(), hub_id=hub_id, user=self.ctx.user)
        if push_error:
            raise ToolError(f"Saved {len(rows)} rows to {folder} (ledger dataset {dataset_id}), but the push "
                            f"failed: {push_error}")
        return {"dataset_id": dataset_id, "path": str(folder), "rows": len(rows), "format": target_format,
                "splits": {k: len(v) for k, v in splits.items()}, "hub_id": hub_id, "source_shape": shape,
                "columns": roles, "dropped": dropped, "fixed": fixed, "notes": notes,
                **({"multiple_choice": choices.record()} if choices else {}),
                "sample": fence(json.dumps(rows[:2], ensure_ascii=False), f"dataset:{loaded.dataset} converted rows",
                                2000)}

    def _convert(self, loaded: LoadedRows, shape: str, roles: dict, target: str, system_prompt: str | None,
                 min_chars: int | None, choices: ChoiceBuilder | None):
        out, seen = [], set()
        dropped = dict.fromkeys(("empty", "too_short", "duplicates", "unknown_speaker", "identical_pair",
                                 "bad_turn_order", "no_answer"), 0)
        fixed = dict.fromkeys(("leading_assistant_dropped", "cut_at_repeated_role", "cut_at_empty_turn",
                               "annotations_stripped", "implicit_prompt_kept"), 0)
        answers, speakers = {}, {}
        for row in loaded.rows:
            example, reason = conversation_turns(row, shape, roles, loaded.label_names, system_prompt, speakers,
                                                 choices)
            if example is not None:
                stripped = sum(strip_annotations(example.get(k) or []) for k in ("prompt", "completion", "rejected"))
                converted, reason, how = render_row(example, target, min_chars)
            if reason is not None:
                dropped[reason] += 1
                continue
            for fix in example.get("fixes", ()):
                fixed[fix] += 1
            fixed["implicit_prompt_kept"] += bool(example.get("implicit"))
            fixed["annotations_stripped"] += bool(stripped)
            key = " ".join(json.dumps(converted, sort_keys=True, ensure_ascii=False).lower().split())
            if key in seen:
                dropped["duplicates"] += 1
                continue
            seen.add(key)
            out.append(converted)
            if how:
                answers[how] = answers.get(how, 0) + 1
        return out, {k: v for k, v in dropped.items() if v}, {k: v for k, v in fixed.items() if v}, answers, speakers

    def _push(self, folder: Path, repo_id: str, transform: dict, loaded: LoadedRows) -> str:
        settings = self.ctx.settings
        api = hf_api(settings)
        files = [folder / f"{name}.jsonl" for name in transform["rows"]]
        with hub_errors("reformat_dataset push", settings.hf_endpoint):
            repo_id = new_private_dataset_repo(api, settings, repo_id)
            card = dataset_card(repo_id, transform, loaded, [f.stem for f in files], settings.hf_endpoint)
            operations = [CommitOperationAdd("README.md", card.encode())] + [
                CommitOperationAdd(f"data/{f.name}", str(f)) for f in files]
            api.create_commit(repo_id, operations, repo_type="dataset",
                              commit_message=f"Add {transform['target_format']} data converted from "
                                             f"{_public_name(loaded)}")
        return repo_id


def _fix_notes(fixed: dict, shape: str, roles: dict) -> list[str]:
    """What the cleaning changed, in words (the counts are in "fixed")."""
    said = {
        "leading_assistant_dropped": "conversations opened with the assistant: those opening turns were dropped",
        "cut_at_repeated_role": "conversations held two turns of the same role in a row: each was cut before the "
                                "repeat, keeping its valid start",
        "cut_at_empty_turn": "conversations held an empty turn: each was cut before it, keeping its valid start",
        "annotations_stripped": "rows had calculator annotations such as <<48/2=24>> in replies: removed (a final "
                                "'#### N' answer line is kept)",
        "implicit_prompt_kept": "preference rows already hold the user turn in chosen/rejected (TRL's implicit "
                                "prompt): kept as they are" + (f", the {roles['prompt']!r} column not added"
                                                               if "prompt" in roles else ""),
    }
    return [f"{count} {said[fix]}." for fix, count in fixed.items()]


def dataset_card(repo_id: str, transform: dict, loaded: LoadedRows, splits: list[str], endpoint: str) -> str:
    """README.md for the pushed dataset: YAML front matter (configs, tags) and where the data came from."""
    meta = {"pretty_name": repo_id.split("/")[-1], "tags": ["ml-intern", "trl", transform["target_format"]],
            "configs": [{"config_name": "default",
                         "data_files": [{"split": s, "path": f"data/{s}.jsonl"} for s in splits]}]}
    if loaded.source == "hub":
        origin = (f"[{loaded.dataset}]({endpoint}/datasets/{loaded.dataset}) (config `{loaded.config}`, "
                  f"split `{loaded.split}`)")
        meta["source_datasets"] = [loaded.dataset]
    else:
        origin = f"the local file `{_public_name(loaded)}`"
    source = {k: v for k, v in transform["source"].items() if k != "path"}
    public = {**transform, "source": {**source, "dataset": _public_name(loaded)}}
    return (f"---\n{yaml.safe_dump(meta, sort_keys=False)}---\n\n# {repo_id.split('/')[-1]}\n\n"
            f"Converted by ml-intern into the TRL `{transform['target_format']}` format.\n\n"
            f"## Source\n\nConverted from {origin}: {len(loaded.rows)} rows read"
            f"{f' of {loaded.total}' if loaded.total else ''}. This derived dataset inherits the source "
            "dataset's license and terms.\n\n## Transformation\n\n"
            f"Source shape `{transform['source_shape']}`, columns {json.dumps(transform['columns'])}, "
            f"rows kept per split {json.dumps(transform['rows'])}, rows dropped {json.dumps(transform['dropped'])}. "
            f"The full specification:\n\n```json\n{json.dumps(public, indent=2, ensure_ascii=False)}\n```\n")


def _public_name(loaded: LoadedRows) -> str:
    """The source as named on the Hub: its id, or a local file's name without the machine's path."""
    return loaded.dataset if loaded.source == "hub" else Path(loaded.path or loaded.dataset).name


def split_rows(rows: list[dict], test_size: float | None) -> dict[str, list[dict]]:
    """{"train": rows} or a seeded random {"train", "test"} split; test_size is a fraction or a count."""
    if not test_size:
        return {"train": rows}
    count = round(len(rows) * test_size) if 0 < test_size < 1 else int(test_size)
    if count < 1 or count >= len(rows):
        raise ToolError(f"test_size={test_size} leaves no train or no test rows out of {len(rows)}; use a "
                        "fraction between 0 and 1 or a count smaller than the row count.")
    order = list(range(len(rows)))
    random.Random(SEED).shuffle(order)
    test = set(order[:count])
    return {"train": [r for i, r in enumerate(rows) if i not in test],
            "test": [r for i, r in enumerate(rows) if i in test]}


def _new_folder(root: Path, hub_dataset_id: str | None, loaded: LoadedRows, target: str) -> Path:
    """A fresh folder under `root`, named after the Hub repo to push to, else after the source and format."""
    if hub_dataset_id:
        base = hub_dataset_id.split("/")[-1]
    elif loaded.source == "hub":
        base = f"{loaded.dataset.split('/')[-1]}-{target}"
    else:
        path = Path(loaded.path or loaded.dataset)
        base = f"{path.parent.name if path.stem == loaded.split else path.stem}-{target}"
    base = re.sub(r"[^\w.-]+", "-", base).strip("-.").lower() or "dataset"
    folder, n = root / base, 1
    while folder.exists():
        n += 1
        folder = root / f"{base}-{n}"
    folder.mkdir(parents=True)
    return folder


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
