"""check_dataset_quality: numbers and a verdict on a sample of a Hub or local dataset before training.

Checks: empty fields, exact and near duplicates, lengths (tokens or words), a language heuristic,
label balance, n-gram overlap with an eval set (evals.contamination), and the viewer's
full-split statistics when it has them. Row text is third-party data: examples come back fenced.
"""

from __future__ import annotations

import math
import statistics
import time

from smolagents import Tool

from evals.contamination import ngram_overlap, words
from tools.backends.hub import DatasetViewer, ViewerError, cap_text
from tools.context import ToolContext
from tools.data.rows import LoadedRows, load_rows, row_text
from tools.errors import ToolError
from tools.paths import looks_local, resolve_inside
from tools.untrusted import fence

MAX_SAMPLE = 1000  # near-duplicate search compares all pairs of the sample
MAX_EVAL_ROWS = 5000
NEAR_EMPTY_CHARS = 3  # a text field with fewer non-space characters is near-empty
NEAR_DUP_JACCARD = 0.8  # word 3-gram shingles
MAX_CLASSES = 20
OPTIONAL_COLUMNS = {"input", "context", "system", "system_prompt", "id", "idx", "source", "metadata",
                    "history", "tools", "explanation", "rationale"}
LABEL_NAMES = {"label", "labels", "answer", "answerkey", "answer_idx", "answer_index", "target", "class",
               "category", "gold", "correct", "cop"}
EN_STOPWORDS = frozenset(
    "the a an and or of to in is it that this was for on with as are be at by not but have has had i you he "
    "she we they his her their our my your from so if what which who will would can there been were do does "
    "did no me them its than then how all".split())
# (check, warn above, block above) as shares of the sample
EMPTY_WARN, EMPTY_BLOCK = 0.01, 0.30
DUP_WARN, NEAR_DUP_WARN = 0.01, 0.02
SKEW_WARN = 0.80
CONTAMINATION_BLOCK = 0.01
LONG_TOKENS = 4096
ENGLISH_WARN = 0.80


