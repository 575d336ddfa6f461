"""Hyperparameters in a paper: each value with its stage (SFT, GRPO...), the table caption or sentence
it came from and whether it is the main method's value; swept values and values the paper rejects
(ablations, settings described as unstable or worse) are kept apart, so they are not taken for the recipe.

    found = find_hyperparameters([("4.2 GRPO training", "We use a learning rate of 1e-6. ...")])
    found["hyperparameters"]["learning_rate"]  # [{"value": 1e-06, "stage": "GRPO", "main": True, ...}]
    found["stages"]["GRPO"]["learning_rate"]    # 1e-06; also found["sweeps"], found["rejected"]

Deterministic patterns, no LLM: every value keeps its sentence (or table row) for checking.
Tables arrive as paper_reader renders them: `a | b` rows, a row spanning all columns as a plain line,
the caption ("Table 3: ...") on the line just above or below.
"""

from __future__ import annotations

import re

from tools.research.hyperparameter_names import (
    LABEL_IN_TEXT,
    LR,
    PROSE,
    SET_NUM,
    STAGE,
    STAGES,
    cell_values,
    number,
    row_label,
    stage_in,
)

SENTENCE_CHARS = 300
LIMITS = {"per_hyperparameter": 6, "sweeps": 8, "rejected": 12}
NOT_OURS = re.compile(r"(?:unlike|than|instead of|compared (?:to|with)|vs\.?|versus)\s*$", re.I)
FOLLOWING_STAGE = re.compile(r"^\s*(?:\}|\))?\s*(?:for|in|during|of)\s+(?:the\s+)?", re.I)
CLAUSE_END = re.compile(r";|:\s|,\s*(?:and|but|while|whereas|so|since|because|although|which)\b"
                        r"|\s(?:but|while|whereas|since|because|although)\s", re.I)
UNSTABLE = re.compile(r"unstab|instabilit|diverg|collaps|blew up|explod|\bNaN\b|spik", re.I)
WORSE = re.compile(r"\bworse\b|degrad|\bhurts?\b|\bharm|\bdrops?\b|\bdropped\b|\blower(?:s|ed)?\b (?:the )?(?:accuracy|"
                   r"score|reward|performance)|\bcosts?\s+[\d.]+|underperform|\bfail(?:s|ed)?\b|no (?:gain|improvement"
                   r"|benefit)|did not (?:help|improve)|suboptimal|inferior|overfit|slow(?:s|ed|er)? (?:down )?"
                   r"(?:learning|convergence|training)", re.I)
CHANGED_TO = re.compile(r"\b(?:rais|increas|lower|reduc|decreas|halv|doubl|chang|vary|varying|replac|switch|scal)"
                        r"\w*\b[^;:]{0,60}?\b(?:to|from)\s*(?:[A-Za-z\\]+\s*=\s*)?$", re.I)
PRONOUN_TO = re.compile(rf"\b(?:rais|increas|lower|reduc|decreas|halv|doubl|chang|sett?)\w*\s+(?:it|this(?: value)?)"
                        rf"\s+to\s+(?P<v>{LR}|\d+(?:\.\d+)?)", re.I)
REFERENCE = re.compile(r"(?:than|instead of|rather than|versus|vs\.?|compared (?:to|with))\s*$", re.I)
SWEEP = re.compile(r"\bsweep|\bgrid\b|search(?:ed|ing)? over|tun(?:e|ed|ing)\b[^.]{0,30}\bover|\btr(?:y|ied)\b"
                   r"|(?:chosen|selected|picked) (?:from|among)|\bamong\b|\bin\s*\\?\{", re.I)
BEST = re.compile(rf"(?P<v>{LR}|\d+(?:\.\d+)?)\s+(?:to\s+)?(?:work|perform)\w*\s+best", re.I)
USED = re.compile(rf"\b(?:we|and|so)\s+(?:instead\s+)?(?:use|keep|chose|choose|pick|select|settle on|adopt)\s+"
                  rf"(?P<v>{LR}|\d+(?:\.\d+)?)(?=\s*(?:$|[.,;)]|instead\b|throughout\b|for\b|in\b))", re.I)
