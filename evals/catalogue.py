"""Plain benchmark names -> pinned lighteval 0.13 task specs, and the one resolver for every task name.

    resolve_task("GSM-8K")   -> {"key": "gsm8k", "spec": "gsm8k|5", "metric": "extractive_match", ...}
    resolve_task("gsm8k|0")  -> the same benchmark zero-shot: key "gsm8k|0" (a different setup, a different key)
    resolve_task("tiny_sentiment")                         -> a shipped offline fixture (evals/tasks.py)
    resolve_task("custom:/data/my_eval.jsonl", {"kind": "generative", "match": "number"})
                                                           -> a task generated from your own data

lighteval 0.13 names tasks "task|fewshot" (the old "suite|task|fewshot" still parses; its suite is
ignored). Each catalogue entry pins the task name, its few-shot count, the primary metric name as
lighteval reports it, the dataset it downloads and which column holds the question (for
contamination checks). The few-shot counts follow the Open LLM Leaderboard v1 for the classic
base-model benchmarks (ARC 25, HellaSwag 10, MMLU 5, GSM8K 5) and zero-shot for the instruct-style
generative ones (GPQA diamond, MATH-500, MMLU-Pro, IFEval) and TruthfulQA (mc2).

Catalogue tasks download their data from the Hugging Face Hub when they run: offline they resolve
and validate here, but evaluating them fails with an error that says so. The shipped fixtures and
`custom:` tasks on local files run offline.
"""

from __future__ import annotations

import re
from pathlib import Path

from evals.tasks import TASKS, custom_task

CATALOGUE: dict[str, dict] = {
    "gpqa:diamond": dict(
        title="GPQA Diamond (198 graduate-level science questions; generative, pass@1)",
        module="gpqa", fewshot=0, metric="gpqa_pass@k:k=1", hf_repo="Idavidrein/gpqa", hf_subset="gpqa_diamond",
        split="train", question_column="Question", n_samples=198, aliases=("gpqa", "gpqa-diamond", "gpqa_diamond"),
        note="gated dataset: needs an HF token whose user accepted its terms"),
    "gsm8k": dict(
        title="GSM8K (1319 grade-school math word problems; 5-shot, extracted final answer)",
        module="gsm8k", fewshot=5, metric="extractive_match", hf_repo="openai/gsm8k", hf_subset="main", split="test",
        question_column="question", n_samples=1319, aliases=("gsm-8k", "gsm_8k", "gsm 8k")),
    "math_500": dict(
        title="MATH-500 (500 competition math problems; zero-shot, pass@1)",
        module="math_500", fewshot=0, metric="pass@k:k=1&n=1", hf_repo="HuggingFaceH4/MATH-500",
        hf_subset="default", split="test", question_column="problem", n_samples=500,
        aliases=("math-500", "math500")),
    "mmlu": dict(
        title="MMLU (57 subjects, 14042 questions; 5-shot, answer letter; macro-average over subjects)",
        module="mmlu", fewshot=5, metric="em", hf_repo="lighteval/mmlu", hf_subset="all", split="test",
        question_column="question", n_samples=14042, aliases=("mmlu",), superset=True,
        texts_repo=("cais/mmlu", "all", "test")),
    "mmlu_pro": dict(
        title="MMLU-Pro (12032 ten-choice questions; zero-shot, extracted answer letter)",
        module="mmlu_pro", fewshot=0, metric="extractive_match", hf_repo="TIGER-Lab/MMLU-Pro", hf_subset="default",
        split="test", question_column="question", n_samples=12032, aliases=("mmlu-pro", "mmlupro")),
    "arc:challenge": dict(
        title="ARC-Challenge (1172 grade-school science questions; 25-shot, log-likelihood accuracy)",
        module="arc", fewshot=25, metric="acc", hf_repo="allenai/ai2_arc", hf_subset="ARC-Challenge", split="test",
        question_column="question", n_samples=1172, aliases=("arc", "arc-challenge", "arc_challenge", "arc-c")),
    "arc:easy": dict(
        title="ARC-Easy (2376 grade-school science questions; 25-shot, log-likelihood accuracy)",
        module="arc", fewshot=25, metric="acc", hf_repo="allenai/ai2_arc", hf_subset="ARC-Easy", split="test",
        question_column="question", n_samples=2376, aliases=("arc-easy", "arc_easy", "arc-e")),
    "hellaswag": dict(
        title="HellaSwag (10042 sentence completions; 10-shot, answer letter)",
        module="hellaswag", fewshot=10, metric="em", hf_repo="Rowan/hellaswag", hf_subset="default",
        split="validation", question_column="ctx", n_samples=10042, aliases=("hella-swag", "hella_swag")),
    "ifeval": dict(
        title="IFEval (541 prompts with verifiable instructions; zero-shot, prompt-level strict accuracy)",
        module="ifeval.main", fewshot=0, metric="prompt_level_strict_acc", hf_repo="google/IFEval",
        hf_subset="default", split="train", question_column="prompt", n_samples=541,
        aliases=("if-eval", "if_eval")),
    "truthfulqa:mc": dict(
        title="TruthfulQA multiple choice (817 questions; zero-shot, mc2)",
        module="truthfulqa", fewshot=0, metric="truthfulqa_mc2", hf_repo="truthfulqa/truthful_qa",
        hf_subset="multiple_choice", split="validation", question_column="question", n_samples=817,
        aliases=("truthfulqa", "truthful_qa", "truthful-qa", "truthfulqa-mc", "truthfulqa_mc")),
}
CUSTOM_PREFIX = "custom:"