class CheckDatasetQualityTool(Tool):
    name = "check_dataset_quality"
    description = """Check a sample of a dataset before training: empty fields, duplicates, lengths, language,
label balance, 8-gram overlap with the eval set.
Returns {"duplicates", "lengths", "labels", "eval_overlap"..., "problems": [{"severity": "blocker"|"caveat",
"detail", "fix"}], "verdict": "good"|"usable with caveats"|"not usable", "summary"}.
Example: check_dataset_quality(dataset="openai/gsm8k", config="main", eval_dataset="openai/gsm8k")"""
    inputs = {
        "dataset": {"type": "string", "description": "Hub dataset id (owner/name) or a local path."},
        "split": {"type": "string", "description": "Split to sample; default train.", "nullable": True},
        "sample_size": {"type": "integer", "description": "Rows to read, spread over the split (10-1000, "
                        "default 500).", "nullable": True},
        "tokenizer": {"type": "string", "description": "Model whose tokenizer counts lengths; default words.",
                      "nullable": True},
        "eval_dataset": {"type": "string", "description": "Benchmark to check for overlap (Hub id or local path).",
                         "nullable": True},
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
        columns, bad_rows = empty_fields(rows, labels)
        report = {
            "dataset": loaded.dataset, "config": loaded.config, "split": loaded.split,
            "sample": {"rows": len(rows), "of": loaded.total, "how": _how(loaded)},
            "trl_format": loaded.trl_format, "columns": columns,
            "rows_with_empty_fields": len(bad_rows),
            "duplicates": duplicates([r for i, r in enumerate(rows) if i not in bad_rows], source),
            "lengths": self._lengths(rows, labels, tokenizer),
            "language": language_profile([row_text(r, labels) for r in rows]),
            "labels": label_balance(rows, labels, loaded.label_names),
            "eval_overlap": self._overlap(loaded, eval_dataset) if eval_dataset else None,
            "statistics": self._statistics(loaded),
            "notes": loaded.notes,
        }
        for column, info in (report["statistics"] or {}).get("columns", {}).items():
            if column in report["labels"] and "frequencies" in info:
                report["labels"][column] = _balance(info["frequencies"], "statistics (full split)")
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
        evals = load_rows(self.ctx, eval_dataset, limit=MAX_EVAL_ROWS, prefer_split="test")
        skip = label_columns(evals.rows, evals.label_names)
        report = ngram_overlap([row_text(r) for r in loaded.rows], [row_text(r, skip) for r in evals.rows], n=8)
        example = next(iter(report.examples.values()), None)
        if loaded.total and len(loaded.rows) < loaded.total:
            loaded.notes.append(f"Eval overlap was checked against the {len(loaded.rows)} sampled rows only, not "
                                f"all {loaded.total}: check the full training set (evals.contamination) in the job.")
        return {"eval_dataset": evals.dataset, "eval_split": evals.split, "n": report.n,
                "train_rows_checked": len(loaded.rows),
                "eval_items": report.eval_items, "contaminated": report.contaminated,
                "fraction": report.fraction, "eval_indices": report.eval_indices[:50],
                "train_rows": [loaded.row_ids[i] for i in report.train_indices[:50]],
                "skipped_short": len(report.skipped),
                "example": fence(example, f"shared n-gram, {evals.dataset}", 300) if example else None}

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


def empty_fields(rows: list[dict], labels: set[str]) -> tuple[dict, set[int]]:
    """Per column: empty and near-empty counts; and the rows with an empty required field."""
    columns = {c: {"empty": 0, "near_empty": 0} for r in rows for c in r}
    bad = set()
    for index, row in enumerate(rows):
        for column, counts in columns.items():
            value = row.get(column)
            text = str(value).strip() if column in labels else row_text({column: value}).strip()
            empty = value is None or not text
            near = not empty and column not in labels and len("".join(text.split())) < NEAR_EMPTY_CHARS
            counts["empty"] += empty
            counts["near_empty"] += near
            if (empty or near) and column.lower() not in OPTIONAL_COLUMNS:
                bad.add(index)
    return columns, bad


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


def language_profile(texts: list[str]) -> dict:
    """Heuristic: share of rows in Latin script with English stopwords, other Latin, non-Latin."""
    english = other_latin = non_latin = checked = 0
    for text in texts:
        letters = [c for c in text if c.isalpha()]
        if not letters:
            continue
        checked += 1
        latin = sum(c.isascii() or "\u00c0" <= c <= "\u024f" for c in letters) / len(letters)
        tokens = words(text)
        stop = sum(t in EN_STOPWORDS for t in tokens) / len(tokens) if tokens else 0.0
        if latin < 0.5:
            non_latin += 1
        elif latin >= 0.9 and (stop >= 0.1 or len(tokens) < 5):
            english += 1
        else:
            other_latin += 1
    shares = [round(k / checked, 4) if checked else 0.0 for k in (english, other_latin, non_latin)]
    return {"heuristic": "Latin-letter ratio and English stopword hits per row; a rough guide, not a detector",
            "rows_checked": checked, "english_like_share": shares[0],
            "other_latin_share": shares[1], "non_latin_share": shares[2]}


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
    found, n = [], report["sample"]["rows"]

    def add(severity: str, check: str, detail: str, fix: str):
        found.append({"severity": severity, "check": check, "detail": detail, "fix": fix})

    if n == 0:
        add("blocker", "rows", "The split has no rows.", "Pick another split or dataset.")
        return found
    empty_share = report["rows_with_empty_fields"] / n
    if empty_share > EMPTY_WARN:
        worst = max(report["columns"], key=lambda c: sum(report["columns"][c].values()))
        add("blocker" if empty_share > EMPTY_BLOCK else "caveat", "empty fields",
            f"{report['rows_with_empty_fields']} of {n} sampled rows ({empty_share:.1%}) have an empty or "
            f"near-empty field (most in {worst!r}).",
            "Drop them: reformat_dataset drops empty rows, and filter_min_chars drops short ones.")
    dups = report["duplicates"]
    if dups["exact_share"] > DUP_WARN:
        add("caveat", "exact duplicates", f"{dups['exact']} of {dups['rows_compared']} rows "
            f"({dups['exact_share']:.1%}) repeat an earlier row.", "reformat_dataset de-duplicates exact copies.")
    if dups["near_share"] > NEAR_DUP_WARN:
        add("caveat", "near duplicates", f"{dups['near_rows']} rows ({dups['near_share']:.1%}) are near copies "
            f"(word 3-gram Jaccard >= {NEAR_DUP_JACCARD}, punctuation and case ignored) of another row.",
            "Expect some memorisation; keep them only if the variation is intended.")
    for column, info in report["labels"].items():
        if info["classes"] == 1 or info["majority_share"] >= SKEW_WARN:
            add("caveat", "label balance", f"Column {column!r}: {info['majority_share']:.1%} of rows are "
                f"{info['majority']!r} ({info['classes']} classes, {info['source']}).",
                "Rebalance (downsample the majority) or report per-class/balanced accuracy; a model can "
                "score high by always answering the majority label.")
    per_example = report["lengths"]["per_example"]
    if (per_example["p95"] or 0) > LONG_TOKENS:
        add("caveat", "length", f"95% of examples are up to {per_example['p95']} {report['lengths']['unit']}.",
            "Set max_length to cover them (memory grows with it) or filter the longest.")
    language = report["language"]
    if language["rows_checked"] and language["english_like_share"] < ENGLISH_WARN:
        add("caveat", "language (heuristic)", f"Only {language['english_like_share']:.0%} of rows look English "
            f"({language['non_latin_share']:.0%} non-Latin script).",
            "Fine if the target language is not English; otherwise pick another dataset or filter.")
    overlap = report["eval_overlap"]
    if overlap and overlap["contaminated"]:
        add("blocker" if overlap["fraction"] > CONTAMINATION_BLOCK else "caveat", "eval overlap",
            f"{overlap['contaminated']} of {overlap['eval_items']} eval items ({overlap['fraction']:.1%}) share an "
            f"{overlap['n']}-word sequence with sampled training rows {overlap['train_rows'][:10]}.",
            "Remove the overlapping training rows (or pick another dataset) before trusting any eval score.")
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


def verdict(found: list[dict]) -> tuple[str, str]:
    blockers = [p["check"] for p in found if p["severity"] == "blocker"]
    caveats = [p["check"] for p in found if p["severity"] == "caveat"]
    if blockers:
        return "not usable", f"Not usable as is: {', '.join(blockers)}" + (
            f"; also {', '.join(caveats)}." if caveats else ".")
    if caveats:
        return "usable with caveats", f"Usable with caveats: {', '.join(caveats)}."
    return "good", "No problems found in the sample."
