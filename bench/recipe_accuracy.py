"""How many of a paper's hyperparameters extract_recipe gets right, now and at a baseline commit; prints the counts.

    python -m bench.recipe_accuracy                      # baseline: the commit before stages and sweeps
    python -m bench.recipe_accuracy --baseline-ref HEAD~3

The paper is tests/fixtures/papers/html_2507.08812v1.html (two hyperparameter tables, SFT and GRPO, with
captions; a sweep; an unstable and two worse values; a DPO baseline); the truth is the fixture
recipe_truth_2507.08812.json, what an engineer reading the paper takes as its recipe. A value counts as
right when a reader of the output would take it for that stage (`taken`); a rejected or baseline value
when the output does not offer it as the recipe; a sweep when its values (and the chosen one) are read.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import types
from pathlib import Path

from tools.research.paper_reader import parse_paper
from tools.research.recipe import extract_recipe

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "papers"
BASELINE_REF = "f77a399"  # extract_recipe before stages, sweeps and rejected values


def same(a, b) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int):
        return math.isclose(a, b, rel_tol=1e-9)
    return str(a).lower() == str(b).lower()


def taken(entries: list[dict], stage: str | None):
    """The value a reader takes for `stage`: the main one of that stage, else one from a column named as the
    stage, else (when no entry names any stage) the first listed; None when the output offers none."""
    for entry in entries:
        if stage and entry.get("stage") == stage and entry.get("main", True):
            return entry["value"]
    for entry in entries:
        if stage and entry.get("column") == stage:
            return entry["value"]
    return entries[0]["value"] if entries and not any(e.get("stage") for e in entries) else None


def offered(entries: list[dict], value) -> bool:
    """Whether the output offers `value` as the recipe's (listed, not marked as someone else's)."""
    return any(same(e["value"], value) and e.get("main", True) for e in entries)


def score(recipe: dict, truth: dict) -> dict[str, tuple[int, int]]:
    hyper, sweeps, rejected = recipe["hyperparameters"], recipe.get("sweeps", []), recipe.get("rejected", [])
    main = [same(taken(hyper.get(name, []), stage), value) for stage, name, value in truth["main"]]
    swept = [any(s["name"] == name and sorted(s["values"]) == sorted(values) and s.get("chosen") == chosen
                 for s in sweeps) for _, name, values, chosen in truth["sweeps"]]
    refused = [not offered(hyper.get(name, []), value)
               and (any(r["name"] == name and same(r["value"], value) for r in rejected)
                    or all(not same(e["value"], value) for e in hyper.get(name, [])))
               for _, name, value, _ in truth["rejected"]]
    baseline = [not offered(hyper.get(name, []), value) for _, name, value in truth["baseline"]]
    return {"main values": (sum(main), len(main)), "sweeps": (sum(swept), len(swept)),
            "rejected values kept out": (sum(refused), len(refused)),
            "baseline values not taken as the recipe": (sum(baseline), len(baseline))}


def baseline_extractor(ref: str):
    """extract_recipe_from_text as it was at git `ref` (loaded from `git show`, nothing checked out)."""
    source = subprocess.run(["git", "show", f"{ref}:tools/research/recipe.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType("recipe_at_baseline")
    exec(compile(source, f"{ref}:tools/research/recipe.py", "exec"), module.__dict__)  # noqa: S102 - our own file
    return module.extract_recipe_from_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline-ref", default=BASELINE_REF)
    args = parser.parse_args()
    truth = json.loads((FIXTURES / "recipe_truth_2507.08812.json").read_text())
    paper = parse_paper((FIXTURES / truth["paper"]).read_text(), "2507.08812")
    results = {"now": score(extract_recipe(paper), truth),
               f"at {args.baseline_ref}": score(baseline_extractor(args.baseline_ref)(paper.text()), truth)}
    for label, counts in results.items():
        right, total = sum(r for r, _ in counts.values()), sum(t for _, t in counts.values())
        print(f"{label}: {right}/{total} right — " + ", ".join(f"{k} {r}/{t}" for k, (r, t) in counts.items()))


if __name__ == "__main__":
    main()
