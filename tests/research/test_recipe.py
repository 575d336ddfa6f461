"""extract_recipe: datasets, models, methods, hyperparameters and scores from a paper, with their sentences."""

from __future__ import annotations

import pytest

from tests.fakes.arxiv_api import FIXTURES, papers_settings, serve_arxiv
from tools.context import ToolContext
from tools.errors import ToolError
from tools.research.hyperparameter_names import number
from tools.research.paper_reader import parse_paper
from tools.research.recipe import ExtractRecipeTool, extract_recipe_from_text, sentences
from tools.untrusted import END

PAPER = parse_paper((FIXTURES / "html_2502.14321v2.html").read_text(), "2502.14321")


@pytest.fixture(scope="module")
def recipe():
    return extract_recipe_from_text(PAPER.text())


def by_name(items: list[dict]) -> dict[str, dict]:
    return {item["name"]: item for item in items}


def test_datasets_with_roles_and_sentences(recipe):
    datasets = by_name(recipe["datasets"])

    assert list(datasets)[:3] == ["GSM8K", "MATH-500", "MMLU"]  # most mentioned first
    assert datasets["GSM8K"]["roles"] == ["evaluation", "training"]
    assert datasets["MMLU"]["roles"] == ["evaluation"]
    hub = datasets["AI-MO/NuminaMath-CoT"]
    assert hub["roles"] == ["training"] and hub["mentions"] == 1
    assert hub["sentence"].startswith("The SFT stage trains for 3 epochs on 20k solutions sampled from AI-MO/")
    assert "openai/gsm8k" in datasets and "MATH" not in datasets  # MATH-500 is not also counted as MATH


def test_base_models_with_sizes(recipe):
    models = by_name(recipe["base_models"])

    assert list(models) == ["Qwen2.5-1.5B-Instruct", "Llama-3.2-1B-Instruct", "Qwen2.5-Math-7B"]
    assert models["Qwen2.5-1.5B-Instruct"]["size"] == "1.5B" and "base" in models["Qwen2.5-1.5B-Instruct"]["roles"]
    assert models["Llama-3.2-1B-Instruct"]["sentence"].startswith("We fine-tune Qwen2.5-1.5B-Instruct and, as a second")
    assert models["Qwen2.5-Math-7B"]["roles"] == ["mentioned"]


def test_methods_ranked_by_mentions(recipe):
    methods = [m["name"] for m in recipe["methods"]]
    assert methods[:3] == ["GRPO", "SFT", "LoRA"]
    assert {"PPO", "DPO", "RLHF"} <= set(methods)


def test_hyperparameters_from_prose_and_tables(recipe):
    hyper = recipe["hyperparameters"]

    lr = hyper["learning_rate"]
    assert [(v["value"], v["stage"], v["main"]) for v in lr] == [(2e-05, "SFT", True), (1e-06, "GRPO", True)]
    assert lr[0]["text"] == "2\\times 10^{-5}" and lr[0]["source"] == "table"
    assert lr[0]["table"] == "Table 2: Hyperparameters."
    assert [v["value"] for v in hyper["epochs"]] == [3, 1]
    assert hyper["batch_size"][0] == {"value": 128, "text": "128", "stage": "SFT", "main": True, "source": "table",
                                      "table": "Table 2: Hyperparameters.", "column": "SFT",
                                      "sentence": "Hyperparameter | SFT | GRPO / Batch size | 128 | 64"}
    assert [v["value"] for v in hyper["max_length"]] == [2048, 1024]
    assert hyper["lora_rank"][0]["value"] == 16 and hyper["lora_alpha"][0]["value"] == 32
    assert hyper["lora_rank"][0]["role"] == "variant"  # "For the parameter-efficient variant ..."
    assert "LoRA adapter with rank r=16 and \\alpha=32" in hyper["lora_rank"][0]["sentence"]
    assert [v["value"] for v in hyper["warmup"]] == [0.03, 0.1, "10%"]  # the main method's values first
    assert hyper["kl_beta"][0]["value"] == 0.04 and hyper["kl_beta"][0]["stage"] == "GRPO"
    assert [v["value"] for v in hyper["group_size"]] == [8]
    assert recipe["rejected"][0]["name"] == "group_size" and recipe["rejected"][0]["value"] == 4  # "Halving ... to G=4"
    assert recipe["stages"]["GRPO"] == {"learning_rate": 1e-06, "epochs": 1, "batch_size": 64, "warmup": 0.1,
                                        "max_length": 1024, "kl_beta": 0.04}
    assert all(v["value"] != 3e-4 for v in lr)  # the bibliography is not read