CONTINUED = re.compile(rf"\s+(?:for|in|during)\s+(?:the\s+)?[\w-]+(?:\s+(?:stage|phase|model|runs?))?\s*,?\s*"
                       rf"(?:and\s+)?(?:(?:a|an)\s+[\w\s]{{0,20}}?of\s+)?(?P<v>{LR}|\d+(?:\.\d+)?)", re.I)
UNIT = re.compile(r"\s*(prompts|sequences|examples|samples|completions|tokens|pairs|questions|episodes)\b", re.I)
CHOSEN = re.compile(rf"\b(?:keep|kept|use|used|choose|chose|select|selected|pick|picked|settle on|adopt|fix|fixed)\b"
                    rf"\s*(?:on\s+)?(?:a value of\s+)?(?P<v>{LR}|\d+(?:\.\d+)?)", re.I)
BASELINE = re.compile(r"\bbaselines?\b|\bcompared? (?:to|with|against)\b", re.I)
VARIANT = re.compile(r"\bvariants?\b", re.I)
ABLATION_SECTION = re.compile(r"ablation|sensitivity", re.I)
KEEPS_DEFAULT = re.compile(r"\bdefault\b|\bour (?:final|main)\b|\bwe use\b|\bchosen\b", re.I)
OURS = re.compile(r"\bours\b|\bproposed\b", re.I)
CAPTION = re.compile(r"^Table\s+[\dA-Z.]+\s*[:.]")


def quote(sentence: str) -> str:
    return sentence if len(sentence) <= SENTENCE_CHARS else sentence[: SENTENCE_CHARS - 1] + "…"


def split_sentences(paragraph: str) -> list[str]:
    return [s for s in re.split(r"(?<!e\.g\.)(?<!i\.e\.)(?<!al\.)(?<!Fig\.)(?<!Eq\.)(?<!vs\.)(?<!cf\.)(?<=[.!?])\s+"
                                r"(?=[A-Z0-9(\[\\])", paragraph) if s.strip()]


class Collector:
    """Candidates from one paper; `result()` ranks them into the answer."""

    def __init__(self):
        self.accepted, self.sweeps, self.rejected = [], [], []

    def add(self, name: str, raw: str, stage: str | None, sentence: str, **extra) -> None:
        try:
            value = number(raw) if name != "lr_scheduler" else raw.strip().lower()
        except ValueError:
            return
        entry = {"name": name, "value": value, "text": raw.strip(), "stage": stage, "sentence": quote(sentence),
                 **{k: v for k, v in extra.items() if v not in (None, "")}, "_order": len(self.accepted)}
        (self.rejected if entry.get("reason") else self.accepted).append(entry)

    def result(self) -> dict:
        by_name: dict[str, list[dict]] = {}
        for entry in sorted(self.accepted, key=lambda e: (e.get("source") != "table", e["_order"])):
            same = by_name.setdefault(entry["name"], [])
            if any(e["value"] == entry["value"] and (e["stage"] == entry["stage"] or entry["stage"] is None)
                   for e in same):
                continue
            for e in [e for e in same if e["value"] == entry["value"] and e["stage"] is None]:
                same.remove(e)  # the same value, now known with its stage
            same.append(entry)
        stage_order = {}
        for entry in sorted(self.accepted, key=lambda e: e["_order"]):
            stage_order.setdefault(entry["stage"], len(stage_order))
        hyper, stages = {}, {}
        for name, entries in by_name.items():
            seen_stages = set()
            for entry in entries:
                entry["main"] = entry.get("role") is None and entry["stage"] not in seen_stages
                if entry["main"]:
                    seen_stages.add(entry["stage"])
                    if entry["stage"]:
                        stages.setdefault(entry["stage"], {})[name] = entry["value"]
            ordered = sorted(entries, key=lambda e: (not e["main"], stage_order.get(e["stage"], 99), e["_order"]))
            hyper[name] = [clean(e) for e in ordered[: LIMITS["per_hyperparameter"]]]
        kept = {(e["name"], e["value"], e["stage"]) for e in self.accepted if e.get("role") is None}
        rejected, seen = [], set()
        for entry in self.rejected:
            key = (entry["name"], entry["value"], entry["stage"])
            if key not in kept and key not in seen:
                seen.add(key)
                rejected.append({"name": entry["name"], **clean(entry)})
        ordered_stages = dict(sorted(stages.items(), key=lambda kv: stage_order.get(kv[0], 99)))
        return {"hyperparameters": hyper, "stages": ordered_stages, "sweeps": self.sweeps[: LIMITS["sweeps"]],
                "rejected": rejected[: LIMITS["rejected"]]}


