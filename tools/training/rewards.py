"""GRPO reward functions: a small library the agent picks from by name, and the check for reward
functions the agent writes itself.

Every function has TRL's signature `fn(completions, **kwargs) -> list[float]`: `completions` holds
strings (standard prompts) or lists of message dicts (conversational prompts), and GRPOTrainer passes
the dataset's other columns (e.g. `answer`) as keyword arguments. The functions use only `re`, `math`
and the helpers below, so `reward_source` can embed their source in a standalone training script.
"""

from __future__ import annotations

import ast
import inspect
import json
import math
import re
import subprocess
import sys
from collections.abc import Iterable

from tools import confine


def completion_text(completion) -> str:
    """The text of one completion: the string itself, or the contents of its messages."""
    if isinstance(completion, str):
        return completion
    messages = [completion] if isinstance(completion, dict) else list(completion or [])
    parts = []
    for message in messages:
        content = message.get("content", "") if isinstance(message, dict) else message
        if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        parts.append(str(content or ""))
    return "".join(parts)


def extract_final_answer(text: str) -> str | None:
    """The final answer in a text: <answer>X</answer>, \\boxed{X}, `#### X`, `Answer: X`, else the last number."""
    patterns = (r"<answer>(.*?)</answer>", r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}", r"####\s*([^\n]+)",
                r"[Aa]nswer(?: is)?\s*[:=]\s*([^\n]+)")
    for pattern in patterns:
        found = re.findall(pattern, text, re.DOTALL)
        if found:
            return found[-1].strip()
    numbers = re.findall(r"-?\d[\d,]*(?:\.\d+)?", text)
    return numbers[-1] if numbers else None


def answers_match(predicted: str | None, gold) -> bool:
    """True when a predicted final answer equals the gold one: as numbers when the gold is a number, by
    letter for multiple choice (gold "B" matches "B) Paris"), else as text (case and spacing ignored)."""
    if predicted is None or gold is None:
        return False
    gold = str(gold)
    if re.search(r"####|\\boxed|<answer>", gold):
        gold = extract_final_answer(gold) or gold
    gold = gold.strip().strip("$").rstrip(".").strip()
    predicted = predicted.strip().strip("$").strip()
    try:
        gold_number = float(gold.replace(",", ""))
    except ValueError:
        gold_number = None
    if gold_number is not None:
        found = re.search(r"-?\d[\d,]*(?:\.\d+)?", predicted)
        if not found:
            return False
        value = float(found.group().replace(",", ""))
        return math.isclose(value, gold_number, rel_tol=1e-6, abs_tol=1e-9)
    if re.fullmatch(r"[A-Za-z]", gold):
        letter = re.match(r"\(?([A-Za-z])\)?(?:[.):\s]|$)", predicted)
        return bool(letter) and letter.group(1).upper() == gold.upper()
    return " ".join(predicted.rstrip(".").lower().split()) == " ".join(gold.lower().split())


def exact_answer(completions, answer=None, **kwargs) -> list[float]:
    """1.0 when the completion's final answer equals the dataset's `answer` column, else 0.0."""
    if answer is None:
        raise ValueError("exact_answer needs the gold final answer of each prompt in a dataset column named "
                         "`answer` (GSM8K-style `... #### 42` works); rename the column that holds it to `answer`.")
    return [1.0 if answers_match(extract_final_answer(completion_text(c)), gold) else 0.0
            for c, gold in zip(completions, answer, strict=True)]


def format_reward(completions, **kwargs) -> list[float]:
    """1.0 for exactly `<think>...</think><answer>...</answer>`, 0.5 when only `<answer>...</answer>` appears,
    else 0.0."""
    rewards = []
    for completion in completions:
        text = completion_text(completion)
        if re.fullmatch(r"\s*<think>.+?</think>\s*<answer>.+?</answer>\s*", text, re.DOTALL):
            rewards.append(1.0)
        else:
            rewards.append(0.5 if re.search(r"<answer>.+?</answer>", text, re.DOTALL) else 0.0)
    return rewards


def answer_line_reward(completions, **kwargs) -> list[float]:
    """1.0 when the last line is `Answer: X`, 0.5 when such a line appears elsewhere, else 0.0."""
    rewards = []
    for completion in completions:
        lines = [line.strip() for line in completion_text(completion).strip().splitlines() if line.strip()]
        answer_lines = [i for i, line in enumerate(lines) if re.match(r"Answer:\s*\S", line)]
        rewards.append(1.0 if answer_lines and answer_lines[-1] == len(lines) - 1 else 0.5 if answer_lines else 0.0)
    return rewards


