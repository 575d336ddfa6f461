"""The lighteval tasks this project evaluates on, as a lighteval 0.13 custom task file.

`TASKS` is the plain registry: task name -> what it measures and where its data lives. It costs
nothing to import (the app reads it to validate task names). `TASKS_TABLE`, the list of
`LightevalTaskConfig` that lighteval looks for in a custom task file, is built on first access
so that lighteval (and torch) are imported only by the process that evaluates.

    lighteval accelerate "model_name=DIR,device=cpu,dtype=float32" "tiny_sentiment|0" \
        --custom-tasks evals/tasks.py

Prefer `python -m evals.runner`: it loads only this file (lighteval's own registry imports
every built-in task, and one of them downloads a file at import).
"""

from __future__ import annotations

from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"


def tiny_sentiment_prompt(line: dict, task_name: str | None = None):
    """One row {review, label} -> a two-choice Doc scored by the log-likelihood of each answer.

    The format matches `evals.fixture_data.prompt_for` and the demo training data.
    """
    from lighteval.tasks.requests import Doc

    return Doc(task_name=task_name or "tiny_sentiment", query=f"Review: {line['review']}\nSentiment:",
               choices=[" positive", " negative"], gold_index=0 if line["label"] == "positive" else 1)


TASKS: dict[str, dict] = {
    "tiny_sentiment": dict(
        description="Two-way sentiment of short reviews (120 rows, shipped fixture); "
                    "zero-shot multiple choice, metric: accuracy (chance = 0.5).",
        data_dir=DATA_DIR / "tiny_sentiment", split="test", fewshot=0,
        prompt_function=tiny_sentiment_prompt, lighteval_metric="loglikelihood_acc", metric="acc",
    ),
}


def task_spec(name: str) -> str:
    """The exact lighteval task string for `name`, e.g. "tiny_sentiment|0"."""
    return f"{name}|{TASKS[name]['fewshot']}"


def lighteval_config(name: str):
    from lighteval.metrics.metrics import Metrics
    from lighteval.tasks.lighteval_task import LightevalTaskConfig

    task = TASKS[name]
    return LightevalTaskConfig(
        name=name, prompt_function=task["prompt_function"], hf_repo=str(task["data_dir"]),
        hf_subset="default", hf_avail_splits=[task["split"]], evaluation_splits=[task["split"]],
        metrics=[getattr(Metrics, task["lighteval_metric"])],
    )


def __getattr__(name: str):
    if name == "TASKS_TABLE":
        return [lighteval_config(task) for task in TASKS]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