def test_scores_from_sentences_and_tables(recipe):
    scores = recipe["scores"]

    assert scores[0] == {"benchmark": "GSM8K", "value": 73.9, "baseline": 62.4, "sentence": scores[0]["sentence"]}
    assert scores[0]["sentence"].startswith("Starting from Qwen2.5-1.5B-Instruct, a short supervised fine-tuning")
    assert {"benchmark": "MATH-500", "value": 35.1, "baseline": 28.2}.items() <= scores[1].items()
    lora = next(s for s in scores if s["value"] == 71.8)
    assert lora["benchmark"] == "GSM8K" and lora["sentence"].startswith("The LoRA variant reaches 71.8% on GSM8K")
    assert next(s for s in scores if s["benchmark"] == "MMLU")["value"] == 59.7
    table = [s for s in scores if s.get("model") == "+ SFT + GRPO (ours)"]
    assert [(s["benchmark"], s["value"]) for s in table] == [("GSM8K", 73.9), ("MATH-500", 35.1)]
    assert table[0]["sentence"] == "Model | GSM8K | MATH-500 / + SFT + GRPO (ours) | 73.9 | 35.1"
    assert not any(s["value"] in (1319.0, 7.0, 8.0) for s in scores)  # counts and sizes are not scores


@pytest.mark.parametrize("text, value", [
    ("1e-5", 1e-05), ("5e-6", 5e-06), ("2 × 10^-5", 2e-05), ("2\\times 10^{-5}", 2e-05), ("3 x 10−4", 3e-04),
    ("10^{-6}", 1e-06), ("0.0003", 0.0003), ("2,048", 2048), ("10%", "10%"), ("three", 3), ("1.0e-5", 1e-05),
])
def test_numbers_in_paper_notations(text, value):
    assert number(text) == value


@pytest.mark.parametrize("sentence, key, values", [
    ("We use a learning rate of 5e-7 and 5 × 10-6 for DPO and SFT.", "learning_rate", [5e-07, 5e-06]),
    ("The peak lr = 3e-4 with cosine decay.", "learning_rate", [0.0003]),
    ("Models are trained for three epochs.", "epochs", [3]),
    ("A warmup ratio of 0.1 is used.", "warmup", [0.1]),
    ("We use 100 warmup steps.", "warmup", [100]),
    ("The maximum sequence length is 4096 tokens.", "max_length", [4096]),
    ("LoRA rank 64 and alpha 128 on attention.", "lora_rank", [64]),
    ("DPO uses beta = 0.1 on UltraFeedback.", "kl_beta", [0.1]),
])
def test_hyperparameter_sentence_forms(sentence, key, values):
    found = extract_recipe_from_text(sentence)["hyperparameters"][key]
    assert [v["value"] for v in found] == values and found[0]["sentence"] == sentence


def test_model_and_hub_id_forms():
    recipe = extract_recipe_from_text(
        "We fine-tune meta-llama/Llama-3.1-8B-Instruct, Mistral 7B and Gemma 2 9B on "
        "https://huggingface.co/datasets/HuggingFaceH4/ultrafeedback_binarized. "
        "Input/output pairs and/or SFT/DPO data come from Mixtral-8x7B and DeepSeek-R1-Distill-Qwen-1.5B.")
    models = by_name(recipe["base_models"])
    assert list(models) == ["meta-llama/Llama-3.1-8B-Instruct", "Mistral 7B", "Gemma 2 9B", "Mixtral-8x7B",
                            "DeepSeek-R1-Distill-Qwen-1.5B"]
    assert [m["size"] for m in models.values()] == ["8B", "7B", "9B", "8x7B", "1.5B"]
    assert [d["name"] for d in recipe["datasets"]] == ["HuggingFaceH4/ultrafeedback_binarized"]


def test_sentences_do_not_split_on_abbreviations_or_decimals():
    text = "We use e.g. GSM8K as in Shao et al. (2024). Accuracy rose to 73.9 on it. See Fig. 2 for details.\na | b"
    assert sentences(text) == ["We use e.g. GSM8K as in Shao et al. (2024).", "Accuracy rose to 73.9 on it.",
                               "See Fig. 2 for details.", "a | b"]


def test_tool_fetches_the_paper_and_fences_each_sentence(settings, ledger):
    server = serve_arxiv()
    try:
        ctx = ToolContext(papers_settings(settings, server), ledger, jobs=None)
        result = ExtractRecipeTool(ctx, max_wait_s=1)(arxiv_id="2502.14321")
        assert server.requests[-1].path == "/html/2502.14321"
        with pytest.raises(ToolError, match="No HTML version of arXiv:2106.09685"):
            ExtractRecipeTool(ctx, max_wait_s=1)(arxiv_id="2106.09685")
    finally:
        server.close()

    assert result["arxiv_id"] == "2502.14321" and result["title"].startswith("Small-Model GRPO")
    lr = result["hyperparameters"]["learning_rate"][0]
    assert lr["value"] == 2e-05
    assert lr["sentence"].startswith("<<<UNTRUSTED DATA from arXiv:2502.14321 hyperparameters.learning_rate[0]")
    assert lr["sentence"].endswith(END)
    assert result["base_models"][0]["name"] == "Qwen2.5-1.5B-Instruct"  # values stay plain
