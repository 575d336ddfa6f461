"""generate_synthetic_data: schema errors per TRL format, de-duplication, eval contamination drops,
the ledger record, the push to the fake Hub (card, token handling) and the min_examples refusal."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from tests.fakes.hub_api import FIXTURE_USER, hub_settings
from tools.context import ToolContext
from tools.data.synthetic import GenerateSyntheticDataTool, deduplicate, validate
from tools.errors import ToolError

TOKEN = "hf_canary_synthetic_5e6f7a8b"
EVAL = Path(__file__).parents[2] / "evals" / "data" / "tiny_sentiment" / "test.jsonl"
SPEC = "Sentiment of short reviews with negation and sarcasm, answered with one word."


def chat(user: str, reply: str, **extra) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": reply}], **extra}


CLEAN = [
    chat("Review: Not bad at all, I would happily go back.\nSentiment?", "positive", edge_case="negation"),
    chat("Review: Oh great, another two-hour queue for cold fries.\nSentiment?", "negative", edge_case="sarcasm"),
    chat("Review: I can't say the staff were anything but kind.\nSentiment?", "positive", edge_case="negation"),
]


@pytest.fixture
def tool(settings, ledger):
    return GenerateSyntheticDataTool(ToolContext(settings, ledger, jobs=None, goal="test synthetic"))


def saved_rows(out) -> list[dict]:
    return [json.loads(line) for line in (Path(out["path"]) / "train.jsonl").read_text().splitlines()]


def test_messages_schema_errors_name_the_example_and_field(tool):
    bad = [
        CLEAN[0],
        {"messages": [{"role": "user", "content": "Hi"}]},  # no reply
        {"messages": [{"role": "human", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]},
        {"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "Hello"}]},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "system", "content": "Be brief."},
                      {"role": "assistant", "content": "Hello"}]},
        {"messages": "user: hi"},
        {"prompt": "Hi", "completion": "Hello"},
        ["not", "a", "dict"],
        chat("Hi there", "Hello", meta={"nested": True}),
    ]
    out = tool(spec=SPEC, examples=bad, target_format="messages")
    assert out["rows"] == 1 and out["dropped"] == {"invalid": 8, "duplicates": 0, "contaminated": 0}
    problems = out["problems"]
    assert problems[0] == "example 1: messages[-1].role must be 'assistant': the last turn is the reply to learn"
    assert problems[1] == "example 2: messages[0].role is 'human'; use system, user or assistant"
    assert problems[2] == "example 3: messages[0].content must be a non-empty string"
    assert problems[3] == "example 4: messages[1] is a system turn; only the first turn may be one"
    assert problems[4].startswith("example 5: messages must be a non-empty list")
    assert problems[5] == ("example 6: missing field(s) 'messages' for the messages format (its fields look like "
                           "the prompt-completion format)")
    assert problems[6] == "example 7: example must be a dict, got list"
    assert problems[7].startswith("example 8: field 'meta' must be a string, number")
    assert "no eval_dataset" in out["notes"][0].lower()


@pytest.mark.parametrize("fmt, example, problem", [
    ("prompt-completion", {"prompt": "Hi", "completion": ""}, "completion must be a non-empty string"),
    ("prompt-completion", {"prompt": "Hi"}, "missing field(s) 'completion' for the prompt-completion format"),
    ("prompt-completion", {"prompt": [{"role": "user", "content": "Hi"}], "completion": "Hello"},
     "prompt, completion must all be strings or all be turn lists"),
    ("prompt-completion", {"prompt": [{"role": "user", "content": "Hi"}],
                           "completion": [{"role": "user", "content": "Hello"}]},
     "completion turns must all be assistant turns"),
    ("prompt-completion", {"prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "x"}],
                           "completion": [{"role": "assistant", "content": "Hello"}]},
     "prompt ends with an assistant turn; the reply belongs in the completion"),
    ("prompt-completion", {"prompt": 3, "completion": "Hello"}, "prompt must be a string or a list"),
    ("prompt-completion", {"prompt": "Hi", "completion": "Hello", "answer": "x"},
     "answer is a prompt-only (GRPO) field; put the reply in completion"),
    ("preference", {"prompt": "Hi", "chosen": "Hello!", "rejected": "hello!"}, "chosen and rejected are the same"),
    ("preference", {"prompt": "Hi", "chosen": "Hello"}, "missing field(s) 'rejected' for the preference format"),
    ("prompt-only", {"prompt": "What is 2+2?", "answer": ""}, "answer must be a non-empty string or a number"),
    ("prompt-only", {"prompt": "What is 2+2?", "answer": True}, "answer must be a non-empty string or a number"),
    ("prompt-only", {"question": "What is 2+2?"}, "missing field(s) 'prompt' for the prompt-only format"),
])
def test_schema_errors_per_format(fmt, example, problem):
    problems, _ = validate(example, fmt)
    assert any(p.startswith(problem) for p in problems), problems


@pytest.mark.parametrize("fmt, example", [
    ("prompt-completion", {"prompt": "Hi", "completion": "Hello"}),
    ("prompt-completion", {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
                           "completion": [{"role": "assistant", "content": "Hello"}]}),
    ("preference", {"prompt": "Hi", "chosen": "Hello, how can I help?", "rejected": "Go away."}),
    ("prompt-only", {"prompt": "What is 2+2?", "answer": 4}),
    ("prompt-only", {"prompt": [{"role": "user", "content": "What is 2+2?"}]}),
])
def test_valid_examples_per_format(fmt, example):
    assert validate(example, fmt)[0] == []


def test_mixed_styles_and_numeric_answers(tool):
    out = tool(spec="Arithmetic word problems for GRPO.", target_format="prompt-only", examples=[
        {"prompt": "Tom has 3 apples and buys 4 more. How many apples?", "answer": 7},
        {"prompt": [{"role": "user", "content": "Ann has 5 pens and loses 2. How many pens?"}], "answer": "3"},
        {"prompt": "A box holds 6 eggs. How many eggs are in 2 boxes?", "answer": "12"},
    ])
    assert out["rows"] == 2 and out["dropped"]["invalid"] == 1
    assert out["problems"] == ["example 1: uses conversational fields but earlier examples use text ones; use one "
                               "style"]
    assert [r["answer"] for r in saved_rows(out)] == ["7", "12"]
    assert "'answer' values given as int, str were saved as strings, as reward functions compare text." in out["notes"]


def test_metadata_of_mixed_types_is_saved_as_strings(tool):
    examples = [chat("Review: Fine.\nSentiment?", "neutral", level=1),
                chat("Review: Awful!\nSentiment?", "negative", level="hard"),
                chat("Review: Lovely.\nSentiment?", "positive", tag="x")]
    out = tool(spec=SPEC, examples=examples)
    assert [r.get("level") for r in saved_rows(out)] == ["1", "hard", None]
    assert out["notes"][0] == "'level' values given as int, str were saved as strings."


def test_exact_and_near_duplicates_are_dropped(tool):
    long_prompt = " ".join(f"word{i}" for i in range(80))
    examples = [
        *CLEAN,
        chat("review:  not bad at ALL, I would happily go back.\nSentiment?", "Positive"),  # exact after normalising
        chat("Review: Not bad at all; I would happily go back!\nSentiment?", "positive"),  # punctuation only
        chat("Review: Not bad at all, I would happily go back.\nSentiment?", "negative"),  # another reply: kept
        chat(long_prompt, "summary"),
        chat(long_prompt.replace("word40", "changed"), "summary"),  # one word of 80 changed
    ]
    out = tool(spec=SPEC, examples=examples, target_format="messages")
    assert out["rows"] == 5 and out["dropped"] == {"invalid": 0, "duplicates": 3, "contaminated": 0}
    assert out["problems"] == ["example 3: repeats example 0 (dropped)",
                               "example 4: nearly repeats example 0 (dropped)",
                               "example 7: nearly repeats example 6 (dropped)"]
    assert [r["messages"][-1]["content"] for r in saved_rows(out)] == ["positive", "negative", "positive",
                                                                         "negative", "summary"]


def test_deduplicate_is_fast_on_thousands_of_examples():
    examples = [{"prompt": f"Question number {i}: what is {i} plus {i * 7 % 13}?", "completion": str(i + i * 7 % 13)}
                for i in range(5000)]
    examples += examples[:100]
    started = time.time()
    kept, dropped = deduplicate(examples, "prompt-completion")
    assert len(kept) == 5000 and len(dropped) == 100 and time.time() - started < 10


def test_examples_copied_from_the_eval_set_are_dropped(tool, ledger):
    evals = [json.loads(line) for line in EVAL.read_text().splitlines()]
    planted = [chat(f"Review: {row['review']}\nSentiment?", row["label"]) for row in evals[:3]]
    planted.append({"messages": [{"role": "system", "content": "Label the sentiment."},
                                 {"role": "user", "content": f"What do you think of: {evals[10]['review'].lower()}"},
                                 {"role": "assistant", "content": evals[10]["label"]}]})
    out = tool(spec=SPEC, examples=[*CLEAN, *planted], eval_dataset="evals/data/tiny_sentiment", min_examples=3)
    assert out["rows"] == 3 and out["dropped"] == {"invalid": 0, "duplicates": 0, "contaminated": 4}
    assert out["problems"] == [f"example {i}: holds eval row {row} ({level} copy; dropped)" for i, row, level in
                               [(3, 0, "exact"), (4, 1, "exact"), (5, 2, "exact"), (6, 10, "normalised")]]
    assert saved_rows(out) == CLEAN
    assert "4 examples copied items of the eval set 'test' split" in out["notes"][0]
    transform = json.loads(ledger.get_dataset(out["dataset_id"], user="local")["transform_json"])
    assert transform["contamination"]["examples_dropped"] == 4 and transform["contamination"]["split"] == "test"
    assert transform["contamination"]["eval_texts"] == 2 * len(evals)  # review and label of every row


def test_saved_and_recorded_in_the_ledger(tool, ledger, settings):
    out = tool(spec=SPEC, examples=CLEAN + [CLEAN[0]], name="Sentiment Edge Cases")
    folder = settings.data_dir / "datasets" / "sentiment-edge-cases"
    assert out["path"] == str(folder) and out["hub_id"] is None and out["format"] == "messages"
    assert saved_rows(out) == CLEAN  # the edge_case metadata is kept
    record = ledger.get_dataset(out["dataset_id"], user="local")
    assert (record["source"], record["path"], record["format"], record["rows"]) == ("synthetic", str(folder),
                                                                                     "messages", 3)
    assert record["experiment_id"] == tool.ctx.experiment_id is not None and record["hub_id"] is None
    transform = json.loads(record["transform_json"])
    assert transform["spec"] == SPEC and transform["examples_given"] == 4 and transform["exact_duplicates"] == 1
    assert transform["dropped"] == {"invalid": 0, "duplicates": 1, "contaminated": 0}
    assert "Synthetic, generated by ml-intern's agent" in (folder / "README.md").read_text()
    again = tool(spec=SPEC, examples=CLEAN, name="Sentiment Edge Cases")
    assert again["path"] == str(folder) + "-2"


def test_refuses_below_min_examples_and_saves_nothing(tool, ledger, settings):
    with pytest.raises(ToolError, match=r"Only 2 of 4 examples survive.*min_examples=3; nothing was saved.*"
                                        r"example 2: repeats example 0"):
        tool(spec=SPEC, examples=[CLEAN[0], CLEAN[1], CLEAN[0], {"messages": []}], min_examples=3)
    with pytest.raises(ToolError, match="Only 0 of 1"):
        tool(spec=SPEC, examples=[{"prompt": "x"}])
    assert not (settings.data_dir / "datasets").exists()
    assert ledger.find_dataset_by_path(str(settings.data_dir / "datasets" / "synthetic-messages"), user="local") is None


def test_bad_arguments(tool):
    with pytest.raises(ToolError, match="Unknown target_format 'sft'"):
        tool(spec=SPEC, examples=CLEAN, target_format="sft")
    with pytest.raises(ToolError, match="spec is empty"):
        tool(spec=" ", examples=CLEAN)
    with pytest.raises(ToolError, match="non-empty list"):
        tool(spec=SPEC, examples=[])
    with pytest.raises(ToolError, match="push_to_hub needs an HF token"):
        tool(spec=SPEC, examples=CLEAN, push_to_hub=True)
    with pytest.raises(ToolError, match="is not a repo id"):
        tool(spec=SPEC, examples=CLEAN, hub_dataset_id="a/b/c")


def test_push_creates_a_private_dataset_with_a_card(hub, settings, ledger):
    ctx = ToolContext(hub_settings(hub, settings, token=TOKEN), ledger, jobs=None, goal="test synthetic")
    spec = "Sentiment edge cases.\n```\nnegation, sarcasm\n```"
    out = GenerateSyntheticDataTool(ctx)(spec=spec, examples=CLEAN + [CLEAN[1]], push_to_hub=True,
                                         hub_dataset_id="sentiment-synth", eval_dataset=str(EVAL.parent))
    repo_id = f"{FIXTURE_USER}/sentiment-synth"
    assert out["hub_id"] == repo_id and ledger.get_dataset(out["dataset_id"], user="local")["hub_id"] == repo_id
    repo = hub.state["repos"][repo_id]
    assert repo["type"] == "dataset" and repo["private"] is True
    assert sorted(repo["files"]) == ["README.md", "data/train.jsonl"]
    assert [json.loads(line) for line in repo["files"]["data/train.jsonl"].decode().splitlines()] == CLEAN
    card = repo["files"]["README.md"].decode()
    meta = yaml.safe_load(card.split("---")[1])
    assert "synthetic" in meta["tags"] and meta["configs"][0]["data_files"] == [
        {"split": "train", "path": "data/train.jsonl"}]
    assert "synthetic, generated by ml-intern's agent" in card.lower()
    assert "````text\n" + spec + "\n````" in card  # a fence longer than the spec's own
    assert "- examples written: 4\n- kept: 3" in card and "- dropped as duplicates: 1" in card
    assert "Checked against the eval set `tiny_sentiment` (split `test`)" in card
    assert str(settings.data_dir) not in card
    for request in hub.requests:
        assert request.headers.get("authorization") == f"Bearer {TOKEN}"
        elsewhere = [request.path, json.dumps(request.query), request.body.decode(errors="replace"),
                     json.dumps({k: v for k, v in request.headers.items() if k != "authorization"})]
        assert not any(TOKEN in part for part in elsewhere)


def test_push_to_an_existing_repo_still_saves_locally(hub, settings, ledger):
    ctx = ToolContext(hub_settings(hub, settings, token=TOKEN), ledger, jobs=None, goal="test synthetic")
    tool = GenerateSyntheticDataTool(ctx)
    tool(spec=SPEC, examples=CLEAN, push_to_hub=True, hub_dataset_id="dup")
    with pytest.raises(ToolError, match=r"Saved 3 examples to .*dup-2 \(ledger dataset \d+\).*already exists"):
        tool(spec=SPEC, examples=CLEAN, push_to_hub=True, hub_dataset_id="dup")


def test_is_a_valid_smolagents_tool(tool):
    assert tool.name == "generate_synthetic_data" and tool.output_type == "object"
    assert "Example:" in tool.description and "Returns" in tool.description
    assert set(tool.inputs) == {"spec", "examples", "target_format", "eval_dataset", "name", "push_to_hub",
                                "hub_dataset_id", "min_examples"}
