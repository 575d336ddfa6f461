"""evals/tasks.py: the task registry, the fixtures' prompts, answer extraction, custom task entries and the
lighteval configs they become (no model is run here)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from evals import fixture_data
from evals import tasks as tasks_module
from evals.tasks import (
    TASKS,
    CustomPrompt,
    _gold_index,
    custom_task,
    extract_answer,
    lighteval_config,
    task_spec,
    tiny_sentiment_gen_prompt,
    tiny_sentiment_prompt,
)

REPO = Path(__file__).resolve().parents[2]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_task_registry_is_a_plain_dict_and_cheap_to_import():
    assert {"tiny_sentiment", "tiny_sentiment_gen"} <= set(TASKS) and isinstance(TASKS, dict)
    assert task_spec("tiny_sentiment") == "tiny_sentiment|0"
    assert task_spec("tiny_sentiment_gen") == "tiny_sentiment_gen|0"
    code = ("import sys, evals.tasks, evals.runner, evals.catalogue, evals.compare, evals.integrity, evals.eval_job, "
            "tools.evaluation.evaluate, tools.evaluation.checks; "
            "print(sorted(m for m in ('lighteval', 'torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_prompt_matches_the_training_format():
    row = fixture_data.test_rows()[1]
    doc = tiny_sentiment_prompt(row, "tiny_sentiment")
    assert doc.query == fixture_data.prompt_for(row["review"])
    assert doc.choices == [" positive", " negative"]
    assert doc.choices[doc.gold_index] == " " + row["label"]
    train = fixture_data.train_rows()[0]
    assert train["prompt"].startswith("Review: ") and train["completion"] in doc.choices


def test_the_generative_fixture_asks_for_the_label_word():
    doc = tiny_sentiment_gen_prompt({"review": "A dull meal.", "label": "negative"})
    assert (doc.task_name, doc.query, doc.choices, doc.gold_index) == (
        "tiny_sentiment_gen", "Review: A dull meal.\nSentiment:", ["negative"], 0)


@pytest.mark.parametrize("text, match, expected", [
    ("Natalia sold 48/2 = 24 clips.\n#### 72", "number", "72"), ("#### 1,200", "number", "1200"),
    ("So the answer is 3.50 dollars.", "number", "3.5"), ("-7", "number", "-7"), ("no digits", "number", ""),
    ("  positive\nmore", "exact", "positive"), ("", "exact", ""), ("The answer is (C).", r"regex:\(([A-D])\)", "C"),
    ("answer: Paris", "regex:answer: \\w+", "answer: Paris"), ("nothing here", "regex:(\\d+)", ""),
])
def test_answer_extraction(text, match, expected):
    assert extract_answer(text, match) == expected


def test_an_unknown_match_mode_is_refused():
    with pytest.raises(ValueError, match="unknown match 'fuzzy': use 'exact', 'number' or 'regex:<pattern>'"):
        extract_answer("x", "fuzzy")


def test_multiple_choice_answers_as_index_letter_or_text():
    choices = ["red", "green", "blue"]
    assert [_gold_index(a, choices) for a in (1, "1", "B", "(b)", "green", "C.")] == [1, 1, 1, 1, 1, 2]
    for bad in ("D", 5, "purple", True):
        with pytest.raises(ValueError):
            _gold_index(bad, choices)


def test_custom_multiple_choice_rows_become_lettered_questions():
    prompt = CustomPrompt({"kind": "multiple_choice", "question": "q", "choices": "options", "answer": "a"})
    doc = prompt({"q": " Which is warm? ", "options": {"text": ["ice", "sun"]}, "a": "sun"}, "custom_x")
    assert doc.query == "Question: Which is warm?\nA. ice\nB. sun\nAnswer:"
    assert (doc.choices, doc.gold_index, doc.task_name) == ([" A", " B"], 1, "custom_x")
    assert prompt.__name__ == "custom_multiple_choice_prompt"
    generative = CustomPrompt({"kind": "generative", "question": "q", "answer": "a"})({"q": "2+2?", "a": 4})
    assert (generative.query, generative.choices, generative.gold_index) == ("Question: 2+2?\nAnswer:", ["4"], 0)


def test_custom_task_entries_for_local_data_and_hub_datasets(tmp_path):
    data = write_jsonl(tmp_path / "qa.jsonl", [{"q": "2+2?", "a": "#### 4"}])
    local = custom_task(str(data), {"kind": "Generative", "question": "q", "answer": "a", "match": "number"})
    assert local["key"] == f"custom:{data}" and local["data_path"] == data and "hf_repo" not in local
    assert local["options"] == {"kind": "generative", "question": "q", "answer": "a", "split": "test",
                                "subset": "default", "match": "number", "max_new_tokens": 256}
    assert (local["metric"], local["generation_size"], local["question_column"]) == ("em", 256, "q")
    again = custom_task(str(data), {"kind": "generative", "question": "q", "answer": "a", "match": "number"})
    assert again["config_name"] == local["config_name"]  # the same data and scoring: the same lighteval name
    exact = custom_task(str(data), {"kind": "generative", "question": "q", "answer": "a"})
    assert exact["config_name"] != local["config_name"] and exact["generation_size"] == 32

    hub = custom_task("me/mcq", {"kind": "multiple_choice", "subset": "main", "split": "validation"})
    assert (hub["hf_repo"], hub["hf_subset"], hub["split"], hub["metric"]) == ("me/mcq", "main", "validation", "acc")
    assert hub["options"]["choices"] == "choices" and "data_path" not in hub and hub["match"] is None


@pytest.mark.parametrize("source, options, message", [
    ("", {"kind": "generative"}, "custom: needs a source"),
    ("me/x", {"kind": "ranking"}, "kind 'multiple_choice' or 'generative', got 'ranking'"),
    ("me/x", {"kind": "generative", "colour": "red"}, r"unknown task_options \['colour'\]"),
    ("me/x", {"kind": "generative", "match": "regex:(unclosed"}, "missing \\)"),
    ("not a hub id", {"kind": "generative"}, "neither an existing local path nor a Hub id"),
    ("./missing.jsonl", {"kind": "generative"}, "does not exist"),
])
def test_custom_task_refuses_bad_options_and_sources(source, options, message):
    with pytest.raises((ValueError, re.error), match=message):
        custom_task(source, options)


def test_custom_task_data_needs_rows_and_the_named_columns(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match="has no rows"):
        custom_task(str(empty), {"kind": "generative"})
    data = write_jsonl(tmp_path / "mc.jsonl", [{"question": "q?", "options": ["a", "b"], "answer": 0}])
    with pytest.raises(ValueError, match=r"no column\(s\) \['choices'\]; its columns are \['answer', 'options'"):
        custom_task(str(data), {"kind": "multiple_choice"})


def test_lighteval_configs_of_fixture_and_custom_tasks(tmp_path, monkeypatch):
    fixture = lighteval_config("tiny_sentiment")
    assert (fixture.name, fixture.hf_repo, fixture.hf_subset) == ("tiny_sentiment", str(TASKS["tiny_sentiment"][
        "data_path"]), "default")
    assert [m.metric_name for m in fixture.metrics] == ["acc"] and list(fixture.evaluation_splits) == ["test"]
    generated = lighteval_config("tiny_sentiment_gen")
    assert (generated.generation_size, list(generated.stop_sequence)) == (4, ["\n"])

    data = write_jsonl(tmp_path / "qa.jsonl", [{"question": "2+2?", "answer": "#### 4"}])
    entry = custom_task(str(data), {"kind": "generative", "match": "number"})
    monkeypatch.setitem(TASKS, entry["key"], entry)
    config = lighteval_config(entry["key"], data_dir=tmp_path / "staged")
    assert config.hf_repo == str(tmp_path / "staged") and list(config.stop_sequence) == ["\nQuestion:", "\n\n\n"]
    hub = custom_task("me/mcq", {"kind": "multiple_choice"})
    monkeypatch.setitem(TASKS, hub["key"], hub)
    assert (lighteval_config(hub["key"]).hf_repo, lighteval_config(hub["key"]).hf_subset) == ("me/mcq", "default")


def test_the_match_metric_compares_extracted_answers(tmp_path, monkeypatch):
    from lighteval.models.model_output import ModelResponse

    data = write_jsonl(tmp_path / "qa.jsonl", [{"question": "2+2?", "answer": "#### 4"}])
    entry = custom_task(str(data), {"kind": "generative", "match": "number"})
    monkeypatch.setitem(TASKS, entry["key"], entry)
    [metric] = lighteval_config(entry["key"]).metrics
    doc = entry["prompt_function"]({"question": "2+2?", "answer": "so 2+2\n#### 4"}, entry["config_name"])
    scores = [metric.sample_level_fn.compute(doc=doc, model_response=ModelResponse(text=text))
              for text in (["It is 4."], ["4.0 apples"], ["5"], [])]
    assert metric.metric_name == "em" and scores == [1.0, 1.0, 0.0, 0.0]


def test_the_task_table_lighteval_imports_leaves_out_single_files(tmp_path, monkeypatch):
    single = custom_task(str(write_jsonl(tmp_path / "qa.jsonl", [{"question": "q", "answer": "a"}])),
                         {"kind": "generative"})
    folder = tmp_path / "folder"
    folder.mkdir()
    write_jsonl(folder / "test.jsonl", [{"question": "q", "answer": "a"}])
    split_files = custom_task(str(folder), {"kind": "generative"})
    for entry in (single, split_files):
        monkeypatch.setitem(TASKS, entry["key"], entry)
    names = [config.name for config in tasks_module.TASKS_TABLE]
    assert {"tiny_sentiment", "tiny_sentiment_gen", split_files["config_name"]} <= set(names)
    assert single["config_name"] not in names
    with pytest.raises(AttributeError, match="has no attribute 'NOT_A_TABLE'"):
        tasks_module.NOT_A_TABLE  # noqa: B018
