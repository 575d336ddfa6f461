"""Pulling a training recipe out of a paper's text: datasets, base models, methods, hyperparameters
and reported scores, each with the sentence (or table row) it came from.

Regex-based and deterministic, no LLM call: it finds candidates fast, and the quoted sentence lets
the agent (or a person) check each one in context.

    recipe = extract_recipe(paper)             # a paper_reader Paper; or extract_recipe_from_text(text)
    recipe["hyperparameters"]["learning_rate"]  # [{"value": 2e-05, "stage": "SFT", "main": True, ...}]
    recipe["stages"]["GRPO"]                    # {"learning_rate": 1e-06, "group_size": 8, ...}

Hyperparameters (with their stages, sweeps and rejected values) come from tools.research.hyperparameters.
"""

from __future__ import annotations

import re

from smolagents import Tool

from tools.context import ToolContext
from tools.research.hyperparameters import SENTENCE_CHARS, find_hyperparameters, quote, sections_of_text
from tools.research.paper_reader import Paper, fetch_paper
from tools.untrusted import fence_fields

LIMITS = {"datasets": 12, "base_models": 8, "methods": 10, "scores": 20}

BENCHMARKS = ["GSM8K", "GSM-8K", "MATH-500", "MATH500", "MATH", "AIME 2024", "AIME24", "AIME", "AMC23", "MMLU-Pro",
              "MMLU", "HumanEval+", "HumanEval", "MBPP", "TruthfulQA", "ARC-Challenge", "ARC-Easy", "ARC",
              "HellaSwag", "WinoGrande", "MT-Bench", "AlpacaEval 2.0", "AlpacaEval", "Arena-Hard", "IFEval",
              "BBH", "GPQA", "MedQA", "PubMedQA", "MedMCQA", "SQuAD", "DROP", "BoolQ", "PIQA", "TriviaQA", "SST-2"]
TRAIN_SETS = ["UltraFeedback", "UltraChat", "HH-RLHF", "Anthropic HH", "Alpaca", "ShareGPT", "OpenAssistant",
              "OASST1", "Dolly", "SlimOrca", "OpenHermes", "MetaMathQA", "NuminaMath", "OpenMathInstruct", "LIMA",
              "FLAN", "Tulu", "SHP", "Capybara", "HelpSteer", "TL;DR", "CodeAlpaca", "Magicoder", "OpenR1-Math"]