def normalize(name: str) -> str:
    """Lowercase, punctuation, spaces and separators dropped (':' kept): "GSM-8K" -> "gsm8k"."""
    return re.sub(r"[^a-z0-9:]", "", name.lower())


ALIASES: dict[str, str] = {normalize(alias): canonical for canonical, entry in CATALOGUE.items()
                           for alias in (canonical, *entry["aliases"])}


def known_task_names() -> list[str]:
    """Every plain name run_evaluation accepts (custom: tasks aside)."""
    return shipped_tasks() + sorted(CATALOGUE)


def shipped_tasks() -> list[str]:
    return sorted(name for name, entry in TASKS.items() if entry.get("shipped"))


def _split_fewshot(name: str) -> tuple[str, int | None]:
    """"gsm8k|0" -> ("gsm8k", 0); "lighteval|gsm8k|5" -> ("gsm8k", 5); "gsm8k" -> ("gsm8k", None)."""
    parts = [p.strip() for p in name.split("|")]
    if len(parts) == 1:
        return parts[0], None
    if len(parts) in (2, 3) and parts[-1].isdigit():
        return parts[-2], int(parts[-1])
    raise ValueError(f"cannot read task {name!r}: write a name, or 'name|fewshot' such as 'gsm8k|5'.")


def resolve_task(name: str, options: dict | None = None) -> dict:
    """What `name` evaluates: {"key", "source", "spec", "metric", "fewshot", "needs_hub", ...}.

    "key" is the name the ledger records (the same benchmark in another few-shot setup gets another
    key); "spec" the exact lighteval task string; "source" is "fixture", "catalogue" or "custom".
    Custom tasks are registered into evals.tasks.TASKS as a side effect. Raises ValueError for an
    unknown or malformed name, listing what is known.
    """
    name = (name or "").strip()
    if name.lower().startswith(CUSTOM_PREFIX):
        entry = custom_task(name[len(CUSTOM_PREFIX):].strip(), options or {})
        TASKS[entry["key"]] = entry
        return _fixture_ref(entry["key"], source="custom")
    if options:
        raise ValueError(f"task_options only apply to custom: tasks, not to {name!r}; leave them out.")
    base, fewshot = _split_fewshot(name)
    if base in TASKS:
        if fewshot not in (None, TASKS[base]["fewshot"]):
            raise ValueError(f"{base} is defined {TASKS[base]['fewshot']}-shot only; pass task={base!r}.")
        return _fixture_ref(base, source="fixture")
    canonical = ALIASES.get(normalize(base))
    if canonical is None:
        raise ValueError(f"unknown task {name!r}. Offline fixtures: {', '.join(shipped_tasks())}. Benchmarks (need the "
                         f"Hub): {', '.join(sorted(CATALOGUE))}. Or evaluate your own data with "
                         "task='custom:<local .jsonl file or folder, or Hub dataset id>' and task_options.")
    entry = CATALOGUE[canonical]
    shots = entry["fewshot"] if fewshot is None else fewshot
    texts_repo, texts_subset, texts_split = entry.get("texts_repo") or (entry["hf_repo"], entry["hf_subset"],
                                                                        entry["split"])
    return {"key": canonical if shots == entry["fewshot"] else f"{canonical}|{shots}", "source": "catalogue",
            "name": canonical, "spec": f"{canonical}|{shots}", "metric": entry["metric"], "fewshot": shots,
            "needs_hub": True, "module": entry["module"], "superset": entry.get("superset", False),
            "hf_repo": entry["hf_repo"], "hf_subset": entry["hf_subset"], "split": entry["split"],
            "question_column": entry["question_column"], "n_samples": entry["n_samples"],
            "texts": {"hf_repo": texts_repo, "hf_subset": texts_subset, "split": texts_split},
            "note": entry.get("note")}


def task_key(name: str) -> str:
    """The ledger key `name` is recorded under, without validating custom data: "GSM-8K" -> "gsm8k",
    "custom:./my.jsonl" -> "custom:/abs/my.jsonl". For matching user-written task names to ledger rows."""
    name = (name or "").strip()
    if name.lower().startswith(CUSTOM_PREFIX):
        source = name[len(CUSTOM_PREFIX):].strip()
        local = Path(source).expanduser()
        return CUSTOM_PREFIX + (str(local.resolve()) if local.exists() or source.startswith(("/", ".", "~"))
                                else source)
    return resolve_task(name)["key"]


def _fixture_ref(key: str, source: str) -> dict:
    entry = TASKS[key]
    local = entry.get("data_path")
    ref = {"key": key, "source": source, "name": entry["config_name"], "spec": f"{entry['config_name']}|"
           f"{entry['fewshot']}", "metric": entry["metric"], "fewshot": entry["fewshot"], "needs_hub": local is None,
           "split": entry["split"], "question_column": entry["question_column"], "kind": entry["kind"]}
    if local is not None:
        ref["data_path"] = str(local)
    else:
        ref.update(hf_repo=entry["hf_repo"], hf_subset=entry["hf_subset"],
                   texts={"hf_repo": entry["hf_repo"], "hf_subset": entry["hf_subset"], "split": entry["split"]})
    if source == "custom":
        ref["custom"] = entry["options"]
    return ref


def describe_catalogue() -> str:
    """One line per benchmark, for tool descriptions and errors."""
    return "\n".join(f"- {name} ({entry['module'].split('.')[0]}, {entry['fewshot']}-shot, metric {entry['metric']}): "
                     f"{entry['title']}" for name, entry in CATALOGUE.items())
