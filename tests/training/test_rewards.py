"""The GRPO reward library and the check of agent-written reward functions."""

from __future__ import annotations

import ast
import socket
from pathlib import Path

import pytest

from tools.training.rewards import (
    LIBRARY,
    answer_line_reward,
    check_custom_reward,
    custom_reward_name,
    exact_answer,
    extract_final_answer,
    format_reward,
    length_reward,
    library_listing,
    reward_source,
)


def as_messages(texts):
    return [[{"role": "assistant", "content": t}] for t in texts]


@pytest.mark.parametrize("text, answer", [
    ("<think>add</think><answer> 42 </answer>", "42"),
    (r"so the result is \boxed{\frac{1}{2}}.", r"\frac{1}{2}"),
    ("Natalia sold 48 + 24 = 72 clips.\n#### 72", "72"),
    ("Working...\nAnswer: B) Paris", "B) Paris"),
    ("The answer is: 17", "17"),
    ("first 3 then 1,234.5 items", "1,234.5"),
    ("no digits here", None),
])
def test_extract_final_answer(text, answer):
    assert extract_final_answer(text) == answer


def test_exact_answer_compares_numbers_letters_and_text_on_strings_and_messages():
    completions = ["so #### 1,234", r"\boxed{\frac{1}{2}}", "Answer: B) Paris", "the answer is 7 apples",
                   "<answer>Paris.</answer>", "I think 13", "Answer: 2.50", ""]
    gold = ["1234", r"\frac{1}{2}", "B", "They had 3 + 4.\n#### 7", "paris", "12", "$2.5", "0"]
    expected = [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0]
    assert exact_answer(completions, answer=gold) == expected
    assert exact_answer(as_messages(completions), answer=gold, prompts=["q"] * 8) == expected
    with pytest.raises(ValueError, match="column named `answer`"):
        exact_answer(["42"])


def test_format_rewards():
    texts = ["<think>2 + 2 = 4</think>\n<answer>4</answer>", "sure <answer>4</answer>", "<think>hm</think> 4", ""]
    assert format_reward(texts) == [1.0, 0.5, 0.0, 0.0]
    assert format_reward(as_messages(texts)) == [1.0, 0.5, 0.0, 0.0]
    lines = ["2 + 2 = 4\nAnswer: 4\n", "Answer: 4\nbecause 2 + 2 = 4", "4", "Answer:"]
    assert answer_line_reward(lines) == [1.0, 0.5, 0.0, 0.0]


def test_length_reward_scores_tokens_or_words():
    ids = [[0] * 8, [0] * 16, [0] * 256, [0] * 384, [0] * 600]
    assert length_reward(["x"] * 5, completion_ids=ids) == [0.5, 1.0, 1.0, 0.5, 0.0]
    assert length_reward(as_messages(["one two three four"])) == [0.25]


def test_reward_source_is_standalone_and_listed():
    source = reward_source(["exact_answer", "length_reward"])
    namespace: dict = {"__name__": "embedded"}
    exec(compile(source, "<embedded>", "exec"), namespace)
    assert namespace["exact_answer"](["#### 5"], answer=["5"]) == [1.0]
    assert "def format_reward" not in source
    assert reward_source([]) == ""
    with pytest.raises(ValueError, match="unknown reward functions"):
        reward_source(["accuracy"])
    assert all(f"- {name}: " in library_listing() for name in LIBRARY)
    assert "appears, else 0.0." in library_listing()  # whole docstrings, not their first lines
    brief = library_listing(brief=True)
    assert "\n" not in brief and len(brief) < 200 and all(f"{name} (" in brief for name in LIBRARY)


GOOD = '''
import re
from collections import Counter

DIGITS = re.compile(r"\\d")


def digit_reward(completions, answer=None, **kwargs):
    """1.0 per completion that contains the answer, plus 0.1 per digit."""
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    golds = answer or [""] * len(texts)
    return [float(g in t) + 0.1 * Counter(DIGITS.findall(t)).total() for t, g in zip(texts, golds)]
'''


def test_a_good_custom_reward_is_accepted():
    assert check_custom_reward(GOOD) == ("digit_reward", [])
    assert custom_reward_name(GOOD) == "digit_reward"


def test_custom_reward_reading_a_dataset_column_gets_sample_values():
    code = ("def uses_solution(completions, **kwargs):\n"
            "    return [float(s in str(c)) for c, s in zip(completions, kwargs['solution'])]\n")
    assert check_custom_reward(code) == ("uses_solution", [])


