"""check_dataset_quality: numbers and a verdict on a sample of a Hub or local dataset before training.

Checks: each column's role (prompt, answer, label...) and type (text, number, letter...), empty
fields judged by them (a short numeric or letter answer is not "near-empty"), exact and near
duplicates, lengths and length outliers, the languages of the rows (tools.data.language), label
balance, copies of eval items (evals.contamination, with the benchmark's own train split as a
negative control), and the viewer's full-split statistics. Every problem carries its evidence
(counts, threshold, example rows). Row text is third-party data: examples come back fenced.
"""

from __future__ import annotations

import math
import statistics
import time

from smolagents import Tool

from evals.contamination import find_contamination, words
from tools.backends.hub import DatasetViewer, ViewerError, cap_text
from tools.context import ToolContext
from tools.data.columns import (
    OPTIONAL_COLUMNS,
    OUTLIER_FACTOR,
    OUTLIER_MIN_CHARS,
    column_profiles,
    length_outliers,
)
from tools.data.language import language_profile
from tools.data.rows import LoadedRows, load_eval_items, load_rows, row_text
from tools.errors import ToolError
from tools.paths import looks_local, resolve_inside
from tools.untrusted import fence

MAX_SAMPLE = 1000  # near-duplicate search compares all pairs of the sample
MAX_EVAL_ROWS = 5000
CONTROL_ROWS = 300  # rows of the benchmark's own train split read for the negative control
NEAR_DUP_JACCARD = 0.8  # word 3-gram shingles
MAX_CLASSES = 20
LABEL_NAMES = {"label", "labels", "answer", "answerkey", "answer_idx", "answer_index", "target", "class",
               "category", "gold", "correct", "cop"}
# (check, warn above, block above) as shares of the sample
EMPTY_WARN, EMPTY_BLOCK = 0.01, 0.30
DUP_WARN, NEAR_DUP_WARN = 0.01, 0.02
SKEW_WARN = 0.80
CONTAMINATION_BLOCK = 0.01
LONG_TOKENS = 4096
LANGUAGE_MIX_WARN = 0.02  # rows in other languages than the main one


