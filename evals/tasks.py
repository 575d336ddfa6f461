"""The lighteval tasks defined here: shipped offline fixtures and tasks generated from your own data.

`TASKS` is the plain registry: ledger name -> what it measures and where its data lives. It costs
nothing to import (the app reads it to validate task names). `custom_task(source, options)` builds
an entry for `custom:<source>` (a local .jsonl/.json file or folder, or a Hub dataset id), which
`evals.catalogue.resolve_task` adds to TASKS. `lighteval_config(name)` turns an entry into a
`LightevalTaskConfig`, importing lighteval only then; `TASKS_TABLE` (what lighteval looks for in
a custom task file) is built on first access.

    lighteval accelerate "model_name=DIR,device=cpu,dtype=float32" "tiny_sentiment|0" \
        --custom-tasks evals/tasks.py

Prefer `python -m evals.runner`: it gives lighteval only the configs it needs (lighteval's own
registry imports every built-in task module, and one of them downloads a file at import).

Custom task options: kind "multiple_choice" (columns question, choices (a list, or {"text": [...]})
and answer (index, letter or the choice's text); scored by the log-likelihood of the answer letter)
or "generative" (columns question and answer; the model's greedy answer is compared with match
"exact" (first line, stripped), "number" (the number after "####" if present, else the last number:
GSM8K style) or "regex:<pattern>" (first group, or the whole match, in both)); split (default
"test"), subset (Hub config, default "default"), max_new_tokens (generative, default 32, or 256
for number/regex).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from string import ascii_uppercase

DATA_DIR = Path(__file__).parent / "data"
KINDS = ("multiple_choice", "generative")
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def tiny_sentiment_prompt(line: dict, task_name: str | None = None):
    """One row {review, label} -> a two-choice Doc scored by the log-likelihood of each answer.

    The format matches `evals.fixture_data.prompt_for` and the demo training data.
    """
    from lighteval.tasks.requests import Doc

    return Doc(task_name=task_name or "tiny_sentiment", query=f"Review: {line['review']}\nSentiment:",
               choices=[" positive", " negative"], gold_index=0 if line["label"] == "positive" else 1)


def tiny_sentiment_gen_prompt(line: dict, task_name: str | None = None):
    """One row {review, label} -> a generative Doc: the model must write the label word."""
    from lighteval.tasks.requests import Doc

    return Doc(task_name=task_name or "tiny_sentiment_gen", query=f"Review: {line['review']}\nSentiment:",
               choices=[line["label"]], gold_index=0)


TASKS: dict[str, dict] = {
    "tiny_sentiment": dict(
        description="Two-way sentiment of short reviews (120 rows, shipped fixture); "
                    "zero-shot multiple choice, metric: accuracy (chance = 0.5).",
        config_name="tiny_sentiment", kind="multiple_choice", data_path=DATA_DIR / "tiny_sentiment", split="test",
        fewshot=0, prompt_function=tiny_sentiment_prompt, metric="acc", question_column="review", shipped=True,
    ),
    "tiny_sentiment_gen": dict(
        description="The same reviews' sentiment, generated (60 rows, shipped fixture): the model writes "
                    "'positive' or 'negative'; zero-shot, metric: exact match of the first line.",
        config_name="tiny_sentiment_gen", kind="generative", data_path=DATA_DIR / "tiny_sentiment_gen",
        split="test", fewshot=0, prompt_function=tiny_sentiment_gen_prompt, metric="em", match="exact",
        generation_size=4, question_column="review", shipped=True,
    ),
}


def extract_answer(text: str, match: str) -> str:
    """The part of `text` that is compared: see the module docstring for the match modes."""
    text = str(text).strip()
    if match == "exact":
        return text.splitlines()[0].strip() if text else ""
    if match == "number":
        marked = re.search(r"####\s*(-?[\d,]*\.?\d+)", text)
        numbers = [marked.group(1)] if marked else NUMBER.findall(text)
        if not numbers:
            return ""
        number = numbers[-1].replace(",", "")
        return number.rstrip("0").rstrip(".") if "." in number else number
    if match.startswith("regex:"):
        found = re.search(match[len("regex:"):], text)
        if not found:
            return ""
        return (found.group(1) if found.groups() else found.group(0)).strip()
    raise ValueError(f"unknown match {match!r}: use 'exact', 'number' or 'regex:<pattern>'.")


def _gold_index(answer, choices: list[str]) -> int:
    if isinstance(answer, bool):
        raise ValueError(f"answer {answer!r} is not an index, a letter or a choice")
    if isinstance(answer, int) or (isinstance(answer, str) and answer.strip().isdigit()):
        index = int(answer)
    elif isinstance(answer, str) and answer.strip() in choices:
        index = choices.index(answer.strip())
    elif isinstance(answer, str) and re.fullmatch(r"\(?([A-Za-z])\)?\.?", answer.strip()):
        index = ascii_uppercase.index(re.fullmatch(r"\(?([A-Za-z])\)?\.?", answer.strip()).group(1).upper())
    else:
        raise ValueError(f"answer {answer!r} is not an index, a letter or one of the choices {choices}")
    if not 0 <= index < len(choices):
        raise ValueError(f"answer {answer!r} is out of range for {len(choices)} choices")
    return index


class CustomPrompt:
    """The prompt function of a custom task: one row -> a lighteval Doc."""

    def __init__(self, options: dict):
        self.options = options
        self.__name__ = f"custom_{options['kind']}_prompt"

    def __call__(self, line: dict, task_name: str | None = None):
        from lighteval.tasks.requests import Doc

        o = self.options
        question = str(line[o["question"]]).strip()
        if o["kind"] == "generative":
            return Doc(task_name=task_name, query=f"Question: {question}\nAnswer:", choices=[str(line[o["answer"]])],
                       gold_index=0)
        choices = line[o["choices"]]
        choices = [str(c) for c in (choices.get("text", []) if isinstance(choices, dict) else choices)]
        letters = ascii_uppercase[:len(choices)]
        query = f"Question: {question}\n" + "".join(f"{k}. {c}\n" for k, c in zip(letters, choices, strict=True))
        return Doc(task_name=task_name, query=query + "Answer:", choices=[f" {k}" for k in letters],
                   gold_index=_gold_index(line[o["answer"]], choices))


def _match_metric(match: str):
    """A sample-level lighteval metric "em": 1.0 when the extracted prediction equals the extracted gold."""
    import numpy as np
    from lighteval.metrics.metrics_sample import SampleLevelComputation
    from lighteval.metrics.utils.metric_utils import SampleLevelMetric
    from lighteval.tasks.requests import SamplingMethod

    class ExtractedMatch(SampleLevelComputation):
        def __init__(self, mode: str):
            self.match = mode

        def compute(self, doc, model_response, **kwargs) -> float:
            predictions = model_response.final_text or [""]
            gold = extract_answer(doc.get_golds()[0], self.match)
            return float(bool(gold) and extract_answer(predictions[0], self.match) == gold)

    return SampleLevelMetric(metric_name="em", sample_level_fn=ExtractedMatch(match),
                             category=SamplingMethod.GENERATIVE, corpus_level_fn=np.mean, higher_is_better=True)


def _is_repo_id(value: str) -> bool:
    """Whether `value` passes huggingface_hub's own repo-id rules (evals/ imports nothing of ours, so this
    is the one check here rather than tools.backends.hub.is_hub_id)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(value)
    except HFValidationError:
        return False
    return True


