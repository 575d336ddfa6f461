"""extract_recipe on a paper with an SFT table and a GRPO table: stages, main values, sweeps, rejected values."""

from __future__ import annotations

import json

import pytest

from bench.recipe_accuracy import score
from tests.fakes.arxiv_api import FIXTURES, papers_settings, serve_arxiv
from tools.context import ToolContext
from tools.research.hyperparameter_names import row_label
from tools.research.hyperparameters import find_hyperparameters
from tools.research.paper_reader import parse_paper
from tools.research.recipe import ExtractRecipeTool, extract_recipe

TRUTH = json.loads((FIXTURES / "recipe_truth_2507.08812.json").read_text())
PAPER = parse_paper((FIXTURES / TRUTH["paper"]).read_text(), "2507.08812")


@pytest.fixture(scope="module")
def recipe():
    return extract_recipe(PAPER)


def values(found: dict, name: str) -> list[tuple]:
    return [(v["value"], v["stage"], v["main"]) for v in found["hyperparameters"].get(name, [])]


def test_every_hyperparameter_of_the_two_stage_paper_is_right(recipe):
    assert score(recipe, TRUTH) == {"main values": (18, 18), "sweeps": (1, 1), "rejected values kept out": (3, 3),
                                    "baseline values not taken as the recipe": (2, 2)}


def test_each_table_gives_its_stage_from_the_caption(recipe):
    assert list(recipe["stages"]) == ["SFT", "GRPO"]
    assert recipe["stages"]["SFT"] == {"learning_rate": 1e-05, "lr_scheduler": "cosine", "warmup": 0.03, "epochs": 2,
                                       "batch_size": 128, "max_length": 4096, "weight_decay": 0.1}
    lr = recipe["hyperparameters"]["learning_rate"]
    assert lr[1]["table"] == "Table 4: Hyperparameters of the RL stage (GRPO)."  # its caption sits below the table
    assert lr[0]["table"] == "Table 3: Hyperparameters of the SFT warm-up stage."
    assert lr[1]["sentence"] == "Parameter | Value / Learning rate | 1\\times 10^{-6}"


def test_qualified_row_names(recipe):
    hyper = recipe["hyperparameters"]
    grpo_batch = next(v for v in hyper["batch_size"] if v["stage"] == "GRPO")
    assert grpo_batch["value"] == 64 and grpo_batch["qualifier"] == "prompts per step"
    assert hyper["per_device_batch_size"][0]["value"] == 4  # "Micro batch size per GPU" is not the batch size
    assert values(recipe, "kl_beta")[0] == (0.02, "GRPO", True)  # "KL coefficient \beta"
    assert values(recipe, "group_size") == [(16, "GRPO", True)]  # "Completions per prompt G" and "G=16"
    assert values(recipe, "max_completion_length") == [(2048, "GRPO", True)]
    assert "max_length" not in recipe["stages"]["GRPO"]


def test_sweep_rejected_and_baseline_values_are_not_the_recipe(recipe):
    [sweep] = recipe["sweeps"]
    assert sweep["name"] == "learning_rate" and sweep["values"] == [5e-07, 1e-06, 3e-06]
    assert sweep["chosen"] == 1e-06 and sweep["stage"] == "GRPO"
    rejected = {(r["name"], r["value"]): r for r in recipe["rejected"]}
    assert set(rejected) == {("learning_rate", 3e-06), ("group_size", 4), ("kl_beta", 0.1)}
    unstable = rejected[("learning_rate", 3e-06)]
    assert unstable["reason"] == "unstable" and unstable["stage"] == "GRPO"
    assert unstable["sentence"].startswith("Raising it to 3\\times 10^{-6} made training unstable")
    assert rejected[("group_size", 4)]["reason"] == "worse"
    dpo = [v for v in recipe["hyperparameters"]["learning_rate"] if v["stage"] == "DPO"]
    assert dpo == [dpo[0]] and dpo[0]["role"] == "baseline" and dpo[0]["main"] is False
    assert "DPO" not in recipe["stages"]