class CheckDatasetQualityTool(Tool):
    name = "check_dataset_quality"
    description = """Check a dataset sample before training: empty fields, duplicates, lengths, languages, labels, \
eval-item copies (exact/normalised/fuzzy; the benchmark's train split as control).
Returns {"verdict": "good"|"usable with caveats"|"not usable", "problems": [{"severity": "blocker"|"caveat", "check", \
"detail", "fix", "evidence"}], "summary", each check's result ("duplicates", "eval_overlap"...)}.
Example: check_dataset_quality(dataset="my-org/math-sft", eval_dataset="gsm8k")"""
    inputs = {
        "dataset": {"type": "string", "description": "Hub dataset id or local path."},
        "split": {"type": "string", "description": "Split to sample; default train.", "nullable": True},
        "sample_size": {"type": "integer", "description": "Rows read across the split (10-1000, "
                        "default 500).", "nullable": True},
        "tokenizer": {"type": "string", "description": "Model whose tokenizer counts lengths; default words.",
                      "nullable": True},
        "eval_dataset": {"type": "string", "description": "Eval set to find copies of: a benchmark "
                         "(gsm8k), Hub id or local path.", "nullable": True},
        "config": {"type": "string", "description": "Config (subset) name; default the first.", "nullable": True},
    }
    output_type = "object"

    def __init__(self, ctx: ToolContext):
        super().__init__()
        self.ctx = ctx

    def forward(self, dataset: str, split: str | None = "train", sample_size: int | None = 500,
                tokenizer: str | None = None, eval_dataset: str | None = None,
                config: str | None = None) -> dict:
        started = time.monotonic()
        size = max(10, min(int(sample_size or 500), MAX_SAMPLE))
        loaded = load_rows(self.ctx, dataset, config=config, split=split, limit=size, spread=True)
        rows, source = loaded.rows, f"dataset:{loaded.dataset}"
        labels = label_columns(rows, loaded.label_names)
        columns, bad_rows = column_profiles(rows, labels)
        texts = [row_text(r, labels) for r in rows]
        report = {
            "dataset": loaded.dataset, "config": loaded.config, "split": loaded.split,
            "sample": {"rows": len(rows), "of": loaded.total, "how": _how(loaded)},
            "trl_format": loaded.trl_format, "columns": columns,
            "rows_with_empty_fields": len(bad_rows),
            "empty_field_rows": [loaded.row_ids[i] for i in sorted(bad_rows)][:20],
            "duplicates": duplicates([r for i, r in enumerate(rows) if i not in bad_rows], source),
            "lengths": self._lengths(rows, labels, tokenizer),
            "length_outliers": length_outliers(rows, loaded.row_ids, source),
            "language": language_profile(texts, loaded.row_ids),
            "labels": label_balance(rows, labels, loaded.label_names),
            "eval_overlap": self._overlap(loaded, eval_dataset) if eval_dataset else None,
            "statistics": self._statistics(loaded),
            "notes": loaded.notes,
        }
        for column, info in (report["statistics"] or {}).get("columns", {}).items():
            if column in report["labels"] and "frequencies" in info:
                report["labels"][column] = _balance(info["frequencies"], "statistics (full split)")
        position = {row_id: k for k, row_id in enumerate(loaded.row_ids)}
        report["language"]["examples"] = {
            language: fence(texts[position[ids[0]]], f"{source} row {ids[0]} ({language})", 200)
            for language, ids in list(report["language"]["other_rows"].items())[:3]}
        report["problems"] = problems(report, labels)
        report["verdict"], report["summary"] = verdict(report["problems"])
        report["seconds"] = round(time.monotonic() - started, 2)
        return report

    def _lengths(self, rows: list[dict], labels: set[str], tokenizer: str | None) -> dict:
        count, unit, note = _word_counts, "whitespace words", None
        if tokenizer:
            try:
                local = looks_local(self.ctx, tokenizer)
                source = str(resolve_inside(self.ctx, tokenizer, "the tokenizer folder")) if local else tokenizer
                count = _token_counter(source, self.ctx.settings.hf_token)
                unit = f"tokens ({cap_text(tokenizer, 100)})"
            except ToolError as err:  # a local folder outside the allowed places, or none: words, and why
                note = f"Could not load tokenizer: {err} Counted whitespace words."
            except Exception as err:  # any tokenizer that will not load: fall back to words, say so
                note = f"Could not load tokenizer {tokenizer!r} ({type(err).__name__}); counted whitespace words."
        else:
            note = "No tokenizer given: lengths are whitespace words (tokens are usually 1.3-2x more)."
        text_columns = sorted({k for r in rows for k in r} - labels)
        out = {"unit": unit, "per_example": quantiles(count([row_text(r) for r in rows])),
               "columns": {c: quantiles(count([row_text({c: r.get(c)}) for r in rows])) for c in text_columns}}
        return {**out, "note": note} if note else out

    def _overlap(self, loaded: LoadedRows, eval_dataset: str) -> dict:
        evals, column, eval_texts = load_eval_items(self.ctx, eval_dataset, MAX_EVAL_ROWS)
        report = find_contamination([row_text(r) for r in loaded.rows], eval_texts)
        if loaded.total and len(loaded.rows) < loaded.total:
            loaded.notes.append(f"Eval copies were looked for in the {len(loaded.rows)} sampled rows only, not all "
                                f"{loaded.total}: reformat_dataset(decontaminate=...) checks every row it converts.")
        summary = report.summary()
        matches = [{"level": m.level, "score": m.score, "eval_item": m.eval_index,
                    "train_row": loaded.row_ids[m.train_index],
                    "text": fence(m.eval_text, f"{evals.dataset} eval item {m.eval_index}", 200)}
                   for m in report.matches[:20]]
        return {"eval_dataset": evals.dataset, "eval_split": evals.split, "eval_column": column,
                "train_rows_checked": len(loaded.rows), **{k: v for k, v in summary.items() if k != "matches"},
                "matches": matches, "train_rows": [loaded.row_ids[t] for t in report.train_matches][:50],
                "control": self._control(eval_dataset, evals, column, eval_texts)}

    def _control(self, eval_dataset: str, evals: LoadedRows, column: str | None, eval_texts: list[str]) -> dict:
        """The negative control: the benchmark's own train split, which should hold none of its eval items."""
        if evals.split == "train":
            return {"checked": False, "reason": "the eval split is the train split"}
        try:
            train = load_rows(self.ctx, evals.dataset if evals.source == "hub" else eval_dataset, config=evals.config,
                              split="train", limit=CONTROL_ROWS, spread=True)
        except ToolError:
            return {"checked": False, "reason": "the eval dataset has no train split to compare"}
        report = find_contamination([row_text(r) for r in train.rows], eval_texts)
        return {"checked": True, "split": "train", "rows": len(train.rows), "contaminated": report.contaminated,
                "fraction": report.fraction, "levels": report.levels, "closest_miss": report.closest_miss}

    def _statistics(self, loaded: LoadedRows) -> dict | None:
        if loaded.source != "hub":
            return None
        try:
            reply = DatasetViewer(self.ctx.settings).get("/statistics", dataset=loaded.dataset,
                                                         config=loaded.config, split=loaded.split)
        except (ViewerError, ToolError):
            loaded.notes.append("The dataset viewer has no full-split statistics for this split.")
            return None
        columns = {}
        for item in reply.get("statistics", []):
            stats, info = item.get("column_statistics") or {}, {"type": item.get("column_type")}
            info["null_share"] = stats.get("nan_proportion")
            if "frequencies" in stats:
                info["frequencies"] = {cap_text(k, 60): v for k, v in list(stats["frequencies"].items())[:MAX_CLASSES]}
            elif "median" in stats:
                info["length"] = {k: stats.get(k) for k in ("min", "median", "max")}
            columns[item.get("column_name")] = info
        return {"num_examples": reply.get("num_examples"), "partial": reply.get("partial", False), "columns": columns}


