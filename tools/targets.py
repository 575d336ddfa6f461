"""Targets: what score on which task an experiment must reach, e.g. "gsm8k>=0.60" or "loss<=1.2".

    parse_targets("GSM-8K>=60%, ifeval>0.5")  -> [Target("gsm8k", ">=", 0.6), Target("ifeval", ">", 0.5)]
    targets_of(experiment_row)                -> the experiment's recorded targets ([] when none)

A target's task is normalised through the evaluation catalogue to the name run_evaluation records in
the ledger ("GSM-8K", "GSM8K" and "gsm8k|5" all become "gsm8k"), so target checks find the evals;
a name the catalogue does not know (a custom metric such as "loss") stays as written.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass

from evals.catalogue import task_key

COMPARATORS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
TARGET_PATTERN = re.compile(r"^([A-Za-z0-9_.:|/-]+)\s*(>=|<=|>|<)\s*([0-9]*\.?[0-9]+)\s*(%?)$")


class TargetError(ValueError):
    """A --target that does not parse; the message says what is expected."""


@dataclass(frozen=True)
class Target:
    """One target: the task's score compared with `op` to `value`; `<` and `<=` mean lower is better."""

    task: str
    op: str
    value: float

    def __str__(self) -> str:
        return f"{self.task}{self.op}{self.value:g}"

    @property
    def lower_is_better(self) -> bool:
        return self.op in ("<", "<=")

    def met_by(self, value: float | None) -> bool:
        return value is not None and COMPARATORS[self.op](value, self.value)


def target_task(name: str) -> str:
    """The ledger's name for the task a target names: the catalogue's key, else `name` as written."""
    try:
        return task_key(name)
    except ValueError:
        return name


def parse_targets(text: str) -> list[Target]:
    """`"gsm8k>=0.60"` or several comma-separated (`"gsm8k>=0.6, ifeval>70%"`) as Targets."""
    items = [item.strip() for item in (text or "").split(",")]
    if not any(items):
        raise TargetError('the target is empty: write it as TASK>=VALUE, e.g. --target "gsm8k>=0.60"')
    targets = []
    for item in items:
        match = TARGET_PATTERN.match(item)
        if not match:
            raise TargetError(f"cannot read the target {item!r}: write TASK then one of >=, >, <=, < then a "
                              'number, e.g. "gsm8k>=0.60" or "gsm8k>=60%"; separate several with commas')
        name, op, number, percent = match.groups()
        value = float(number) / (100 if percent else 1)
        if percent and value > 1:
            raise TargetError(f"the target {item!r} asks for more than 100%")
        task = target_task(name)
        if any(t.task == task for t in targets):
            raise TargetError(f"the task {task!r} has two targets; give each task one")
        targets.append(Target(task, op, value))
    return targets


def targets_of(experiment: dict) -> list[Target]:
    """The targets recorded on an experiment row; [] when it has none or they do not parse."""
    try:
        return parse_targets(experiment["target"]) if experiment.get("target") else []
    except TargetError:
        return []
