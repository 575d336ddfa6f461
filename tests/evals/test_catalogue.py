"""The benchmark catalogue and custom tasks: names resolve to pinned lighteval 0.13 specs that exist."""

from __future__ import annotations

import importlib
import json

import pytest

from evals.catalogue import CATALOGUE, known_task_names, resolve_task, task_key
from evals.runner import main, run_lighteval
from evals.tasks import TASKS


@pytest.mark.parametrize("name, key, spec", [
    ("gsm8k", "gsm8k", "gsm8k|5"), ("GSM-8K", "gsm8k", "gsm8k|5"), ("gsm_8k", "gsm8k", "gsm8k|5"),
    ("gsm8k|0", "gsm8k|0", "gsm8k|0"), ("lighteval|gsm8k|5", "gsm8k", "gsm8k|5"),
    ("gpqa", "gpqa:diamond", "gpqa:diamond|0"), ("GPQA-Diamond", "gpqa:diamond", "gpqa:diamond|0"),
    ("MATH-500", "math_500", "math_500|0"), ("MMLU", "mmlu", "mmlu|5"), ("MMLU-Pro", "mmlu_pro", "mmlu_pro|0"),
    ("ARC", "arc:challenge", "arc:challenge|25"), ("arc-easy", "arc:easy", "arc:easy|25"),
    ("HellaSwag", "hellaswag", "hellaswag|10"), ("IFEval", "ifeval", "ifeval|0"),
    ("TruthfulQA", "truthfulqa:mc", "truthfulqa:mc|0"), ("tiny_sentiment", "tiny_sentiment", "tiny_sentiment|0"),
])
def test_plain_names_and_aliases_resolve_to_pinned_specs(name, key, spec):
    ref = resolve_task(name)
    assert (ref["key"], ref["spec"]) == (key, spec)
    assert ref["needs_hub"] is (ref["source"] == "catalogue")


def _metric_names(config) -> set[str]:
    names = set()
    for metric in config.metrics:
        names.update(metric.metric_name if isinstance(metric.metric_name, list) else [metric.metric_name])
    return names


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_catalogue_entries_match_the_installed_lighteval(name):
    """Task name, metric, dataset, subset and split as lighteval 0.13 defines them (no download needed)."""
    entry = CATALOGUE[name]
    configs = {c.name: c for c in importlib.import_module(f"lighteval.tasks.tasks.{entry['module']}").TASKS_TABLE}
    if entry.get("superset"):
        members = [c for n, c in configs.items() if n.startswith(f"{name}:")]
        assert len(members) == 57 and all(c.hf_repo == entry["hf_repo"] for c in members)
        config = members[0]
    else:
        config = configs[name]
        assert (config.hf_repo, config.hf_subset) == (entry["hf_repo"], entry["hf_subset"])
    assert entry["metric"] in _metric_names(config)
    assert list(config.evaluation_splits) == [entry["split"]]


def test_unknown_names_list_what_is_known():
    with pytest.raises(ValueError) as err:
        resolve_task("squad-9000")
    text = str(err.value)
    assert "tiny_sentiment, tiny_sentiment_gen" in text and "gsm8k" in text and "custom:" in text
    assert {"tiny_sentiment", "tiny_sentiment_gen", "gsm8k", "gpqa:diamond"} <= set(known_task_names())
    with pytest.raises(ValueError, match="task_options only apply to custom"):
        resolve_task("gsm8k", {"kind": "generative"})
    with pytest.raises(ValueError, match="cannot read task"):
        resolve_task("gsm8k|five")


def test_catalogue_tasks_are_refused_offline_with_a_clear_error(tmp_path, tiny_model_dir, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["--model", str(tiny_model_dir), "--task", "gsm8k", "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "downloads openai/gsm8k from the Hugging Face Hub" in err and "tiny_sentiment" in err


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_custom_task_options_are_validated(tmp_path):
    data = write_jsonl(tmp_path / "qa.jsonl", [{"q": "2+2?", "a": "#### 4"}])
    with pytest.raises(ValueError, match="kind 'multiple_choice' or 'generative'"):
        resolve_task(f"custom:{data}", {})
    with pytest.raises(ValueError, match=r"no column\(s\) \['question'\]; its columns are \['a', 'q'\]"):
        resolve_task(f"custom:{data}", {"kind": "generative", "answer": "a"})
    with pytest.raises(ValueError, match="unknown match"):
        resolve_task(f"custom:{data}", {"kind": "generative", "question": "q", "answer": "a", "match": "fuzzy"})
    with pytest.raises(ValueError, match="unknown task_options"):
        resolve_task(f"custom:{data}", {"kind": "generative", "colour": "red"})
    with pytest.raises(ValueError, match="does not exist"):
        resolve_task(f"custom:{tmp_path / 'missing.jsonl'}", {"kind": "generative"})
    hub = resolve_task("custom:me/my-eval", {"kind": "generative", "match": "number"})
    assert hub["needs_hub"] and hub["hf_repo"] == "me/my-eval" and hub["custom"]["max_new_tokens"] == 256
    ref = resolve_task(f"custom:{data}", {"kind": "generative", "question": "q", "answer": "a", "match": "number"})
    assert ref["key"] == f"custom:{data}" and ref["spec"].startswith("custom_") and ref["metric"] == "em"
    assert TASKS[ref["key"]]["data_path"] == data and not ref["needs_hub"]
    other = resolve_task(f"custom:{data}", {"kind": "generative", "question": "q", "answer": "a"})
    assert other["key"] == ref["key"] and other["spec"] != ref["spec"]  # another scoring, another spec
    assert task_key(f"custom:{data}") == ref["key"] and task_key("custom:me/my-eval") == "custom:me/my-eval"
    assert task_key("GSM-8K") == "gsm8k" and task_key("gsm8k|0") == "gsm8k|0"


def test_custom_tasks_run_on_the_tiny_model(tmp_path, tiny_model_dir):
    mc = write_jsonl(tmp_path / "mc.jsonl", [
        {"question": "Which word is positive?", "options": ["awful", "great", "dull"], "answer": "B"},
        {"question": "Which word is negative?", "options": ["lovely", "boring"], "answer": 1},
        {"question": "Which word is positive?", "options": {"text": ["pleasant", "tedious"]}, "answer": "pleasant"}])
    result = run_lighteval(str(tiny_model_dir), f"custom:{mc}", output_dir=str(tmp_path / "mc"),
                           task_options={"kind": "multiple_choice", "choices": "options"})
    assert result["source"] == "custom" and result["metric"] == "acc" and result["n_samples"] == 3
    assert result["task"] == f"custom:{mc}" and result["data_sha256"] and result["task_options"]["choices"] == "options"
    assert "--task-options" in result["command"]
    rows = [json.loads(line) for line in open(result["details_path"])]
    assert [r["gold"] for r in rows] == [1, 1, 0] and [len(r["choices"]) for r in rows] == [3, 2, 2]

    folder = tmp_path / "gsm"
    folder.mkdir()
    write_jsonl(folder / "test.jsonl", [
        {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3+4=7\n#### 7"},
        {"question": "What is 1,000 + 200?", "answer": "#### 1,200"}])
    result = run_lighteval(str(tiny_model_dir), f"custom:{folder}", output_dir=str(tmp_path / "gen"),
                           task_options={"kind": "generative", "match": "number", "max_new_tokens": 8})
    assert result["metric"] == "em" and result["n_samples"] == 2 and result["value"] == 0.0
    rows = [json.loads(line) for line in open(result["details_path"])]
    assert all("prediction" in r and r["metrics"]["em"] == 0.0 for r in rows)
