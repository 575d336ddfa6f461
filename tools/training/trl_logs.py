"""Training metrics from a job's log: our scripts' `METRIC {json}` lines, or the dicts any
transformers/TRL Trainer prints (the TRL CLI, a TRL script run elsewhere, one the agent wrote).

What a Trainer prints (transformers 5.24, TRL 1.16): every `Trainer.log` goes through
`ProgressCallback.on_log`, which writes `str(logs)` under the tqdm bar with each float formatted
`f"{v:.4g}"`, so the values are strings: `{'loss': '1.23', 'grad_norm': '0.8', 'learning_rate': '2e-05',
'epoch': '0.5'}` (NaN is `'nan'`); without tqdm `PrinterCallback` prints the same. Older transformers
and hand-written callbacks print raw numbers: NaN/inf as bare `nan`/`inf`, a tensor as
`tensor(0.5, device='cuda:0')`, a numpy scalar as `np.float64(0.5)`. GRPO logs `None` for a metric
with no valid value. Evaluation logs carry `eval_*` keys; the last one is `{'train_runtime': ...,
'train_loss': ...}`. trackio prints only set-up lines (`* Trackio project initialized: ...`).

No step is printed. tqdm redraws its bar behind carriage returns, and right after writing a log line
it redraws the bar at the current `n/total`: the first bar after a log line is that log's step (the
bars before it may be stale). Where no bar follows, the step is the previous one plus logging_steps
(the run's config, else the spacing seen so far); with no bars and no spacing, the logs are numbered.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass, field

METRIC_LINE = re.compile(r"(?:^|\]\s*)METRIC (\{.*\})\s*$")  # at the start, or after a tqdm bar from stderr
DONE_LINE = re.compile(r"(?:^|\]\s*)TRAINING_DONE (\{.*\})\s*$")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TRAINER_DICT = re.compile(r"\{'[^{}]*\}\s*$")  # a flat dict literal that ends its line
# `tensor(0.5000, device='cuda:0')`, `np.float64(0.5)` -> the number inside
SCALAR_REPR = re.compile(r"\b(?:tensor|np\.\w+|numpy\.\w+)\(\s*([^,()]+?)\s*(?:,[^()]*)?\)")
BARE_NOT_FINITE = re.compile(r"(?<=[:\s])([-+]?(?:nan|inf))(?=\s*[,}])")
BAR = re.compile(r"(\d{1,3})%\|[^|\r\n]*\|\s*(\d+)/(\d+)\s*\[([^\]\r\n]*)\]")
ANY_BAR = re.compile(r"\d{1,3}%\|[^|\r\n]*\|\s*\S+/\S+\s*\[[^\]\r\n]*\]")  # downloads too: 1.41G/3.44G
RATE = re.compile(r"([\d.]+)\s*(s/it|it/s)")
MAX_DICT_CHARS = 50_000
SKIP = ("step", "global_step", "max_steps")


@dataclass
class Bar:
    """One drawing of a tqdm bar: `n/total`, whether it had a description (`Map: 40%|...`), s per step."""
    n: int
    total: int
    plain: bool
    seconds_per_step: float | None


@dataclass
class TrainingLog:
    """What a log says about training. `rows` hold {"step": int, metric: float, ...} in log order
    (training, eval and summary rows; values may be NaN/inf); `done` is the TRAINING_DONE payload."""
    rows: list[dict] = field(default_factory=list)
    done: dict | None = None
    max_steps: int | None = None
    bar_step: int | None = None  # where the training bar last stood (progress before the first log)
    seconds_per_step: float | None = None  # from the training bar's rate
    source: str = "none"  # "metric" (our METRIC lines), "trainer" (the Trainer's dicts) or "none"

    def points(self) -> list[tuple[int | None, str, float]]:
        """(step, name, value) for every finite number: what the ledger stores (NaN/inf cannot be)."""
        return [(row.get("step"), name, float(value)) for row in self.rows for name, value in row.items()
                if name not in SKIP and isinstance(value, (int, float)) and math.isfinite(value)]

    def latest_training(self) -> dict:
        """The last training row (one with a loss or a reward), else the last row, else {}."""
        training = [row for row in self.rows if "loss" in row or "reward" in row]
        return dict(training[-1] if training else (self.rows[-1] if self.rows else {}))

    @property
    def summary(self) -> dict | None:
        """The Trainer's end-of-training row (train_runtime, train_loss), if it was printed."""
        return next((row for row in reversed(self.rows) if "train_runtime" in row), None)


