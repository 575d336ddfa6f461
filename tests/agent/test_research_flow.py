"""From a goal to research and data, through agent.Session with a scripted model and the real tools.

tests/fixtures/research_plan.yaml: search_papers (HF Papers + arXiv, citation counts from Semantic
Scholar) -> citation_graph from the top hit -> extract_recipe on the small-model recipe paper ->
search_datasets -> inspect_dataset (with its card) -> check_dataset_quality against the eval set
evals/data/tiny_sentiment -> reformat_dataset to chat messages, recorded in the ledger -> final answer.
Every remote service is a loopback fake; the assertions are on the events, the ledger, the files
written and the requests the fakes received.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from agent.config import AgentConfig
from agent.session import Session
from tests.fakes.arxiv_api import papers_settings, serve_arxiv
from tests.fakes.hub_api import SENTIMENT, hub_settings, load, serve_hub
from tests.fakes.semantic_scholar_api import serve_semantic_scholar
from tools.untrusted import END

ROOT = Path(__file__).parents[2]
PLAN = Path(__file__).parents[1] / "fixtures" / "research_plan.yaml"
GOAL = "Improve a small instruct model on tiny_sentiment with SFT, using a recipe that worked for small models."
TOOL_ORDER = ["search_papers", "citation_graph", "extract_recipe", "search_datasets", "inspect_dataset",
              "check_dataset_quality", "reformat_dataset", "final_answer"]
SYSTEM_PROMPT = "Classify the review's sentiment as positive or negative."


@pytest.fixture
def fakes():
    servers = {"hub": serve_hub(), "arxiv": serve_arxiv(), "s2": serve_semantic_scholar()}
    yield servers
    for server in servers.values():
        server.close()


@pytest.fixture
def flow(settings, fakes, monkeypatch):
    monkeypatch.chdir(ROOT)  # the plan names the eval set by its path in the repository
    configured = papers_settings(hub_settings(fakes["hub"], settings), fakes["arxiv"], fakes["s2"], fakes["hub"])
    config = AgentConfig(backend="scripted", model_id="scripted", scripted_plan=PLAN, settings=configured,
                         auto_approve=True)
    session = Session(config)
    events = [e for e in session.run(GOAL) if e.kind != "delta"]
    return session, events


def results_by_step(events) -> dict[int, str]:
    return {e.step: e.text for e in events if e.kind == "tool_result"}


def test_each_step_calls_the_next_tool_and_nothing_fails(flow):
    session, events = flow

    assert not [e for e in events if e.kind == "error"], [e.text for e in events if e.kind == "error"]
    codes = [e.text for e in events if e.kind == "code"]
    called = [next(tool for tool in TOOL_ORDER if f"{tool}(" in code) for code in codes]
    assert called == TOOL_ORDER
    assert [e.step for e in events if e.kind == "code"] == list(range(1, len(TOOL_ORDER) + 1))
    assert sorted(results_by_step(events)) == list(range(1, len(TOOL_ORDER)))
    assert events[0].kind == "user" and events[-1].kind == "final_answer"
    stored = session.ledger.session_events(session.id, user="local")
    assert [row["kind"] for row in stored] == [e.kind for e in events]


def test_papers_are_ranked_and_the_recipe_extracted(flow, fakes):
    _, events = flow
    results = results_by_step(events)

    ranked = re.findall(r"^(\d+) (\d{4}\.\d{5}) (.+) \[(.+)\] (\d+|None)$", results[1], re.M)
    assert [(rank, arxiv_id) for rank, arxiv_id, *_ in ranked] == [
        ("1", "2402.03300"), ("2", "2305.18290"), ("3", "2502.14321")]
    assert ranked[0][3] == "'hf_papers', 'arxiv'" and ranked[0][4] == "1520"  # both sources; S2 citations
    assert ranked[2][3] == "'arxiv'"

    graph = re.findall(r"^(\d+) (\S+) ([\d.]+) (.+)$", results[2], re.M)
    assert [int(rank) for rank, *_ in graph] == list(range(1, 9))
    scores = [float(score) for _, _, score, _ in graph]
    assert scores == sorted(scores, reverse=True)
    assert {"2503.14476", "2501.12948", "2110.14168"} <= {arxiv_id for _, arxiv_id, _, _ in graph}
    assert all("matches goal:" in reason for *_, reason in graph)
    assert any(reason.startswith("cites the seed") for *_, reason in graph)

    recipe = results[3].splitlines()
    assert recipe[1] == "['GRPO', 'SFT', 'LoRA', 'PPO']"
    assert "'learning_rate': [2e-05, 1e-06]" in recipe[2] and "'lora_rank': [16]" in recipe[2]
    assert recipe[3] == "['Qwen2.5-1.5B-Instruct', 'Llama-3.2-1B-Instruct', 'Qwen2.5-Math-7B']"

    assert [(r.method, r.path) for r in fakes["arxiv"].requests] == [("GET", "/api/query"),
                                                                      ("GET", "/html/2502.14321")]
    s2 = [r.path for r in fakes["s2"].requests]
    assert s2[0] == "/graph/v1/paper/batch" and s2[1] == "/graph/v1/paper/arXiv:2402.03300"
    assert len(s2) == 2 + 2 + 2 * 3  # citation counts, the seed, its edges, and the 3 best expanded


def test_dataset_is_inspected_checked_and_converted(flow, fakes):
    _, events = flow
    results = results_by_step(events)

    assert results[4].splitlines()[1] == f"['{SENTIMENT}']"
    inspected = results[5]
    assert "prompt-completion ['SFT', 'GRPO'] {'prompt': 'string', 'completion': 'string'} apache-2.0" in inspected
    assert f"<<<UNTRUSTED DATA from dataset card of {SENTIMENT}" in inspected and "# Tiny Sentiment" in inspected
    assert inspected.count(END) == 1

    quality = results[6].splitlines()
    assert quality[1] == "good No problems found in the sample."
    overlap = ast.literal_eval(quality[2])
    assert overlap["eval_dataset"] == str(ROOT / "evals" / "data" / "tiny_sentiment" / "test.jsonl")
    assert (overlap["eval_split"], overlap["eval_items"], overlap["contaminated"]) == ("test", 120, 0)

    hub = [(r.method, r.path) for r in fakes["hub"].requests]
    assert hub[:2] == [("GET", "/api/papers/search"), ("GET", "/api/datasets")]
    sha = next(d["sha"] for d in load("datasets.json") if d["id"] == SENTIMENT)
    assert ("HEAD", f"/datasets/{SENTIMENT}/resolve/{sha}/README.md") in hub  # the card, at the info's commit
    assert [p for _, p in hub].count(f"/api/datasets/{SENTIMENT}") == 1  # the card: inspect_dataset only
    rows = [r for r in fakes["hub"].requests if r.path == "/rows"]
    assert [r.query["dataset"] for r in rows] == [[SENTIMENT], [SENTIMENT]]  # quality check, then reformat


def test_the_converted_dataset_is_recorded_in_the_ledger(flow):
    session, events = flow
    ledger = session.ledger

    [experiment] = ledger.list_experiments(user="local")
    assert experiment["goal"] == GOAL and experiment["session_id"] == session.id
    tree = ledger.experiment_tree(experiment["id"], user="local")
    [dataset] = tree["datasets"]
    assert dataset["experiment_id"] == experiment["id"]
    assert (dataset["source"], dataset["format"], dataset["rows"], dataset["hub_id"]) == (
        SENTIMENT, "messages", 99, None)
    transform = dataset["transform"]
    assert transform["tool"] == "reformat_dataset"
    assert transform["source"] == {"dataset": SENTIMENT, "source": "hub", "config": "default", "split": "train",
                                   "rows_read": 100, "rows_total": 100, "pages": [[0, 100]]}
    assert transform["columns"] == {"prompt": "prompt", "completion": "completion"}
    assert (transform["target_format"], transform["system_prompt"]) == ("messages", SYSTEM_PROMPT)
    assert (transform["test_size"], transform["seed"]) == (0.1, 42)
    assert transform["dropped"] == {"duplicates": 1} and transform["rows"] == {"train": 89, "test": 10}

    folder = Path(dataset["path"])
    assert folder.parent == session.config.settings.data_dir / "datasets"
    train = [json.loads(line) for line in (folder / "train.jsonl").read_text().splitlines()]
    test = [json.loads(line) for line in (folder / "test.jsonl").read_text().splitlines()]
    assert (len(train), len(test)) == (89, 10)
    roles = {tuple(m["role"] for m in row["messages"]) for row in train + test}
    assert roles == {("system", "user", "assistant")}
    assert {row["messages"][2]["content"] for row in train} == {" positive", " negative"}
    assert all(row["messages"][0]["content"] == SYSTEM_PROMPT for row in train)

    assert results_by_step(events)[7].splitlines()[1] == f"{dataset['id']} {folder} 99 {{'train': 89, 'test': 10}}"
    assert events[-1].text == (f"Papers: 2402.03300, 2305.18290, 2502.14321; recipe from 2502.14321: SFT at lr "
                               f"2e-05, then GRPO. Data: 99 rows of {SENTIMENT} as messages (ledger dataset "
                               f"{dataset['id']}), quality good.")