def clean(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if k not in ("name", "_order")}


def table_runs(lines: list[str]) -> list[tuple[str | None, list[list[str] | str]]]:
    """Tables in a section's lines as (caption, rows); a row is a list of cells, or a str for a
    label spanning the row. A header-like row after data rows, or a new column count, starts a new table."""
    runs, run, start = [], [], 0
    for i, line in enumerate(lines + [""]):
        if " | " in line:
            cells = [c.strip() for c in line.split(" | ")]
            data = [r for r in run if isinstance(r, list)]
            header_like = not any(re.search(r"\d", c) for c in cells) and row_label(cells[0])[0] is None
            if data and (len(cells) != len(data[0]) or (header_like and len(data) > 1)):
                runs.append((start, i, run))
                run = []
            if not run:
                start = i
            run.append(cells)
        elif run and line and len(line) <= 40 and not CAPTION.match(line) and i + 1 < len(lines) \
                and " | " in lines[i + 1]:
            run.append(line)
        elif run:
            runs.append((start, i, run))
            run = []
    tables, used = [], set()
    starts = {s for s, _, _ in runs}
    for s, end, rows in runs:
        caption = None
        if s > 0 and CAPTION.match(lines[s - 1]):
            caption, used = lines[s - 1], used | {s - 1}
        elif end < len(lines) and CAPTION.match(lines[end]) and end + 1 not in starts and end not in used:
            caption = lines[end]
        tables.append((caption, rows))
    return tables


def read_table(caption: str | None, rows: list, section_stage: str | None, out: Collector) -> None:
    data = [r for r in rows if isinstance(r, list)]
    header = data[0] if data and row_label(data[0][0])[0] is None else None
    body = rows[rows.index(header) + 1:] if header else rows
    caption_stage = stage_in(caption or "")
    columns = [row_label(c)[0] for c in (header or [])[1:]]
    if header and sum(1 for c in columns if c) >= 2:  # transposed: one configuration per row
        for row in (r for r in body if isinstance(r, list)):
            for name, cell in zip(columns, row[1:], strict=False):
                for raw in cell_values(cell)[0][:1] if name else []:
                    out.add(name, raw, stage_in(row[0]) or caption_stage or section_stage,
                            f"{' | '.join(header)} / {' | '.join(row)}", source="table", table=caption,
                            column=row[0][:40])
        return
    ours = [bool(OURS.search(c)) for c in (header or [])[1:]]
    group_stage = None
    for row in body:
        if isinstance(row, str):
            group_stage = stage_in(row)
            continue
        name, qualifier = row_label(row[0])
        for i, cell in enumerate(row[1:] if name else []):
            column = header[i + 1] if header and i + 1 < len(header) else None
            values, swept = cell_values(cell)
            stage = stage_in(column or "") or group_stage or caption_stage or section_stage
            sentence = (" | ".join(header) + " / " if header else "") + " | ".join(row)
            if swept:
                out.sweeps.append({"name": name, "values": [number(v) for v in values], "stage": stage,
                                   "sentence": quote(sentence), "table": caption})
            elif values:
                role = "baseline" if any(ours) and i < len(ours) and not ours[i] else None
                out.add(name, values[0], stage, sentence, source="table", table=caption, qualifier=qualifier,
                        column=column and column[:40], role=role)


