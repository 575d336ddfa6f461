"""Targets: parsing, comparing, and naming their task the way the evaluation records it."""

from __future__ import annotations

import pytest

from evals.catalogue import resolve_task
from tools.targets import Target, TargetError, parse_targets, targets_of


def test_parse_one_and_several_targets():
    assert parse_targets("gsm8k>=0.60") == [Target("gsm8k", ">=", 0.6)]
    assert parse_targets(" gsm8k >= 60% , ifeval>0.5,perplexity<12") == [
        Target("gsm8k", ">=", 0.6), Target("ifeval", ">", 0.5), Target("perplexity", "<", 12.0)]
    [target] = parse_targets("mmlu|0<=0.9")
    assert (target.task, target.lower_is_better, str(target)) == ("mmlu|0", True, "mmlu|0<=0.9")


def test_target_tasks_are_the_names_the_evaluation_records():
    # run_evaluation records resolve_task(name)["key"] as the eval row's task
    assert parse_targets("GSM-8K>=0.6") == parse_targets("GSM8K>=0.6") == [Target(resolve_task("gsm8k")["key"], ">=",
                                                                                  0.6)]
    assert str(parse_targets("GSM-8K>=0.6")[0]) == "gsm8k>=0.6"
    tasks = [t.task for t in parse_targets("ARC-C>0.5, mmlu|5>=0.4, tiny_sentiment>=0.6, loss<=1.2, custom:me/qa>0.3")]
    assert tasks == ["arc:challenge", "mmlu", "tiny_sentiment", "loss", "custom:me/qa"]


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("gsm8k=0.6", "cannot read the target 'gsm8k=0.6'"),
    ("gsm8k>=high", "then a number"),
    (">=0.6", "write TASK then"),
    ("gsm8k>=150%", "more than 100%"),
    ("gsm8k>=0.5,gsm8k>=0.6", "two targets"),
    ("GSM-8K>=0.5,gsm8k>=0.6", "the task 'gsm8k' has two targets"),
])
def test_bad_targets_say_what_is_expected(text, message):
    with pytest.raises(TargetError, match=message):
        parse_targets(text)


def test_target_comparators():
    assert Target("t", ">=", 0.6).met_by(0.6) and not Target("t", ">", 0.6).met_by(0.6)
    assert Target("t", "<", 2).met_by(1.5) and not Target("t", "<=", 2).met_by(2.5)
    assert not Target("t", ">=", 0.6).met_by(None)


def test_an_experiments_targets():
    assert targets_of({"target": "GSM-8K>=0.6, loss<1"}) == [Target("gsm8k", ">=", 0.6), Target("loss", "<", 1.0)]
    assert targets_of({"target": None}) == targets_of({"target": "not a target"}) == []
