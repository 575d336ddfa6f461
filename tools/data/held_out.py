"""Keeping evaluation data out of training data, for reformat_dataset.

- `evaluation_split`: why a split must not become training data: the split a benchmark in
  evals.catalogue evaluates on (or its test/validation split), or any split named "test".
- `decontaminate_rows`: the converted rows without those that hold an item of an eval set
  (evals.contamination: exact, normalised or fuzzy copies; shared template wording does not count).
"""

from __future__ import annotations

import json
from pathlib import Path

from evals.catalogue import CATALOGUE
from evals.contamination import decontaminate
from tools.context import ToolContext
from tools.data.rows import LoadedRows, load_eval_items, row_text

EVAL_ROWS = 20_000
HELD_OUT_NAMES = ("test",)
BENCHMARK_HELD_OUT = ("test", "validation")


def evaluation_split(loaded: LoadedRows) -> str | None:
    """Why `loaded` is evaluation data (None when it is not): no rule names a dataset, the catalogue does."""
    split = loaded.split.lower()
    for name, entry in CATALOGUE.items():
        repos = {entry["hf_repo"], (entry.get("texts_repo") or ("",))[0]}
        if loaded.source == "hub" and loaded.dataset in repos and (
                split == entry["split"].lower() or split in BENCHMARK_HELD_OUT):
            return (f"{loaded.dataset} split {loaded.split!r} is evaluation data of the benchmark {name!r} "
                    f"(evals/catalogue.py: it evaluates on split {entry['split']!r})")
    if split in HELD_OUT_NAMES:
        return f"split {loaded.split!r} of {loaded.dataset} is named as held-out test data"
    return None


def decontaminate_rows(ctx: ToolContext, rows: list[dict], eval_set: str) -> tuple[list[dict], dict]:
    """(rows kept, the record for the ledger: the eval set read, counts per level, rows dropped, examples)."""
    evals, column, texts = load_eval_items(ctx, eval_set, EVAL_ROWS)
    kept, report = decontaminate(rows, [row_text(r) for r in rows], texts)
    where = {k: v for k, v in evals.describe().items() if k != "path"}
    if evals.source == "local":  # the ledger record may reach a dataset card: no local paths
        where["dataset"] = Path(evals.dataset).name
    examples = [{"row": m.train_index, "eval_item": m.eval_index, "level": m.level, "score": m.score}
                for m in list(report.train_matches.values())[:10]]
    return kept, {"eval_set": eval_set, **where, "eval_column": column, "eval_items": report.eval_items,
                  "levels": report.levels, "rows_dropped": len(rows) - len(kept), "examples": examples,
                  "method": report.summary()["method"]}


def describe_drop(record: dict) -> str:
    """One sentence on what decontamination dropped."""
    levels = json.dumps(record["levels"])
    return (f"Decontamination against {record['eval_set']} ({record['split']} split, {record['eval_items']} items): "
            f"dropped {record['rows_dropped']} rows holding an eval item (eval items matched per level: {levels}).")
