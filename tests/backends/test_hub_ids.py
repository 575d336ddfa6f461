"""is_hub_id: huggingface_hub's own repo-id rules, with or without a required namespace."""

from __future__ import annotations

import pytest

from tools.backends.hub import is_hub_id


@pytest.mark.parametrize(("value", "bare", "namespaced"), [
    ("gpt2", True, False),
    ("Qwen/Qwen3-0.6B", True, True),
    ("trl-lib/Capybara", True, True),
    ("HuggingFaceTB/SmolLM2-135M-Instruct", True, True),
    ("me/my_model.v2", True, True),
    ("owner/" + "a" * 90, True, True),
    ("a" * 97, False, False),  # longer than 96 characters
    ("a/b/c", False, False),
    ("datasets/openai/gsm8k", False, False),
    ("foo--bar", False, False),
    ("me/foo..bar", False, False),
    ("me/model.git", False, False),
    (".hidden", False, False),
    ("me/-dash", False, False),
    ("me/name ", False, False),
    ("./outputs/run-1", False, False),
    ("/abs/path", False, False),
    ("ünï/x", False, False),
    ("owner/", False, False),
    ("", False, False),
    (None, False, False),
    (42, False, False),
])
def test_is_hub_id(value, bare, namespaced):
    assert is_hub_id(value) is bare
    assert is_hub_id(value, namespaced=True) is namespaced