def _number(value) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def parse_trainer_dict(line: str) -> dict | None:
    """The numbers of a Trainer log line (`{'loss': '1.2', 'epoch': '0.5'}` at the end of `line`), or None."""
    if "{'" not in line:
        return None
    match = TRAINER_DICT.search(line)
    if not match or len(match.group(0)) > MAX_DICT_CHARS:
        return None
    text = BARE_NOT_FINITE.sub(r"'\1'", SCALAR_REPR.sub(r"\1", match.group(0)))
    try:
        raw = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
        return None
    if not ({"epoch", "loss", "train_loss", "reward"} & raw.keys() or any(k.startswith("eval_") for k in raw)):
        return None  # some other dict a script printed
    row = {name: number for name, value in raw.items() if (number := _number(value)) is not None}
    return row or None


def _bars(text: str) -> list[Bar]:
    bars, end = [], 0
    for match in BAR.finditer(text):
        described = text[end:match.start()].strip()
        end = match.end()
        rate = RATE.search(match.group(4))
        seconds = None
        if rate and float(rate.group(1)) > 0:
            seconds = float(rate.group(1)) if rate.group(2) == "s/it" else 1 / float(rate.group(1))
        bars.append(Bar(int(match.group(2)), int(match.group(3)), not described, seconds))
    return bars


def _json_rows(lines: list[str]) -> tuple[list[dict], dict | None]:
    rows, done = [], None
    for line in lines:
        line = line.strip()
        for pattern in (METRIC_LINE, DONE_LINE):
            match = pattern.search(line) if "METRIC {" in line or "TRAINING_DONE {" in line else None
            if not match:
                continue
            try:
                payload = json.loads(match.group(1))  # json reads NaN/Infinity as Python prints them
            except json.JSONDecodeError:
                continue
            if isinstance(payload, dict):
                if pattern is METRIC_LINE:
                    rows.append(payload)
                else:
                    done = payload
    return rows, done


def _bar_after(events: list, index: int, total: int | None) -> Bar | None:
    """The first training bar drawn after the log row at `index` and before the next row."""
    for event in events[index + 1:index + 1 + 64]:  # tqdm redraws at once: the bar is among the next few
        if not isinstance(event, Bar):
            return None
        if event.plain and total in (None, event.total):
            return event
    return None


def read_training_log(text: str, logging_steps: int | float | None = None) -> TrainingLog:
    """The metric rows, progress and TRAINING_DONE payload of a training log; see the module docstring.

    METRIC lines win where a log has them (our scripts also echo the Trainer's dicts)."""
    lines = (text or "").splitlines()  # splits on "\r" too: each tqdm redraw is a line
    metric_rows, done = _json_rows(lines)
    if metric_rows:
        max_steps = next((int(r["max_steps"]) for r in reversed(metric_rows) if _number(r.get("max_steps"))), None)
        return TrainingLog(metric_rows, done, max_steps, source="metric")

    events: list[Bar | dict] = []
    for line in lines:
        line = ANSI.sub("", line)
        row = parse_trainer_dict(line)
        head = line[:TRAINER_DICT.search(line).start()] if row else line
        if "%|" in head:
            events.extend(_bars(head))
        if row:
            events.append(row)
    training_total = None
    rows: list[dict] = []
    logging_steps = logging_steps if logging_steps and logging_steps >= 1 else None  # below 1: a share of max_steps
    last_step, spacing, count = None, logging_steps, 0
    for index, event in enumerate(events):
        if isinstance(event, Bar):
            continue
        training = "loss" in event or "reward" in event
        step = _number(event.get("step", event.get("global_step")))
        if step is None and (after := _bar_after(events, index, training_total)):
            step = after.n
            if training and training_total is None:
                training_total = after.total
        if training:
            count += 1
            if step is None or (last_step is not None and step <= last_step):
                step = (last_step + spacing) if last_step is not None and spacing else (
                    count * spacing if spacing else count)
            if last_step is not None and not logging_steps:
                spacing = step - last_step
        elif step is None:
            step = last_step or 0
        rows.append({"step": int(step), **{k: v for k, v in event.items() if k not in SKIP}})
        if training:
            last_step = int(step)
    plain = [e for e in events if isinstance(e, Bar) and e.plain and training_total in (None, e.total)]
    last_bar = plain[-1] if plain else None
    return TrainingLog(rows, done, training_total or (last_bar.total if last_bar else None),
                       last_bar.n if last_bar else None, last_bar.seconds_per_step if last_bar else None,
                       source="trainer" if rows else "none")


def is_metric_line(line: str) -> bool:
    """A METRIC line or a Trainer log dict: job_status reports these as metrics."""
    line = ANSI.sub("", line).strip()
    return line.startswith("METRIC ") or parse_trainer_dict(line) is not None


def bar_label(line: str) -> str | None:
    """The description of a line that only redraws a progress bar ("" for the training bar), else None."""
    line = ANSI.sub("", line).strip()
    match = ANY_BAR.search(line)
    if not match or line[match.end():].strip():
        return None
    return line[:match.start()].strip()