@pytest.mark.parametrize("text, name, expected", [
    ("We use a learning rate of 1e-6 for GRPO and 2e-5 for SFT.", "learning_rate",
     [(1e-06, "GRPO", True), (2e-05, "SFT", True)]),
    ("We use a learning rate of 5e-7 and 2e-5 for DPO and SFT, respectively.", "learning_rate",
     [(5e-07, "DPO", True), (2e-05, "SFT", True)]),
    ("Raising the learning rate to 5e-6 made training unstable, so we use 1e-6.", "learning_rate",
     [(1e-06, None, True)]),
    ("Unlike PPO, we use a learning rate of 1e-6 for all runs.", "learning_rate", [(1e-06, None, True)]),
    ("We sample 8 completions for each prompt.", "group_size", [(8, None, True)]),
    ("The number of generations G = 8 in all runs.", "group_size", [(8, None, True)]),
    ("Temperature is 0.7 during rollouts.", "temperature", [(0.7, None, True)]),
    ("Each training step uses 512 prompts with 8 rollouts per prompt.", "batch_size", [(512, None, True)]),
    ("With GRPO, the KL penalty β is set to 0.001.", "kl_beta", [(0.001, "GRPO", True)]),
    ("We use a constant learning rate of 3e-6.", "lr_scheduler", [("constant", None, True)]),
    ("Stage | LR | Batch size | Epochs\nSFT | 2e-5 | 128 | 3\nDPO | 5e-7 | 64 | 1", "batch_size",
     [(128, "SFT", True), (64, "DPO", True)]),
    ("Hyperparameter | DPO | SimPO (ours)\nLearning rate | 5e-7 | 1e-6", "learning_rate",
     [(1e-06, "SimPO", True), (5e-07, "DPO", False)]),
    ("Hyperparameter | Value\nSFT stage\nLearning rate | 2e-5\nGRPO stage\nLearning rate | 1e-6", "learning_rate",
     [(2e-05, "SFT", True), (1e-06, "GRPO", True)]),
])
def test_sentence_and_table_forms(text, name, expected):
    assert values(find_hyperparameters([("", text)]), name) == expected


def test_sweeps_in_prose_and_cells():
    prose = find_hyperparameters([("", "We tried learning rates of 1e-6, 3e-6 and 1e-5 and found 3e-6 to work best.")])
    assert prose["sweeps"][0]["values"] == [1e-06, 3e-06, 1e-05] and prose["sweeps"][0]["chosen"] == 3e-06
    assert values(prose, "learning_rate") == [(3e-06, None, True)]
    group = find_hyperparameters([("", "We sweep the group size over {4, 8, 16} and pick 8.")])
    assert group["sweeps"][0]["values"] == [4, 8, 16] and values(group, "group_size") == [(8, None, True)]
    cell = find_hyperparameters([("", "Hyperparameter | Value\nLearning rate | {1e-6, 3e-6}")])
    assert cell["sweeps"][0]["values"] == [1e-06, 3e-06] and cell["hyperparameters"] == {}


def test_values_in_an_ablation_section_or_after_than_are_not_taken():
    found = find_hyperparameters([("5.3 Ablation study", "A group size of 4 gives 61.2 on GSM8K."),
                                  ("4 Training", "A KL coefficient of 0.1 is worse than 0.02.")])
    assert found["hyperparameters"] == {}
    assert {(r["name"], r["value"], r["reason"]) for r in found["rejected"]} == {("group_size", 4, "ablation"),
                                                                                 ("kl_beta", 0.1, "worse")}


@pytest.mark.parametrize("label, expected", [
    ("Batch size (prompts per step)", ("batch_size", "prompts per step")), ("KL coefficient \\beta", ("kl_beta", None)),
    ("Max completion length", ("max_completion_length", None)), ("Learning rate scheduler", ("lr_scheduler", None)),
    ("Number of generations per prompt", ("group_size", None)), ("Mini-batch size", (None, None)),
    ("Learning rate warmup steps", ("warmup", None)), ("β", ("kl_beta", None)), ("Hyperparameter", (None, None)),
])
def test_row_labels(label, expected):
    assert row_label(label) == expected


def test_tool_fences_sentences_and_captions(settings, ledger):
    server = serve_arxiv()
    try:
        ctx = ToolContext(papers_settings(settings, server), ledger, jobs=None)
        result = ExtractRecipeTool(ctx, max_wait_s=1)(arxiv_id="2507.08812")
    finally:
        server.close()
    assert result["stages"]["GRPO"]["group_size"] == 16  # values stay plain
    lr = result["hyperparameters"]["learning_rate"][0]
    assert lr["table"].startswith("<<<UNTRUSTED DATA from arXiv:2507.08812 hyperparameters.learning_rate[0].table")
    assert result["rejected"][0]["sentence"].startswith("<<<UNTRUSTED DATA from arXiv:2507.08812 rejected[0]")