def clause_around(sentence: str, start: int, end: int) -> str:
    cuts = [0] + [m.end() for m in CLAUSE_END.finditer(sentence)] + [len(sentence)]
    left = max(c for c in cuts if c <= start)
    right = min((c for c in cuts if c >= end), default=len(sentence))
    return sentence[left:right]


def value_stage(sentence: str, start: int, end: int, running: str | None) -> str | None:
    """The stage a value at sentence[start:end] belongs to: "... 1e-6 for GRPO", else the nearest
    stage named before it in the sentence, else the paragraph's or section's stage (`running`)."""
    after = sentence[end:end + 40]
    lead = FOLLOWING_STAGE.match(after)
    if lead:
        named = STAGE.match(after, lead.end())
        if named:
            return STAGES[int(named.lastgroup[1:])][0]
    before = [m for m in STAGE.finditer(sentence[:start]) if not NOT_OURS.search(sentence[:m.start()])]
    return stage_in(before[-1].group(0)) if before else running


def judge(sentence: str, start: int, end: int, in_ablation: bool) -> str | None:
    """Why the value at sentence[start:end] is not the recipe's: "unstable", "worse", "ablation"; else None."""
    clause = clause_around(sentence, start, end)
    prefix = sentence[:start]
    if UNSTABLE.search(clause):
        return "unstable"
    if WORSE.search(clause.split(" than ")[0]):
        return "worse"
    if CHANGED_TO.search(prefix[-80:]) or (in_ablation and not KEEPS_DEFAULT.search(clause)):
        return "ablation"
    return None


def brace_sets(sentence: str) -> list[tuple[int, int]]:
    """Spans of the `{...}` sets (LaTeX `\\{...\\}` too) in `sentence`; exponents like `10^{-5}` are not sets."""
    spans, depth, opening = [], 0, None
    for i, char in enumerate(sentence):
        if char == "{" and sentence[i - 1:i] not in ("^", "_"):
            if depth == 0:
                opening = i
            depth += 1
        elif char == "{":
            depth += 1 if depth else 0
        elif char == "}" and depth:
            depth -= 1
            if depth == 0 and opening is not None:
                spans.append((opening, i + 1))
                opening = None
    return spans