def length_reward(completions, completion_ids=None, min_tokens=16, max_tokens=256, **kwargs) -> list[float]:
    """1.0 inside [16, 256] tokens (words when token ids are absent), n/16 below, 1 - (n-256)/256 above (>= 0)."""
    rewards = []
    for i, completion in enumerate(completions):
        n = len(completion_ids[i]) if completion_ids is not None else len(completion_text(completion).split())
        if n < min_tokens:
            rewards.append(n / min_tokens)
        elif n > max_tokens:
            rewards.append(max(0.0, 1.0 - (n - max_tokens) / max_tokens))
        else:
            rewards.append(1.0)
    return rewards


HELPERS = (completion_text, extract_final_answer, answers_match)
LIBRARY = {fn.__name__: fn for fn in (exact_answer, format_reward, answer_line_reward, length_reward)}
BRIEF = {"exact_answer": "final answer = `answer` column", "format_reward": "<think>/<answer> tags",
         "answer_line_reward": "last line `Answer: X`", "length_reward": "16-256 tokens"}
ALLOWED_IMPORTS = ("re", "math", "json", "string", "collections")
FORBIDDEN_NAMES = frozenset({"open", "exec", "eval", "compile", "__import__", "input", "breakpoint", "globals",
                             "locals", "vars", "getattr", "setattr", "delattr", "exit", "quit", "help",
                             "memoryview", "__builtins__", "__loader__", "__spec__"})
# Arguments GRPOTrainer passes besides dataset columns.
TRAINER_KWARGS = frozenset({"prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric",
                            "environments"})
SAMPLE_PROMPT = "What is 2 + 2?"
SAMPLE_COMPLETIONS = ("<think>2 + 2 = 4</think><answer>4</answer>", "Two plus two is four.\n#### 4", "Answer: 5", "")
CHECK_TIMEOUT_S = 10.0


def library_listing(brief: bool = False) -> str:
    """The library reward functions: one line each with its whole docstring, or, `brief`, one short phrase each
    on one line (for the tool's input help, which the prompt carries on every call)."""
    if brief:
        return ", ".join(f"{name} ({BRIEF[name]})" for name in LIBRARY)
    return "\n".join(f"- {name}: {' '.join(inspect.getdoc(fn).split())}" for name, fn in LIBRARY.items())


def reward_source(names: Iterable[str]) -> str:
    """Source text defining the named library functions (and their helpers), for a standalone script."""
    names = list(names)
    unknown = [n for n in names if n not in LIBRARY]
    if unknown:
        raise ValueError(f"unknown reward functions {unknown}; the library has {sorted(LIBRARY)}")
    if not names:
        return ""
    functions = [*HELPERS, *(LIBRARY[n] for n in names)]
    return "import math\nimport re\n\n\n" + "\n\n".join(inspect.getsource(fn) for fn in functions)


def _reward_functions(tree: ast.Module) -> list[ast.FunctionDef]:
    """Top-level functions that take `completions` and `**kwargs`: candidates for the reward."""
    found = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.args.kwarg is not None:
            params = [a.arg for a in (*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs)]
            if "completions" in params:
                found.append(node)
    return found


def custom_reward_name(code: str) -> str | None:
    """The reward function's name in agent-written source; None unless there is exactly one."""
    try:
        found = _reward_functions(ast.parse(code))
    except SyntaxError:
        return None
    return found[0].name if len(found) == 1 else None


def _static_problems(tree: ast.Module) -> list[str]:
    problems = []
    for node in tree.body:
        docstring = isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        if not (docstring or isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.Assign,
                                                ast.AnnAssign))):
            problems.append(f"line {node.lineno}: top-level `{ast.unparse(node).splitlines()[0]}` would run when "
                            "the script loads; keep only imports, constants and function definitions.")
    for node in ast.walk(tree):
        modules = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = ["." * node.level + (node.module or "")]
        for module in modules:
            if module.split(".")[0] not in ALLOWED_IMPORTS:
                problems.append(f"line {node.lineno}: `import {module}` is not allowed; a reward function may import "
                                f"only {', '.join(ALLOWED_IMPORTS)} (no file, network or process access).")
        if isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            problems.append(f"line {node.lineno}: `{node.id}` is not allowed in a reward function (no file, "
                            "network, process or dynamic-code access); compute the reward from the arguments.")
        if isinstance(node, ast.Attribute) and node.attr.startswith("__"):
            problems.append(f"line {node.lineno}: the dunder attribute `{node.attr}` is not allowed; use plain "
                            "attributes and functions.")
        if isinstance(node, ast.AsyncFunctionDef):
            problems.append(f"line {node.lineno}: write `def`, not `async def`.")
    return problems


def _column_names(fn: ast.FunctionDef) -> set[str]:
    """Dataset columns the function reads: named parameters and kwargs["x"] / kwargs.get("x")."""
    kwargs = fn.args.kwarg.arg
    names = {a.arg for a in (*fn.args.args, *fn.args.kwonlyargs)}
    for node in ast.walk(fn):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == kwargs \
                and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
            names.add(node.slice.value)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == kwargs and node.args \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            names.add(node.args[0].value)
    return names - TRAINER_KWARGS