def custom_task(source: str, options: dict) -> dict:
    """A TASKS entry for `custom:<source>`; raises ValueError naming what is wrong with the options or data."""
    if not source:
        raise ValueError("custom: needs a source, e.g. 'custom:/data/my_eval.jsonl' or 'custom:owner/dataset'.")
    known = {"kind", "question", "choices", "answer", "split", "subset", "match", "max_new_tokens"}
    if set(options) - known:
        raise ValueError(f"unknown task_options {sorted(set(options) - known)}; known: {sorted(known)}.")
    kind = str(options.get("kind") or "").strip().lower().replace("-", "_")
    if kind not in KINDS:
        raise ValueError(f"custom tasks need task_options kind 'multiple_choice' or 'generative', got {kind!r}.")
    match = str(options.get("match") or "exact")
    extract_answer("", match)  # validates the mode
    if match.startswith("regex:"):
        re.compile(match[len("regex:"):])
    opts = {"kind": kind, "question": options.get("question") or "question",
            "answer": options.get("answer") or "answer", "split": options.get("split") or "test",
            "subset": options.get("subset") or "default"}
    if kind == "multiple_choice":
        opts["choices"] = options.get("choices") or "choices"
    else:
        opts["match"] = match
        opts["max_new_tokens"] = int(options.get("max_new_tokens") or (32 if match == "exact" else 256))
    local = Path(source).expanduser()
    is_local = local.exists() or source.startswith(("/", ".", "~"))
    if is_local:
        if not local.exists():
            raise ValueError(f"custom task data {source} does not exist.")
        from evals.integrity import read_rows

        rows = read_rows(local.resolve(), opts["split"], limit=1)
        if not rows:
            raise ValueError(f"custom task data {source} has no rows.")
        needed = [opts[c] for c in ("question", "choices", "answer") if c in opts]
        missing = [c for c in needed if c not in rows[0]]
        if missing:
            raise ValueError(f"custom task data {source} has no column(s) {missing}; its columns are "
                             f"{sorted(rows[0])}. Name them in task_options (question=, answer=, choices=).")
        source = str(local.resolve())
    elif "/" not in source or not _is_repo_id(source):
        raise ValueError(f"custom task source {source!r} is neither an existing local path nor a Hub id 'owner/name'.")
    digest = hashlib.sha1(json.dumps([source, opts], sort_keys=True).encode()).hexdigest()[:10]
    entry = {"key": f"custom:{source}", "config_name": f"custom_{digest}", "kind": kind, "options": opts,
             "description": f"custom {kind} task on {source}", "split": opts["split"], "fewshot": 0,
             "prompt_function": CustomPrompt(opts), "metric": "acc" if kind == "multiple_choice" else "em",
             "question_column": opts["question"], "match": opts.get("match"),
             "generation_size": opts.get("max_new_tokens")}
    if is_local:
        entry["data_path"] = Path(source)
    else:
        entry.update(hf_repo=source, hf_subset=opts["subset"])
    return entry