def read_sentence(sentence: str, running: str | None, last_name: str | None, in_ablation: bool,
                  out: Collector) -> str | None:
    """Values in one prose sentence; returns the last hyperparameter it names (for "raising it to ...")."""
    taken: list[tuple[int, int]] = []
    sweep_cue = SWEEP.search(sentence)
    for name, patterns in PROSE.items():
        for pattern in patterns:
            for match in re.finditer(pattern, sentence, re.I):
                start, end = match.span("v")
                if any(a <= start < b for a, b in taken) or REFERENCE.search(sentence[:start][-20:]):
                    continue
                if name == "max_steps" and re.search(r"warm-?up", sentence[max(0, start - 40):start], re.I):
                    continue
                braces = next(((a, b) for a, b in brace_sets(sentence) if a <= start < b), None)
                if braces:
                    start, end = braces
                raws = re.findall(SET_NUM if braces else LR, sentence[start:end]) \
                    if name == "learning_rate" or braces else [match.group("v")]
                taken.append((match.start(), end))
                if sweep_cue and (braces or len(raws) > 1):
                    chosen = CHOSEN.search(sentence, end) or BEST.search(sentence, end)
                    values = [number(r) for r in raws]
                    stage = value_stage(sentence, match.start(), end, running)
                    sweep = {"name": name, "values": values, "stage": stage, "sentence": quote(sentence)}
                    if chosen and number(chosen.group("v")) in values:
                        sweep["chosen"] = number(chosen.group("v"))
                        out.add(name, chosen.group("v"), stage, sentence, source="text", chosen_from_sweep=True)
                        taken.append(chosen.span("v"))
                    out.sweeps.append(sweep)
                    continue
                stages = [stage_in(m.group(0)) for m in STAGE.finditer(sentence[end:end + 40])]
                paired = len(raws) > 1 and len(stages) == len(raws)  # "5e-7 and 2e-5 for DPO and SFT"
                spots = [start + sentence[start:end].find(raw) for raw in raws]
                more = CONTINUED.match(sentence, end)  # "1e-6 for GRPO and 2e-5 for SFT"
                while more and not braces:
                    raws.append(more.group("v"))
                    spots.append(more.start("v"))
                    taken.append(more.span())
                    more = CONTINUED.match(sentence, more.end())
                for k, (raw, at) in enumerate(zip(raws, spots, strict=True)):
                    stage = stages[k] if paired else value_stage(sentence, at, at + len(raw), running)
                    clause = clause_around(sentence, at, at + len(raw))
                    role = "baseline" if BASELINE.search(clause) else "variant" if VARIANT.search(clause) else None
                    unit = UNIT.match(sentence, at + len(raw)) if name.endswith("batch_size") else None
                    out.add(name, raw, stage, sentence, source="text", role=role, qualifier=unit and unit.group(1),
                            reason=judge(sentence, at, at + len(raw), in_ablation))
    named = [m.lastgroup for m in LABEL_IN_TEXT.finditer(sentence)]
    for pattern, reason in ((PRONOUN_TO, "ablation"), (USED, None)):  # "raising it to 5e-6 ...", "so we use 1e-6"
        for match in pattern.finditer(sentence):
            start, end = match.span("v")
            name = ([m.lastgroup for m in LABEL_IN_TEXT.finditer(sentence[:start])] or [last_name])[-1]
            if name and not any(a <= start < b for a, b in taken):
                out.add(name, match.group("v"), value_stage(sentence, start, end, running), sentence, source="text",
                        reason=judge(sentence, start, end, in_ablation) or reason)
    return named[-1] if named else last_name


def find_hyperparameters(sections: list[tuple[str, str]]) -> dict:
    """Hyperparameters in `sections` [(title, text)], text as paper_reader renders it.

    Returns {"hyperparameters": {name: [{"value", "text", "stage", "main", "sentence", "source": "table"|"text",
    "table"?, "column"?, "qualifier"?, "role"?: "baseline"|"variant", "chosen_from_sweep"?}]} (main values first),
    "stages": {stage: {name: main value}}, "sweeps": [{"name", "values", "stage", "chosen"?, "sentence"}],
    "rejected": [{"name", "value", "stage", "reason": "unstable"|"worse"|"ablation", "sentence"}]}.
    """
    out = Collector()
    for title, text in sections:
        section_stage = stage_in(title)
        in_ablation = bool(ABLATION_SECTION.search(title))
        lines = [line for line in (text or "").split("\n") if line.strip()]
        for caption, rows in table_runs(lines):
            read_table(caption, rows, section_stage, out)
        for paragraph in lines:
            if " | " in paragraph or CAPTION.match(paragraph):
                continue
            running, last_name = section_stage, None
            for sentence in split_sentences(paragraph):
                last_name = read_sentence(sentence, running, last_name, in_ablation, out)
                running = stage_in(sentence) or running
    return out.result()


def sections_of_text(text: str) -> list[tuple[str, str]]:
    """Plain text split at markdown-style headings ("### 3.2 Training setup") into (title, text)."""
    parts, title, lines = [], "", []
    for line in (text or "").split("\n"):
        heading = re.match(r"#{1,6}\s+(.+)", line)
        if heading:
            parts.append((title, "\n".join(lines)))
            title, lines = heading.group(1), []
        else:
            lines.append(line)
    return parts + [(title, "\n".join(lines))]