# Runs in a confined interpreter (tools/confine.py: no secrets, scratch HOME and workspace, limits, no network):
# calls the reward on sample completions given as strings and as messages.
RUNNER = r"""
import json, math, sys, traceback, types
req = json.loads(sys.stdin.read())
namespace = {"__name__": "reward"}
exec(compile(req["code"], "<reward>", "exec"), namespace)
fn = namespace[req["name"]]
n = len(req["completions"])
state = types.SimpleNamespace(global_step=0, max_steps=10, epoch=0.0)
shapes = {"strings": (req["completions"], [req["prompt"]] * n),
          "message lists": ([[{"role": "assistant", "content": c}] for c in req["completions"]],
                            [[{"role": "user", "content": req["prompt"]}]] * n)}
problems = []
for shape, (completions, prompts) in shapes.items():
    kwargs = {k: [v] * n for k, v in req["columns"].items()}
    kwargs.update(prompts=prompts, completion_ids=[list(range(len(c.split()))) for c in req["completions"]],
                  trainer_state=state, log_extra=lambda *a, **k: None, log_metric=lambda *a, **k: None)
    try:
        out = fn(completions=completions, **kwargs)
    except Exception as exc:
        lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<reward>"]
        where = f" at line {lines[-1]} (`{req['code'].splitlines()[lines[-1] - 1].strip()}`)" if lines else ""
        problems.append(f"on completions given as {shape} it raised {type(exc).__name__}: {exc}{where}")
        continue
    if not isinstance(out, (list, tuple)):
        problems.append(f"on completions given as {shape} it returned {type(out).__name__}, not a list of floats")
    elif len(out) != n:
        problems.append(f"on {n} completions given as {shape} it returned {len(out)} rewards; return exactly one "
                        "per completion")
    else:
        bad = [v for v in out if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                                    or not math.isfinite(v))]
        if bad:
            problems.append(f"on completions given as {shape} it returned {bad[0]!r} ({type(bad[0]).__name__}); "
                            "each reward must be a finite float (or None to skip that completion)")
print("REWARD_CHECK " + json.dumps(problems))
"""


def check_custom_reward(code: str, reserved: Iterable[str] = (), columns: dict | None = None,
                        timeout_s: float = CHECK_TIMEOUT_S) -> tuple[str | None, list[str]]:
    """Check agent-written reward source: (the reward function's name, problems). No problems means it
    parses, imports only allowed modules, touches no files, network or processes, defines one top-level
    `fn(completions, **kwargs)`, and returns one finite float per completion on sample completions
    (strings and message lists) in a confined process (tools/confine.py) within `timeout_s`. `reserved` are names it
    must not redefine; `columns` gives sample values of dataset columns (default "4")."""
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        return None, [f"the reward code does not parse: line {exc.lineno}: {exc.msg}."]
    problems = _static_problems(tree)
    candidates = _reward_functions(tree)
    if len(candidates) != 1:
        found = ", ".join(f.name for f in candidates) or "none"
        problems.append(f"define exactly one top-level reward function `def my_reward(completions, **kwargs) -> "
                        f"list[float]` (found: {found}); helpers must not take both completions and **kwargs.")
    taken = set(reserved) | set(LIBRARY) | {fn.__name__ for fn in HELPERS}
    for node in tree.body:
        targets = [node] if isinstance(node, ast.FunctionDef) else getattr(node, "targets", [])
        for name in [getattr(t, "name", None) or getattr(t, "id", None) for t in targets]:
            if name in taken:
                problems.append(f"line {node.lineno}: the name `{name}` is already used by the training script or "
                                "the reward library; rename it.")
    if problems:
        return (candidates[0].name if len(candidates) == 1 else None), problems
    fn = candidates[0]
    sample = {name: "4" for name in _column_names(fn)} | {"answer": "4"} | dict(columns or {})
    request = {"code": code, "name": fn.name, "completions": list(SAMPLE_COMPLETIONS), "prompt": SAMPLE_PROMPT,
               "columns": sample}
    try:
        proc = confine.run([sys.executable, "-I", "-c", RUNNER], limits=confine.Limits(cpu_s=math.ceil(timeout_s)),
                           input=json.dumps(request), timeout_s=timeout_s)
    except subprocess.TimeoutExpired:
        return fn.name, [f"it did not return within {timeout_s:.0f}s on {len(SAMPLE_COMPLETIONS)} sample completions; "
                         "a reward must be fast (no long loops, no waiting)."]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("REWARD_CHECK ")]
    if not lines:
        error = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return fn.name, [f"loading the reward code failed: {error}"]
    return fn.name, json.loads(lines[-1][len("REWARD_CHECK "):])