def names(words: list[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


BENCH = names(BENCHMARKS)
KNOWN_DATA = re.compile(rf"(?<![\w/-])({names(BENCHMARKS + TRAIN_SETS)})(?![\w-])")
HUB_ID = re.compile(r"(?:huggingface\.co/(?:datasets/)?|(?<![\w/.:-]))"
                    r"([A-Za-z0-9][\w.-]{1,40}/[A-Za-z0-9][\w.-]{1,80})")
NOT_IDS = {"and", "or", "input", "output", "true", "false", "train", "test", "datasets", "models"}
FAMILIES = ("Llama|LLaMA|Qwen|Mistral|Mixtral|Gemma|Phi|DeepSeek|SmolLM|OLMo|Falcon|Pythia|Yi|InternLM|Granite|"
            "GPT-2|GPT-J|GPT-NeoX|Zephyr|Vicuna|TinyLlama|Baichuan|ChatGLM|StarCoder|CodeLlama|Tulu")
SUFFIXES = "Instruct|Chat|Base|Math|Coder|Code|Distill|mini|small|medium|large|Nemo|it|Preview|MoE"
MODEL = re.compile(rf"(?<![\w/-])(?:{FAMILIES})(?:-?(?:[A-Z]?\d+(?:\.\d+)*[BMbm]?|\d+x\d+B)(?!\w|\.\d)"
                   rf"|\s(?:\d+(?:\.\d+)?[BM]|\d(?:\.\d)?)(?!\w|\.\d)|[-\s](?:{SUFFIXES})\b|-(?:{FAMILIES})\b)*")
SIZE = re.compile(r"(?:\d+x)?\d+(?:\.\d+)?[BM]\b")
METHODS = {
    "SFT": r"\bSFT\b|(?i:supervised fine-?tuning)", "DPO": r"\bDPO\b|(?i:direct preference optimi[sz]ation)",
    "GRPO": r"\bGRPO\b|(?i:group relative policy optimi[sz]ation)",
    "PPO": r"\bPPO\b|(?i:proximal policy optimi[sz]ation)",
    "RLHF": r"\bRLHF\b|(?i:reinforcement learning from human feedback)",
    "RLVR": r"\bRLVR\b|(?i:verifiable rewards?)", "KTO": r"\bKTO\b", "ORPO": r"\bORPO\b", "SimPO": r"\bSimPO\b",
    "IPO": r"\bIPO\b", "RLOO": r"\bRLOO\b", "LoRA": r"\bLoRA\b|(?i:low-rank adaptation)", "QLoRA": r"\bQLoRA\b",
    "distillation": r"(?i:\bdistill(?:ation|ed)\b)", "reward model": r"(?i:\breward models?\b)",
}
SCORE_NUM = r"\d{1,3}(?:\.\d+)?(?![\w.,]\d|[A-Za-z])"
SCORE_SENTENCE = [
    rf"(?P<b>{BENCH})(?![\w-])[^.;]{{0,50}}?\bfrom\s+(?P<base>{SCORE_NUM})\s*%?\s+to\s+(?P<v>{SCORE_NUM})",
    rf"(?P<v>{SCORE_NUM})\s*%?\s+(?:\w+\s+){{0,2}}?on\s+(?:the\s+)?(?P<b>{BENCH})(?![\w-])",
    rf"(?P<b>{BENCH})(?![\w-])(?:\s+[a-z-]+){{0,3}}?\s*(?:of|at|is|=|:|reaches|to)\s+(?P<v>{SCORE_NUM})",
]
TRAIN_CONTEXT = re.compile(r"\b(?:train|fine-?tun|finetun|SFT|sampled from|warm start|trained on)", re.I)
EVAL_CONTEXT = re.compile(r"evaluat|benchmark|test set|accuracy|score|report", re.I)
BASE_CONTEXT = re.compile(r"fine-?tune|start(?:ing)? from|base model|initiali[sz]e|we train", re.I)
SPLIT = re.compile(r"(?<!e\.g\.)(?<!i\.e\.)(?<!al\.)(?<!Fig\.)(?<!Eq\.)(?<!vs\.)(?<!cf\.)(?<=[.!?])\s+(?=[A-Z0-9(\[])")


def sentences(text: str) -> list[str]:
    """The text's sentences; a table row (`a | b | c`) is one sentence of its own."""
    return [s.strip() for line in text.split("\n") for s in ([line] if " | " in line else SPLIT.split(line))
            if s.strip()]


def tables(lines: list[str]) -> list[tuple[list[str], list[list[str]]]]:
    """Runs of `a | b` rows as (header cells, body rows)."""
    found, run = [], []
    for line in lines + [""]:
        if " | " in line:
            run.append([c.strip() for c in line.split(" | ")])
        elif run:
            found.append((run[0], run[1:]))
            run = []
    return found


def mention(found: dict, key: str, sentence: str, **fields) -> None:
    entry = found.setdefault(key, {"name": key, **fields, "mentions": 0, "sentence": quote(sentence), "_seen": []})
    entry["mentions"] += 1
    entry["_seen"].append(sentence)


def ranked(found: dict, limit: int, roles=None) -> list[dict]:
    """The most mentioned first; with `roles`, each gets the roles its sentences suggest."""
    items = sorted(found.values(), key=lambda e: -e["mentions"])[:limit]
    for item in items:
        seen = item.pop("_seen")
        if roles:
            item["roles"] = sorted({r for s in seen for r in roles(s)})
    return items


def data_roles(sentence: str) -> list[str]:
    return [r for r, pattern in (("training", TRAIN_CONTEXT), ("evaluation", EVAL_CONTEXT)) if pattern.search(sentence)]


def model_roles(sentence: str) -> list[str]:
    return ["base"] if BASE_CONTEXT.search(sentence) else ["mentioned"]


def size_of(name: str) -> str | None:
    match = SIZE.search(name)
    return match.group(0) if match else None


def is_model_name(name: str) -> bool:
    return re.search(rf"(?i:{FAMILIES})", name.split("/")[-1]) is not None


def extract_recipe(paper: Paper) -> dict:
    """`extract_recipe_from_text` of a paper, its sections' titles giving values their stages."""
    return extract_recipe_from_text(paper.text(), [(s.title, s.text) for s in paper.all_sections()])


def extract_recipe_from_text(text: str, sections: list[tuple[str, str]] | None = None) -> dict:
    """Datasets, base models, methods, hyperparameters and scores found in `text`, with sources.

    `sections` [(title, text)] lets section titles name a stage ("4.2 GRPO training"); without it the
    text is split at markdown headings. Returns {"datasets": [{"name", "mentions", "roles":
    ["training"|"evaluation"], "sentence"}], "base_models": [{"name", "size", "mentions", "roles":
    ["base"|"mentioned"], "sentence"}], "methods": [{"name", "mentions", "sentence"}], "scores":
    [{"benchmark", "value", "baseline"?, "model"?, "sentence"}], and find_hyperparameters' "hyperparameters",
    "stages", "sweeps" and "rejected"}.
    """
    parts = sentences(text or "")
    datasets, models, methods, scores = {}, {}, {}, []
    for sentence in parts:
        for match in KNOWN_DATA.finditer(sentence):
            mention(datasets, match.group(1), sentence)
        for match in HUB_ID.finditer(sentence):
            repo = match.group(1).rstrip(".-")
            org, name = repo.split("/", 1)
            if {org.lower(), name.lower()} & NOT_IDS or not re.search(r"[a-z]", name) or not re.search("[A-Za-z]", org):
                continue
            if is_model_name(repo):
                mention(models, repo, sentence, size=size_of(repo))
            else:
                mention(datasets, repo, sentence)
        for match in MODEL.finditer(sentence):
            name = match.group(0).strip(" -")
            if re.search(r"\d", name):
                mention(models, name, sentence, size=size_of(name))
        for key, pattern in METHODS.items():
            for _ in re.finditer(pattern, sentence):
                mention(methods, key, sentence)
        if " | " not in sentence:
            for pattern in SCORE_SENTENCE:
                for match in re.finditer(pattern, sentence):
                    extra = {"baseline": float(match.group("base"))} if "base" in match.groupdict() else {}
                    scores.append({"benchmark": match.group("b"), "value": float(match.group("v")), **extra,
                                   "sentence": quote(sentence)})
    for header, rows in tables(parts):
        for column, name in enumerate(header):
            if column and re.fullmatch(rf"(?:{BENCH})(?: \(.*\))?", name):
                for row in rows:
                    if column < len(row) and re.fullmatch(SCORE_NUM, row[column]):
                        scores.append({"benchmark": name, "value": float(row[column]), "model": row[0],
                                       "sentence": quote(" | ".join(header) + " / " + " | ".join(row))})
    seen, unique = set(), []
    for score in scores:
        key = (score["benchmark"], score["value"], score.get("model"))
        if key not in seen:
            seen.add(key)
            unique.append(score)
    return {
        "datasets": ranked(datasets, LIMITS["datasets"], data_roles),
        "base_models": ranked(models, LIMITS["base_models"], model_roles),
        "methods": ranked(methods, LIMITS["methods"]),
        "scores": unique[: LIMITS["scores"]],
        **find_hyperparameters(sections if sections is not None else sections_of_text(text)),
    }


class ExtractRecipeTool(Tool):
    name = "extract_recipe"
    description = """A paper's training recipe from its full text, each value with its sentence (check it).
Returns {"datasets", "base_models", "methods", "scores", "hyperparameters": {name: [{"value", "stage", "main",
"sentence"}]}, "stages": {"GRPO": {name: value}}, "sweeps", "rejected"} (swept, rejected: not the recipe).
Example: extract_recipe(arxiv_id="2402.03300")["stages"]"""
    inputs = {"arxiv_id": {"type": "string", "description": "arXiv id, e.g. '2402.03300'."}}
    output_type = "object"

    def __init__(self, ctx: ToolContext, max_wait_s: float = 10.0):
        super().__init__()
        self.ctx, self.max_wait_s = ctx, max_wait_s

    def forward(self, arxiv_id: str) -> dict:
        paper = fetch_paper(self.ctx.settings, arxiv_id, self.max_wait_s)
        recipe = fence_fields(extract_recipe(paper), f"arXiv:{paper.arxiv_id}", cap=SENTENCE_CHARS,
                              keys={"sentence", "table"})
        return {"arxiv_id": paper.arxiv_id, "title": paper.title[:300], "url": paper.url, **recipe}