@pytest.mark.parametrize("code, message", [
    ("import os\ndef r(completions, **kwargs):\n    return [0.0] * len(completions)\n",
     "line 1: `import os` is not allowed"),
    ("from subprocess import run\ndef r(completions, **kwargs):\n    return [0.0] * len(completions)\n",
     "`import subprocess` is not allowed"),
    ("def r(completions, **kwargs):\n    open('/etc/passwd')\n    return [0.0] * len(completions)\n",
     "line 2: `open` is not allowed"),
    ("def r(completions, **kwargs):\n    return [().__class__] * len(completions)\n",
     "dunder attribute `__class__`"),
    ("def r(completions, **kwargs):\n    return [1.0]\n", "on 4 completions given as strings it returned 1 rewards"),
    ("def r(completions, **kwargs):\n    return [len(c) / 0 for c in completions]\n",
     "raised ZeroDivisionError: division by zero at line 2 (`return [len(c) / 0 for c in completions]`)"),
    ("def r(completions, **kwargs):\n    return [c.upper() for c in completions]\n",
     "on completions given as message lists it raised AttributeError"),
    ("def r(completions, **kwargs):\n    return ['1'] * len(completions)\n", "returned '1' (str)"),
    ("def r(completions, **kwargs):\n    return 1.0\n", "returned float, not a list"),
    ("def r(completions):\n    return [1.0] * len(completions)\n", "exactly one top-level reward function"),
    ("def a(completions, **kwargs):\n    return []\ndef b(completions, **kwargs):\n    return []\n",
     "(found: a, b)"),
    ("def exact_answer(completions, **kwargs):\n    return [1.0] * len(completions)\n",
     "`exact_answer` is already used"),
    ("print('hi')\ndef r(completions, **kwargs):\n    return [1.0] * len(completions)\n",
     "line 1: top-level `print('hi')` would run"),
    ("def r(completions, **kwargs):\n    return [1.0] * len(completions\n", "does not parse: line 2"),
])
def test_bad_custom_rewards_are_refused_with_what_to_fix(code, message):
    _, problems = check_custom_reward(code)
    assert any(message in p for p in problems), problems


def test_a_custom_reward_that_hangs_is_stopped():
    code = "def slow(completions, **kwargs):\n    while True:\n        pass\n"
    assert check_custom_reward(code, timeout_s=1.5) == ("slow", [
        "it did not return within 2s on 4 sample completions; a reward must be fast (no long loops, no waiting)."])


def test_reserved_names_are_refused():
    code = "CONFIG = 1\ndef r(completions, **kwargs):\n    return [1.0] * len(completions)\n"
    _, problems = check_custom_reward(code, reserved={"CONFIG"})
    assert problems == ["line 1: the name `CONFIG` is already used by the training script or the reward library; "
                        "rename it."]
    assert ast.parse(GOOD)


# Rewards that get past the static check (a private member of an allowed module is not a dunder) and try the
# environment, the disk and the network at run time; each raises what it found, which the check reports.
SNEAKY_ENV = '''import collections

def sneaky(completions, **kwargs):
    os = collections._sys.modules["os"]
    raise ValueError(repr({"env": dict(os.environ), "home": os.path.expanduser("~")}))
'''
SNEAKY_FILE = '''import collections

def sneaky(completions, **kwargs):
    collections._sys.modules["builtins"].open(MARKER, "w").write("x")
    return [0.0] * len(completions)
'''
SNEAKY_SOCKET = '''import collections

def sneaky(completions, **kwargs):
    socket = collections._sys.modules["importlib"].import_module("socket")
    socket.create_connection(("127.0.0.1", PORT), timeout=3)
    return [0.0] * len(completions)
'''
CANARIES = {"HF_TOKEN": "hf_canaryReward0123456789", "ANTHROPIC_API_KEY": "sk-ant-canaryReward",
            "GITHUB_TOKEN": "ghp_canaryReward", "OPENAI_API_KEY": "sk-canaryReward"}


def test_a_reward_reading_the_environment_finds_no_token_and_a_scratch_home(monkeypatch):
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    problem = "\n".join(check_custom_reward(SNEAKY_ENV)[1])
    assert "raised ValueError: {'env': {" in problem and "'HOME': " in problem  # the read ran, in the sandbox
    assert not any(name in problem or value in problem for name, value in CANARIES.items())
    assert f"'home': '{Path.home()}'" not in problem and "ml-intern-sandbox-" in problem


def test_a_reward_writing_outside_its_workspace_leaves_no_file(tmp_path):
    marker = tmp_path / "marker"
    problem = "\n".join(check_custom_reward(f"MARKER = {str(marker)!r}\n" + SNEAKY_FILE)[1])
    assert "raised PermissionError" in problem and not marker.exists()


def test_a_reward_opening_a_socket_reaches_nothing():
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.5)
    try:
        problem = "\n".join(check_custom_reward(f"PORT = {server.getsockname()[1]}\n" + SNEAKY_SOCKET)[1])
        with pytest.raises(TimeoutError):
            server.accept()
    finally:
        server.close()
    assert "raised PermissionError" in problem or "raised OSError" in problem, problem