def _word_counts(texts: list[str]) -> list[int]:
    return [len(t.split()) for t in texts]


def _token_counter(name: str, token: str | None):
    """A function counting tokens with the tokenizer of a model id or local folder (transformers, lazily)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(name, token=token or None)

    def count(texts: list[str]) -> list[int]:
        return [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]] if texts else []
    return count


def _how(loaded: LoadedRows) -> str:
    if loaded.source == "local":
        return "all rows" if len(loaded.rows) == loaded.total else f"first {len(loaded.rows)} rows of {loaded.path}"
    if len(loaded.rows) == loaded.total:
        return "all rows"
    if loaded.row_ids == list(range(len(loaded.rows))):
        return f"first {len(loaded.rows)} rows"
    return f"{len(loaded.pages)} viewer pages starting at rows {', '.join(str(p[0]) for p in loaded.pages)}"


def label_columns(rows: list[dict], class_labels: dict[str, list[str]] | None = None) -> set[str]:
    """Columns that hold a class label: ClassLabel features, or short scalar values with few classes."""
    found = set(class_labels or {})
    for column in {k for r in rows for k in r} - found:
        values = [r.get(column) for r in rows if r.get(column) not in (None, "")]
        if not values or not all(isinstance(v, str | int | bool) and len(str(v)) <= 40 for v in values):
            continue
        distinct = len(set(values))
        if distinct <= MAX_CLASSES and (column.lower() in LABEL_NAMES or 1 < distinct <= len(values) / 2):
            found.add(column)
    return found


def _shingles(tokens: list[str]) -> frozenset[str]:
    if len(tokens) < 3:
        return frozenset([" ".join(tokens)])
    return frozenset(" ".join(tokens[i:i + 3]) for i in range(len(tokens) - 2))


def duplicates(rows: list[dict], source: str) -> dict:
    """Exact duplicates (after lowercasing and collapsing whitespace, as reformat_dataset de-duplicates)
    and near-duplicate pairs among the rest (Jaccard >= 0.8 on word 3-grams, punctuation ignored)."""
    seen, exact, example = {}, 0, None
    for index, row in enumerate(rows):
        key = " ".join(row_text(row).lower().split())
        if key in seen:
            exact += 1
            example = example or (seen[key], index)
        else:
            seen[key] = index
    pairs = near_duplicate_pairs([_shingles(words(key)) for key in seen])
    later = {max(i, j) for i, j in pairs}
    n = len(rows)
    out = {"rows_compared": n, "exact": exact, "exact_share": round(exact / n, 4) if n else 0.0,
           "near_pairs": len(pairs), "near_rows": len(later),
           "near_share": round(len(later) / n, 4) if n else 0.0}
    if example:
        out["example"] = fence(row_text(rows[example[1]]), f"{source} duplicate row", 300)
    return out


def near_duplicate_pairs(sets: list[frozenset], threshold: float = NEAR_DUP_JACCARD) -> list[tuple[int, int]]:
    """All pairs (i, j) with Jaccard >= threshold, exactly, by prefix filtering: with shingles in a
    global order (rarest first), two sets that similar share one of the first |s| - ceil(t*|s|) + 1
    shingles of the larger, so only pairs meeting in an index of those prefixes are compared."""
    frequency: dict[str, int] = {}
    for shingles in sets:
        for g in shingles:
            frequency[g] = frequency.get(g, 0) + 1
    index: dict[str, list[int]] = {}
    pairs = []
    for i in sorted(range(len(sets)), key=lambda k: len(sets[k])):
        size = len(sets[i])
        prefix = sorted(sets[i], key=lambda g: (frequency[g], g))[:size - math.ceil(threshold * size) + 1]
        candidates = {j for g in prefix for j in index.get(g, ())}
        for g in prefix:
            index.setdefault(g, []).append(i)
        for j in candidates:
            if len(sets[j]) >= threshold * size:
                shared = len(sets[i] & sets[j])
                if shared / (size + len(sets[j]) - shared) >= threshold:
                    pairs.append((min(i, j), max(i, j)))
    return sorted(pairs)


def quantiles(values: list[int]) -> dict:
    if not values:
        return {"min": None, "median": None, "p95": None, "max": None}
    ordered = sorted(values)
    return {"min": ordered[0], "median": statistics.median(ordered),
            "p95": ordered[math.ceil(0.95 * len(ordered)) - 1], "max": ordered[-1]}


def _balance(counts: dict, source: str) -> dict:
    total = sum(counts.values())
    majority = max(counts, key=counts.get) if counts else None
    return {"counts": counts, "classes": len(counts), "majority": majority,
            "majority_share": round(counts[majority] / total, 4) if total else 0.0, "source": source}


def label_balance(rows: list[dict], labels: set[str], class_labels: dict[str, list[str]]) -> dict:
    out = {}
    for column in sorted(labels):
        names, counts = class_labels.get(column), {}
        for row in rows:
            value = row.get(column)
            if value is None or value == "":
                continue
            if names and isinstance(value, int) and 0 <= value < len(names):
                value = names[value]
            key = cap_text(str(value), 60)
            counts[key] = counts.get(key, 0) + 1
        out[column] = _balance(dict(sorted(counts.items(), key=lambda kv: -kv[1])), "sample")
    return out


def problems(report: dict, labels: set[str]) -> list[dict]:
    """What is wrong, each with its evidence: the numbers, the threshold crossed and example rows."""
    found, n = [], report["sample"]["rows"]

    def add(severity: str, check: str, detail: str, fix: str, **evidence):
        found.append({"severity": severity, "check": check, "detail": detail, "fix": fix, "evidence": evidence})

    if n == 0:
        add("blocker", "rows", "The split has no rows.", "Pick another split or dataset.")
        return found
    empty_share = report["rows_with_empty_fields"] / n
    if empty_share > EMPTY_WARN:
        per_column = {c: i["empty"] + i["near_empty"] for c, i in report["columns"].items()
                      if i["role"] != "optional" and i["empty"] + i["near_empty"]}
        worst = max(per_column, key=per_column.get)
        add("blocker" if empty_share > EMPTY_BLOCK else "caveat", "empty fields",
            f"{report['rows_with_empty_fields']} of {n} sampled rows ({empty_share:.1%}) have an empty or near-empty "
            f"required field (most in {worst!r}, a {report['columns'][worst]['type']} column); over "
            f"{EMPTY_WARN:.0%} is a caveat, over {EMPTY_BLOCK:.0%} a blocker.",
            "Drop them: reformat_dataset drops empty rows, and filter_min_chars drops short ones.",
            per_column=per_column, rows=report["empty_field_rows"])
    dups = report["duplicates"]
    if dups["exact_share"] > DUP_WARN:
        add("caveat", "exact duplicates", f"{dups['exact']} of {dups['rows_compared']} rows "
            f"({dups['exact_share']:.1%}) repeat an earlier row (over {DUP_WARN:.0%}).",
            "reformat_dataset de-duplicates exact copies.")
    if dups["near_share"] > NEAR_DUP_WARN:
        add("caveat", "near duplicates", f"{dups['near_rows']} rows ({dups['near_share']:.1%}) are near copies "
            f"(word 3-gram Jaccard >= {NEAR_DUP_JACCARD}, punctuation and case ignored) of another row.",
            "Expect some memorisation; keep them only if the variation is intended.")
    for column, info in report["labels"].items():
        if info["classes"] == 1 or info["majority_share"] >= SKEW_WARN:
            add("caveat", "label balance", f"Column {column!r}: {info['majority_share']:.1%} of rows are "
                f"{info['majority']!r} ({info['classes']} classes, {info['source']}).",
                "Rebalance (downsample the majority) or report per-class/balanced accuracy; a model can "
                "score high by always answering the majority label.", counts=info["counts"])
    per_example = report["lengths"]["per_example"]
    if (per_example["p95"] or 0) > LONG_TOKENS:
        add("caveat", "length", f"95% of examples are up to {per_example['p95']} {report['lengths']['unit']}.",
            "Set max_length to cover them (memory grows with it) or filter the longest.")
    _length_outliers(report, n, add)
    _languages(report["language"], add)
    _eval_overlap(report["eval_overlap"], add)
    if report["trl_format"] in ("unknown", "needs-conversion"):
        add("caveat", "format", f"TRL format: {report['trl_format']}.",
            "Convert it with reformat_dataset(target_format=...) before training.")
    null_cols = {c: i["null_share"] for c, i in ((report["statistics"] or {}).get("columns") or {}).items()
                 if (i.get("null_share") or 0) > EMPTY_WARN and c.lower() not in OPTIONAL_COLUMNS}
    if null_cols:
        add("blocker" if max(null_cols.values()) > EMPTY_BLOCK else "caveat", "nulls in the full split",
            f"Null share per column (viewer statistics): {null_cols}.",
            "reformat_dataset drops rows with empty fields.")
    return found


def _length_outliers(report: dict, n: int, add) -> None:
    outliers = report["length_outliers"]
    full = {c: i["length"] for c, i in ((report["statistics"] or {}).get("columns") or {}).items()
            if (i.get("length") or {}).get("max") and (i["length"].get("median") or 0) > 0
            and i["length"]["max"] > max(OUTLIER_FACTOR * i["length"]["median"], OUTLIER_MIN_CHARS)}
    if not outliers["rows"] and not full:
        return
    parts = []
    if outliers["rows"]:
        top = outliers["examples"][0]
        median = outliers["columns"][top["column"]]["median_chars"]
        parts.append(f"{outliers['rows']} of {n} sampled rows ({outliers['share']:.1%}) hold {outliers['rule']} "
                     f"(rows {outliers['row_ids'][:10]}); the longest: row {top['row']}, {top['column']!r}, "
                     f"{top['chars']:,} characters against a median of {median:g}.")
    for column, length in full.items():
        parts.append(f"Full split (viewer statistics): the longest {column!r} value has {length['max']:,} characters "
                     f"against a median of {length['median']:g}.")
    add("caveat", "length outliers", " ".join(parts),
        "Drop or cut these rows before training (a field that long is usually scraped boilerplate or a whole "
        "page); truncation by max_length keeps the junk start and loses the end.",
        rows=outliers["row_ids"], columns=outliers["columns"], full_split=full)


def _languages(language: dict, add) -> None:
    if not language["rows_checked"]:
        return
    others, main = language["other_languages"], language["main"]
    if others and language["other_share"] >= LANGUAGE_MIX_WARN:
        listed = ", ".join(f"{code} {count} (rows {language['other_rows'][code][:5]})"
                           for code, count in others.items())
        add("caveat", "language mix", f"{sum(others.values())} of {language['rows_checked']} rows judged "
            f"({language['other_share']:.1%}) are not in the main language {main!r}: {listed}; over "
            f"{LANGUAGE_MIX_WARN:.0%} is flagged (script and function-word heuristic).",
            f"Filter them out unless the model should also answer in those languages: a minority language "
            f"teaches code-switching and dilutes the {main!r} signal.", languages=others,
            rows=language["other_rows"])
    if main not in (None, "en"):
        add("caveat", "main language", f"The main language is {main!r} ({language['main_share']:.0%} of rows judged).",
            f"Fine if the target language is {main!r}; otherwise pick another dataset.")


def _eval_overlap(overlap: dict | None, add) -> None:
    if not overlap or not overlap["contaminated"]:
        return
    levels = ", ".join(f"{k} {level}" for level, k in overlap["levels"].items() if k)
    first = overlap["matches"][0]
    detail = (f"{overlap['contaminated']} of {overlap['checked']} eval items ({overlap['fraction']:.1%}) occur in "
              f"sampled training rows ({levels}): training rows {overlap['train_rows'][:10]}; e.g. eval item "
              f"{first['eval_item']} in row {first['train_row']} ({first['level']}, {first['score']:.0%} of its "
              "distinctive 3-grams). Shared template wording is not counted.")
    control = overlap.get("control") or {}
    if control.get("checked"):
        detail += (f" Negative control: the benchmark's own {control['split']} split ({control['rows']} rows) "
                   f"matched {control['contaminated']} items.")
    add("blocker" if overlap["fraction"] > CONTAMINATION_BLOCK else "caveat", "eval overlap", detail,
        "Drop exactly these rows: reformat_dataset(..., decontaminate=<eval set>) removes copies of eval items "
        "and reports how many; then trust eval scores again.", levels=overlap["levels"],
        rows=overlap["train_rows"], control=control or None)


def verdict(found: list[dict]) -> tuple[str, str]:
    """The verdict and a summary that names each reason with its numbers."""
    blockers = [p for p in found if p["severity"] == "blocker"]
    caveats = [p for p in found if p["severity"] == "caveat"]
    names = ", ".join(p["check"] for p in caveats)
    reasons = " ".join(f"[{p['check']}] {p['detail']}" for p in blockers + caveats)
    if blockers:
        return "not usable", (f"Not usable as is: {', '.join(p['check'] for p in blockers)}"
                              + (f"; also {names}." if caveats else ".") + f" {reasons}")
    if caveats:
        return "usable with caveats", f"Usable with caveats: {names}. {reasons}"
    return "good", "No problems found in the sample."