def lighteval_config(name: str, data_dir: str | Path | None = None):
    """The LightevalTaskConfig of TASKS[name]; `data_dir` overrides where a local task's split files are."""
    from lighteval.metrics.metrics import Metrics
    from lighteval.tasks.lighteval_task import LightevalTaskConfig

    task = TASKS[name]
    if task["kind"] == "multiple_choice":
        extra = dict(metrics=[Metrics.loglikelihood_acc])
    else:
        extra = dict(metrics=[_match_metric(task["match"])], generation_size=task["generation_size"],
                     stop_sequence=["\n"] if task["match"] == "exact" else ["\nQuestion:", "\n\n\n"])
    local = data_dir or task.get("data_path")
    return LightevalTaskConfig(
        name=task["config_name"], prompt_function=task["prompt_function"],
        hf_repo=str(local) if local else task["hf_repo"], hf_subset="default" if local else task["hf_subset"],
        hf_avail_splits=[task["split"]], evaluation_splits=[task["split"]], **extra)


def task_spec(name: str) -> str:
    """The exact lighteval task string for TASKS[name], e.g. "tiny_sentiment|0"."""
    return f"{TASKS[name]['config_name']}|{TASKS[name]['fewshot']}"


def __getattr__(name: str):
    if name == "TASKS_TABLE":  # a single local file needs staging as <split>.jsonl first (evals.runner does it)
        return [lighteval_config(t) for t in TASKS if not Path(TASKS[t].get("data_path") or "").is_file()]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
