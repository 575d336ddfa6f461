"""reformat_dataset: each source shape into each TRL format, cleaning, splitting, the ledger record,
and the push to the fake Hub (repo creation, dataset card, commit, token handling)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.fakes.hub_api import FIXTURE_USER, GRANTED_TOKEN, NOISY, PREFERENCE, SHAREGPT, hub_settings
from tools.context import ToolContext
from tools.data.formats import extract_answer
from tools.data.reformat import ReformatDatasetTool
from tools.errors import ToolError

ALPACA = [
    {"instruction": "Name a primary colour.", "input": "", "output": "Red."},
    {"instruction": "Summarise the text.", "input": "Cats sleep a lot.", "output": "Cats nap often."},
    {"instruction": "Name a primary colour.", "input": "", "output": "Red."},  # exact duplicate
    {"instruction": "Translate to French.", "input": "cat", "output": ""},  # empty reply
]
GSM8K = [
    {"question": "Natalia sold 48 clips in April and half as many in May. How many in total?",
     "answer": "In May she sold 48/2 = <<48/2=24>>24 clips.\nIn total 48+24 = <<48+24=72>>72.\n#### 72"},
    {"question": "A farm has 1,000 hens and buys 500 more. How many hens?", "answer": "1000+500=1500\n#### 1,500"},
    {"question": "What is 2+2?", "answer": "The answer is \\boxed{4}."},
]


def make_ctx(server, settings, ledger, token=None):
    return ToolContext(hub_settings(server, settings, token=token), ledger, jobs=None, goal="test reformat")


def reformat(server, settings, ledger, token=None, **kwargs):
    ctx = make_ctx(server, settings, ledger, token)
    return ReformatDatasetTool(ctx)(**kwargs), ctx


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_sharegpt_from_the_hub_to_messages_and_the_ledger_record(hub, settings, ledger):
    out, ctx = reformat(hub, settings, ledger, dataset=SHAREGPT, target_format="messages")

    assert [r.path for r in hub.requests][-1] == "/rows"
    folder = settings.data_dir / "datasets" / "sharegpt-chat-messages"
    assert out["path"] == str(folder) and out["splits"] == {"train": 3} and out["rows"] == 3
    assert (out["format"], out["source_shape"], out["columns"], out["hub_id"]) == (
        "messages", "sharegpt", {"conversations": "conversations"}, None)
    rows = read_jsonl(folder / "train.jsonl")
    assert [m["role"] for m in rows[0]["messages"]] == ["system", "user", "assistant"]
    assert rows[0]["messages"][1] == {"role": "user", "content": "What does gradient checkpointing do?"}
    assert [m["role"] for m in rows[1]["messages"]] == ["user", "assistant"] * 6
    assert rows[2] == {"messages": [{"role": "user", "content": "Translate 'good morning' to French."},
                                    {"role": "assistant", "content": "Bonjour."}]}
    assert out["sample"].startswith("<<<UNTRUSTED DATA from dataset:ml-intern-fixtures/sharegpt-chat")
    assert "Translate" not in out["sample"]  # only the first 2 rows

    record = ledger.get_dataset(out["dataset_id"], user="local")
    assert (record["source"], record["path"], record["format"], record["rows"], record["hub_id"]) == (
        SHAREGPT, str(folder), "messages", 3, None)
    assert record["experiment_id"] == ctx.experiment_id is not None
    transform = json.loads(record["transform_json"])
    assert transform["source"] == {"dataset": SHAREGPT, "source": "hub", "config": "default", "split": "train",
                                   "rows_read": 3, "rows_total": 3, "pages": [[0, 3]]}
    assert transform["speaker_map"] == {"system": "system", "human": "user", "gpt": "assistant"}
    assert (transform["target_format"], transform["seed"], transform["dropped"]) == ("messages", 42, {})


def test_sharegpt_to_prompt_completion_with_a_system_prompt(hub, settings, ledger):
    out, _ = reformat(hub, settings, ledger, dataset=SHAREGPT, target_format="prompt-completion",
                      system_prompt="Answer briefly.")
    rows = read_jsonl(settings.data_dir / "datasets" / "sharegpt-chat-prompt-completion" / "train.jsonl")
    assert rows[0]["prompt"] == [{"role": "system", "content": "Answer briefly."},
                                 {"role": "user", "content": "What does gradient checkpointing do?"}]
    assert rows[2] == {"prompt": [{"role": "system", "content": "Answer briefly."},
                                  {"role": "user", "content": "Translate 'good morning' to French."}],
                       "completion": [{"role": "assistant", "content": "Bonjour."}]}
    assert len(rows[1]["prompt"]) == 12 and rows[1]["completion"] == [{"role": "assistant", "content": "12"}]


def test_alpaca_to_messages_drops_empty_and_duplicate_rows(hub, settings, ledger, tmp_path):
    path = write_jsonl(tmp_path / "alpaca.jsonl", ALPACA)
    out, _ = reformat(hub, settings, ledger, dataset=str(path), target_format="messages", system_prompt="Be exact.")
    assert hub.requests == []
    assert out["source_shape"] == "alpaca"
    assert out["columns"] == {"prompt": "instruction", "completion": "output", "input": "input"}
    assert out["dropped"] == {"empty": 1, "duplicates": 1}
    assert read_jsonl(settings.data_dir / "datasets" / "alpaca-messages" / "train.jsonl") == [
        {"messages": [{"role": "system", "content": "Be exact."}, {"role": "user", "content": "Name a primary colour."},
                      {"role": "assistant", "content": "Red."}]},
        {"messages": [{"role": "system", "content": "Be exact."},
                      {"role": "user", "content": "Summarise the text.\n\nCats sleep a lot."},
                      {"role": "assistant", "content": "Cats nap often."}]},
    ]


def test_question_answer_to_flat_prompt_completion_with_min_chars(hub, settings, ledger, tmp_path):
    rows = [{"question": "What is the capital of France?", "answer": "Paris"},
            {"question": "2+2?", "answer": "4"},  # too short for filter_min_chars=5
            {"question": "Largest planet?", "answer": "Jupiter"}]
    path = write_jsonl(tmp_path / "qa" / "train.jsonl", rows)
    out, _ = reformat(hub, settings, ledger, dataset=str(path.parent), target_format="prompt-completion",
                      filter_min_chars=5)
    assert out["source_shape"] == "question-answer" and out["dropped"] == {"too_short": 1}
    assert out["path"].endswith("/datasets/qa-prompt-completion")  # named after the folder, not "train"
    assert read_jsonl(settings.data_dir / "datasets" / "qa-prompt-completion" / "train.jsonl") == [
        {"prompt": "What is the capital of France?", "completion": "Paris"},
        {"prompt": "Largest planet?", "completion": "Jupiter"}]


def test_gsm8k_style_to_prompt_only_extracts_the_final_answer(hub, settings, ledger, tmp_path):
    path = write_jsonl(tmp_path / "gsm8k.jsonl", GSM8K)
    out, _ = reformat(hub, settings, ledger, dataset=str(path), target_format="prompt-only")
    rows = read_jsonl(settings.data_dir / "datasets" / "gsm8k-prompt-only" / "train.jsonl")
    assert rows == [{"prompt": GSM8K[0]["question"], "answer": "72"},
                    {"prompt": GSM8K[1]["question"], "answer": "1500"},
                    {"prompt": "What is 2+2?", "answer": "4"}]
    transform = json.loads(ledger.get_dataset(out["dataset_id"], user="local")["transform_json"])
    assert transform["answer_extracted_from"] == {"#### N": 2, "\\boxed{}": 1}

    out, _ = reformat(hub, settings, ledger, dataset=str(path), target_format="prompt-only",
                      system_prompt="Think, then end with '#### <number>'.")
    first = read_jsonl(settings.data_dir / "datasets" / "gsm8k-prompt-only-2" / "train.jsonl")[0]
    assert first == {"prompt": [{"role": "system", "content": "Think, then end with '#### <number>'."},
                                {"role": "user", "content": GSM8K[0]["question"]}], "answer": "72"}

    out, _ = reformat(hub, settings, ledger, dataset=str(path), target_format="messages")
    kept = read_jsonl(settings.data_dir / "datasets" / "gsm8k-messages" / "train.jsonl")[0]["messages"][1]
    # calculator annotations removed, the "#### 72" final-answer line kept for SFT
    assert kept == {"role": "assistant", "content": "In May she sold 48/2 = 24 clips.\nIn total 48+24 = 72.\n#### 72"}
    assert out["fixed"] == {"annotations_stripped": 1}


def test_extract_answer():
    assert extract_answer("so 3\n#### -1,234") == ("-1234", "#### N")
    assert extract_answer("#### 3/4 cups") == ("3/4 cups", "#### N")
    assert extract_answer("x = \\boxed{\\frac{1}{2}} then \\boxed{7}") == ("7", "\\boxed{}")
    assert extract_answer("\\boxed{\\frac{1}{2}}") == ("\\frac{1}{2}", "\\boxed{}")
    assert extract_answer(" Paris ") == ("Paris", "whole completion")


def test_preference_pairs_from_the_hub(hub, settings, ledger):
    out, _ = reformat(hub, settings, ledger, dataset=PREFERENCE, target_format="preference", test_size=1)
    assert out["columns"] == {"chosen": "chosen", "rejected": "rejected", "prompt": "prompt"}
    folder = settings.data_dir / "datasets" / "preference-pairs-preference"
    rows = read_jsonl(folder / "train.jsonl") + read_jsonl(folder / "test.jsonl")
    assert sorted(rows, key=lambda r: r["prompt"]) == [
        {"prompt": "What is 17 * 3?", "chosen": "17 * 3 = 51.", "rejected": "17 * 3 = 41."},
        {"prompt": "Write a haiku about autumn.",
         "chosen": "Crisp leaves drift and fall\nthe maple lets go of red\nwind carries it home",
         "rejected": "Autumn is a season."}]
    assert out["splits"] == {"train": 1, "test": 1}

    out, _ = reformat(hub, settings, ledger, dataset=PREFERENCE, config="conversational",
                      target_format="preference", system_prompt="Be kind.")
    row = read_jsonl(settings.data_dir / "datasets" / "preference-pairs-preference-2" / "train.jsonl")[1]
    assert "prompt" not in row  # implicit prompt kept implicit
    assert row["chosen"][0] == row["rejected"][0] == {"role": "system", "content": "Be kind."}
    assert row["chosen"][1:] == [{"role": "user", "content": "What is 17 * 3?"},
                                 {"role": "assistant", "content": "17 * 3 = 51."}]


def test_identical_preference_pairs_are_dropped(hub, settings, ledger, tmp_path):
    path = write_jsonl(tmp_path / "prefs.jsonl", [{"prompt": "p", "chosen": "same", "rejected": "same"},
                                                  {"prompt": "q", "chosen": "good", "rejected": "bad"}])
    out, _ = reformat(hub, settings, ledger, dataset=str(path), target_format="preference")
    assert out["rows"] == 1 and out["dropped"] == {"identical_pair": 1}


def test_classlabel_rows_paginated_cleaned_and_split(hub, settings, ledger):
    out, _ = reformat(hub, settings, ledger, dataset=NOISY, target_format="prompt-completion",
                      column_map={"prompt": "text", "completion": "label"}, filter_min_chars=3, test_size=0.1)
    assert [(r.query["offset"], r.query["length"]) for r in hub.requests if r.path == "/rows"] == [
        (["0"], ["100"]), (["100"], ["100"])]
    # 150 rows - 5 empty - 2 "ok" - 4 exact copies (lowercased, whitespace collapsed: the 2 upper-case
    # variants differ in punctuation and stay)
    assert out["dropped"] == {"empty": 5, "too_short": 2, "duplicates": 4}
    assert out["rows"] == 139 and out["splits"] == {"train": 125, "test": 14}
    folder = settings.data_dir / "datasets" / "noisy-reviews-prompt-completion"
    train, test = read_jsonl(folder / "train.jsonl"), read_jsonl(folder / "test.jsonl")
    assert {r["completion"] for r in train + test} == {"positive", "negative"}  # ClassLabel names, not 0/1
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}

    again, _ = reformat(hub, settings, ledger, dataset=NOISY, target_format="prompt-completion",
                        column_map={"prompt": "text", "completion": "label"}, filter_min_chars=3, test_size=0.1)
    folder2 = settings.data_dir / "datasets" / "noisy-reviews-prompt-completion-2"
    assert again["path"] == str(folder2) and read_jsonl(folder2 / "test.jsonl") == test  # seeded split


def test_max_rows_reads_only_that_many(hub, settings, ledger):
    out, _ = reformat(hub, settings, ledger, dataset=NOISY, target_format="messages",
                      column_map={"prompt": "text", "completion": "label"}, max_rows=40)
    assert [(r.query["offset"], r.query["length"]) for r in hub.requests if r.path == "/rows"] == [(["0"], ["40"])]
    assert "Read 40 of 150 rows." in out["notes"]
    assert json.loads(ledger.get_dataset(out["dataset_id"], user="local")["transform_json"])["max_rows"] == 40


def test_push_to_hub_creates_a_private_repo_with_a_card_and_sends_the_token_only_as_a_header(
        hub, settings, ledger, tmp_path):
    path = write_jsonl(tmp_path / "gsm8k.jsonl", GSM8K)
    out, _ = reformat(hub, settings, ledger, token=GRANTED_TOKEN, dataset=str(path), target_format="prompt-only",
                      test_size=1, push_to_hub=True, hub_dataset_id="gsm8k-grpo")
    repo_id = f"{FIXTURE_USER}/gsm8k-grpo"
    assert out["hub_id"] == repo_id and ledger.get_dataset(out["dataset_id"], user="local")["hub_id"] == repo_id
    api = [(r.method, r.path) for r in hub.requests]
    assert api == [("GET", "/api/whoami-v2"), ("POST", "/api/repos/create"), ("POST", "/api/validate-yaml"),
                   ("POST", f"/api/datasets/{repo_id}/preupload/main"),
                   ("POST", f"/api/datasets/{repo_id}/commit/main")]
    assert hub.requests[1].json() == {"name": "gsm8k-grpo", "organization": FIXTURE_USER, "visibility": "private",
                                      "type": "dataset"}
    repo = hub.state["repos"][repo_id]
    assert repo["type"] == "dataset" and repo["private"] is True
    assert sorted(repo["files"]) == ["README.md", "data/test.jsonl", "data/train.jsonl"]
    folder = settings.data_dir / "datasets" / "gsm8k-grpo"
    assert repo["files"]["data/train.jsonl"] == (folder / "train.jsonl").read_bytes()
    assert repo["commits"] == ["Add prompt-only data converted from gsm8k.jsonl"]

    card = repo["files"]["README.md"].decode()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["configs"] == [{"config_name": "default", "data_files": [
        {"split": "train", "path": "data/train.jsonl"}, {"split": "test", "path": "data/test.jsonl"}]}]
    assert "## Source" in card and "Converted from the local file `gsm8k.jsonl`: 3 rows read" in card
    assert str(tmp_path) not in card  # local paths stay private
    assert '"target_format": "prompt-only"' in card and '"#### N": 2' in card

    for request in hub.requests:
        assert GRANTED_TOKEN.encode() not in request.body
        assert GRANTED_TOKEN not in request.path + json.dumps(request.query)
        assert {k for k, v in request.headers.items() if GRANTED_TOKEN in v} <= {"authorization"}
        assert request.headers.get("authorization") in (f"Bearer {GRANTED_TOKEN}", None)
    assert GRANTED_TOKEN not in json.dumps(ledger.get_dataset(out["dataset_id"], user="local")) + json.dumps(out)


def test_push_card_names_a_hub_source(hub, settings, ledger):
    settings = settings.with_(hf_namespace="my-org")
    out, _ = reformat(hub, settings, ledger, token=GRANTED_TOKEN, dataset=SHAREGPT, target_format="messages",
                      push_to_hub=True)
    assert out["hub_id"] == "my-org/sharegpt-chat-messages"
    assert "/api/whoami-v2" not in [r.path for r in hub.requests]  # namespace from settings
    card = hub.state["repos"]["my-org/sharegpt-chat-messages"]["files"]["README.md"].decode()
    assert f"[{SHAREGPT}]({hub.url}/datasets/{SHAREGPT}) (config `default`, split `train`)" in card
    assert yaml.safe_load(card.split("---")[1])["source_datasets"] == [SHAREGPT]


def test_push_to_an_existing_repo_keeps_the_local_copy(hub, settings, ledger):
    reformat(hub, settings, ledger, token=GRANTED_TOKEN, dataset=SHAREGPT, target_format="messages",
             push_to_hub=True, hub_dataset_id="taken")
    with pytest.raises(ToolError, match=r"Saved 3 rows to .*taken-2 \(ledger dataset 2\), but the push failed: "
                                        r"The Hub dataset fixture-user/taken already exists"):
        reformat(hub, settings, ledger, token=GRANTED_TOKEN, dataset=SHAREGPT, target_format="messages",
                 push_to_hub=True, hub_dataset_id="taken")
    second = ledger.get_dataset(2, user="local")
    assert second["hub_id"] is None and second["path"].endswith("taken-2")


def test_push_without_a_token_is_refused_before_any_work(hub, settings, ledger):
    with pytest.raises(ToolError, match="push_to_hub needs an HF token"):
        reformat(hub, settings, ledger, dataset=SHAREGPT, target_format="messages", push_to_hub=True)
    assert hub.requests == [] and not (settings.data_dir / "datasets").exists()


def test_bad_input_names_the_problem(hub, settings, ledger, tmp_path):
    qa = str(write_jsonl(tmp_path / "qa.jsonl", [{"question": "q?", "answer": "a", "topic": "t"}]))
    text = str(write_jsonl(tmp_path / "text.jsonl", [{"text": "great film", "label": 1}]))
    with pytest.raises(ToolError, match="Unknown target_format 'dpo'; supported: messages, prompt-completion, "
                                        "prompt-only, preference"):
        reformat(hub, settings, ledger, dataset=qa, target_format="dpo")
    with pytest.raises(ToolError, match=r"Column 'query' \(mapped to prompt\) is not in the dataset; available "
                                        "columns: answer, question, topic"):
        reformat(hub, settings, ledger, dataset=qa, target_format="messages", column_map={"prompt": "query"})
    with pytest.raises(ToolError, match="Unknown column_map role"):
        reformat(hub, settings, ledger, dataset=qa, target_format="messages", column_map={"reply": "answer"})
    with pytest.raises(ToolError, match="No prompt column found .*available columns: label, text"):
        reformat(hub, settings, ledger, dataset=text, target_format="messages")
    with pytest.raises(ToolError, match="needs a 'chosen' column; available columns: answer, question, topic"):
        reformat(hub, settings, ledger, dataset=qa, target_format="preference")
    with pytest.raises(ToolError, match="looks like preference data"):
        reformat(hub, settings, ledger, dataset=PREFERENCE, target_format="messages")
    with pytest.raises(ToolError, match="test_size=5 leaves no train or no test rows out of 1"):
        reformat(hub, settings, ledger, dataset=qa, target_format="messages", test_size=5)
    assert ledger.get_dataset(1, user="local") is None


def test_sharegpt_rows_with_unknown_speakers_are_dropped_and_named(hub, settings, ledger, tmp_path):
    path = write_jsonl(tmp_path / "chat.jsonl", [
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]},
        {"conversations": [{"from": "narrator", "value": "Once"}, {"from": "gpt", "value": "upon"}]},
        {"conversations": [{"from": "human", "value": "Only a question"}]}])
    out, _ = reformat(hub, settings, ledger, dataset=str(path), target_format="messages")
    assert out["rows"] == 1 and out["dropped"] == {"unknown_speaker": 1, "empty": 1}
    assert out["notes"] == ["1 rows had turns from speakers other than human, user, gpt, assistant, chatgpt, "
                            "bard, bing, model, system, tool, function, observation and were dropped."]
    with pytest.raises(ToolError, match="hub_dataset_id 'my data' is not a repo id"):
        reformat(hub, settings, ledger, token=GRANTED_TOKEN, dataset=str(path), target_format="messages",
                 push_to_hub=True, hub_dataset_id="my data")


def test_sft_on_chosen_replies_through_column_map(hub, settings, ledger):
    out, _ = reformat(hub, settings, ledger, dataset=PREFERENCE, target_format="prompt-completion",
                      column_map={"prompt": "prompt", "completion": "chosen"})
    assert out["source_shape"] == "question-answer"
    rows = read_jsonl(settings.data_dir / "datasets" / "preference-pairs-prompt-completion" / "train.jsonl")
    assert rows[1] == {"prompt": "What is 17 * 3?", "completion": "17 * 3 = 51."}


def test_tool_validates_under_smolagents(hub, settings, ledger):
    tool = ReformatDatasetTool(make_ctx(hub, settings, ledger))
    assert tool.name == "reformat_dataset" and tool.output_type == "object"
    assert list(tool.inputs) == ["dataset", "target_format", "column_map", "system_prompt", "filter_min_chars",
                                 "max_rows", "test_size", "split", "push_to_hub", "hub_dataset_id", "config",
                                 "decontaminate", "allow_eval_split"]


# Issue 13: evaluation splits, annotations, turn order, implicit prompts, capitalised columns, multiple choice.
# Fixtures in tests/fixtures/data/ (real column names and quirks) and the fake Hub's openai/gsm8k
# (tests/fixtures/hub/viewer_gsm8k.json: GSM8K's shape, config main, train and test).
DATA = Path(__file__).parent.parent / "fixtures" / "data"


def test_an_evaluation_split_is_refused_unless_overridden_and_the_override_is_recorded(hub, settings, ledger):
    with pytest.raises(ToolError, match=r"Refused: openai/gsm8k split 'test' is evaluation data of the benchmark "
                                        r"'gsm8k' \(evals/catalogue.py.*allow_eval_split=True"):
        reformat(hub, settings, ledger, dataset="openai/gsm8k", config="main", split="test", target_format="messages")
    with pytest.raises(ToolError, match=r"Refused: split 'test' of ml-intern-fixtures/preference-pairs is named as "
                                        "held-out test data"):
        reformat(hub, settings, ledger, dataset=PREFERENCE, split="test", target_format="preference")
    assert ledger.get_dataset(1, user="local") is None and not (settings.data_dir / "datasets").exists()

    out, _ = reformat(hub, settings, ledger, dataset="openai/gsm8k", config="main", split="test",
                      target_format="messages", allow_eval_split=True)
    assert out["rows"] == 20 and any("allow_eval_split=True, recorded in the ledger" in n for n in out["notes"])
    transform = json.loads(ledger.get_dataset(out["dataset_id"], user="local")["transform_json"])
    assert transform["eval_split_override"] == {
        "allow_eval_split": True, "reason": "openai/gsm8k split 'test' is evaluation data of the benchmark 'gsm8k' "
                                            "(evals/catalogue.py: it evaluates on split 'test')"}
    train, _ = reformat(hub, settings, ledger, dataset="openai/gsm8k", config="main", target_format="messages")
    assert "eval_split_override" not in json.loads(ledger.get_dataset(train["dataset_id"],
                                                                      user="local")["transform_json"])


def test_gsm8k_annotations_are_stripped_and_the_final_answer_line_fits_the_target(hub, settings, ledger):
    out, _ = reformat(hub, settings, ledger, dataset="openai/gsm8k", config="main", target_format="prompt-completion")
    rows = read_jsonl(Path(out["path"]) / "train.jsonl")
    assert out["fixed"] == {"annotations_stripped": 24} and not any("<<" in r["completion"] for r in rows)
    assert rows[0]["completion"] == ("Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether "
                                     "in April and May.\n#### 72")
    grpo, _ = reformat(hub, settings, ledger, dataset="openai/gsm8k", config="main", target_format="prompt-only")
    first = read_jsonl(Path(grpo["path"]) / "train.jsonl")[0]
    assert first == {"prompt": rows[0]["prompt"], "answer": "72"}  # the answer column, no solution text


def test_sharegpt_turn_order_is_fixed_or_the_row_dropped_with_counts(hub, settings, ledger):
    out, _ = reformat(hub, settings, ledger, dataset=str(DATA / "sharegpt_malformed.jsonl"), target_format="messages")
    assert out["fixed"] == {"leading_assistant_dropped": 1, "cut_at_repeated_role": 1, "cut_at_empty_turn": 1}
    # (human, human, gpt), an empty first human turn, and (gpt, gpt) leave nothing trainable
    assert out["dropped"] == {"bad_turn_order": 3} and out["rows"] == 5
    rows = read_jsonl(Path(out["path"]) / "train.jsonl")
    for row in rows:
        spoken = [m["role"] for m in row["messages"] if m["role"] != "system"]
        assert spoken[0] == "user" and spoken[-1] == "assistant" and all(m["content"].strip() for m in row["messages"])
        assert all(a != b for a, b in zip(spoken, spoken[1:], strict=False))
    assert rows[1]["messages"][0] == {"role": "user", "content": "Explain what a tokenizer does."}  # greeting dropped
    assert [m["content"] for m in rows[3]["messages"]] == ["Translate 'thank you' to German.", "Danke."]
    assert "1 conversations opened with the assistant: those opening turns were dropped." in out["notes"]
    transform = json.loads(ledger.get_dataset(out["dataset_id"], user="local")["transform_json"])
    assert transform["fixed"] == out["fixed"] and transform["dropped"] == out["dropped"]


def test_implicit_prompt_preference_pairs_are_kept_as_they_are(hub, settings, ledger):
    source = read_jsonl(DATA / "ultrafeedback_implicit.jsonl")
    out, _ = reformat(hub, settings, ledger, dataset=str(DATA / "ultrafeedback_implicit.jsonl"),
                      target_format="preference")
    rows = read_jsonl(Path(out["path"]) / "train.jsonl")
    assert rows == [{"chosen": r["chosen"], "rejected": r["rejected"]} for r in source]  # no prompt added twice
    assert out["fixed"] == {"implicit_prompt_kept": 4}
    assert any("the 'prompt' column not added" in n for n in out["notes"])
    explicit, _ = reformat(hub, settings, ledger, dataset=PREFERENCE, target_format="preference")
    assert explicit["fixed"] == {} and read_jsonl(Path(explicit["path"]) / "train.jsonl")[1]["prompt"] == \
        "What is 17 * 3?"


def test_gpqa_capitalised_columns_become_shuffled_lettered_prompts_with_balanced_answers(hub, settings, ledger):
    source = read_jsonl(DATA / "gpqa_style.jsonl")
    out, _ = reformat(hub, settings, ledger, dataset=str(DATA / "gpqa_style.jsonl"), target_format="prompt-completion")
    assert out["source_shape"] == "multiple-choice"
    assert out["columns"] == {"prompt": "Question", "correct": "Correct Answer",
                              "incorrect": ["Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3"]}
    record = out["multiple_choice"]
    assert record["answer_positions_before"] == {"A": 8}  # the right answer always in one column
    assert record["answer_positions_after"] == {"A": 2, "B": 2, "C": 2, "D": 2}
    rows = read_jsonl(Path(out["path"]) / "train.jsonl")
    for row, src in zip(rows, source, strict=True):
        question, options, instruction = row["prompt"].split("\n\n")
        assert question == src["Question"] and instruction == "Answer with the letter of the correct option."
        lettered = dict(line.split(". ", 1) for line in options.splitlines())
        assert list(lettered) == ["A", "B", "C", "D"]
        assert lettered[row["completion"]] == src["Correct Answer"]
        assert sorted(lettered.values()) == sorted([src["Correct Answer"]] + [src[f"Incorrect Answer {i}"]
                                                                             for i in (1, 2, 3)])
    again, _ = reformat(hub, settings, ledger, dataset=str(DATA / "gpqa_style.jsonl"),
                        target_format="prompt-completion")
    assert read_jsonl(Path(again["path"]) / "train.jsonl") == rows  # seeded
    transform = json.loads(ledger.get_dataset(out["dataset_id"], user="local")["transform_json"])
    assert transform["multiple_choice"]["seed"] == 42


def test_mmlu_choices_and_index_answers_to_messages_and_prompt_only(hub, settings, ledger):
    source = read_jsonl(DATA / "mmlu_style.jsonl")
    out, _ = reformat(hub, settings, ledger, dataset=str(DATA / "mmlu_style.jsonl"), target_format="messages")
    assert out["columns"] == {"prompt": "question", "choices": "choices", "completion": "answer"}
    assert sorted(out["multiple_choice"]["answer_positions_after"].values()) == [2, 2, 2, 2]
    for row, src in zip(read_jsonl(Path(out["path"]) / "train.jsonl"), source, strict=True):
        user, assistant = row["messages"]
        options = dict(line.split(". ", 1) for line in user["content"].split("\n\n")[1].splitlines())
        assert options[assistant["content"]] == src["choices"][src["answer"]]
    grpo, _ = reformat(hub, settings, ledger, dataset=str(DATA / "mmlu_style.jsonl"), target_format="prompt-only")
    assert {r["answer"] for r in read_jsonl(Path(grpo["path"]) / "train.jsonl")} <= set("ABCD")
    with pytest.raises(ToolError, match="target_format='preference' needs a 'chosen' column"):
        reformat(hub, settings, ledger, dataset=str(DATA / "gpqa_style.jsonl"), target_format="preference")


def test_column_names_are_matched_case_insensitively(hub, settings, ledger, tmp_path):
    path = write_jsonl(tmp_path / "caps.jsonl", [{"Question": "What is the capital of France?", "Answer": "Paris"},
                                                 {"Question": "Largest planet?", "Answer": "Jupiter"}])
    out, _ = reformat(hub, settings, ledger, dataset=str(path), target_format="prompt-completion")
    assert out["columns"] == {"prompt": "Question", "completion": "Answer"}
    assert read_jsonl(Path(out["path"]) / "train.jsonl")[1] == {"prompt": "Largest planet?", "completion": "Jupiter"}


def test_decontaminate_drops_only_the_copies_of_eval_items_and_says_how_many(hub, settings, ledger):
    mix = read_jsonl(DATA / "contamination_mix.jsonl")
    out, _ = reformat(hub, settings, ledger, dataset=str(DATA / "contamination_mix.jsonl"),
                      target_format="prompt-completion", decontaminate="gsm8k")
    assert out["rows"] == 22 and out["dropped"] == {"contaminated": 10}
    kept = {r["prompt"] for r in read_jsonl(Path(out["path"]) / "train.jsonl")}
    assert kept == {r["prompt"] for r in mix if r["origin"].endswith("template only")}
    assert any(n.startswith("Decontamination against gsm8k (test split, 20 items): dropped 10 rows")
               for n in out["notes"])
    record = json.loads(ledger.get_dataset(out["dataset_id"], user="local")["transform_json"])["decontamination"]
    assert (record["dataset"], record["split"], record["eval_column"]) == ("openai/gsm8k", "test", "question")
    assert record["levels"] == {"exact": 4, "normalised": 3, "fuzzy": 3} and record["rows_dropped"] == 10
    control, _ = reformat(hub, settings, ledger, dataset="openai/gsm8k", config="main", target_format="messages",
                          decontaminate="gsm8k")  # its own train split: nothing to drop
    assert control["rows"] == 24 and "contaminated" not in control["dropped"]
