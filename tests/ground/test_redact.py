from tools.redact import MASK, redact


def test_known_secrets_and_token_shapes_are_masked_everywhere():
    canary = "sk-canary-value-1234"
    value = {"text": f"key={canary}", "nested": [f"hf_{'a' * 34}", ("ghp_" + "b" * 36,)], "n": 3}
    out = redact(value, [canary])
    assert out == {"text": f"key={MASK}", "nested": [MASK, (MASK,)], "n": 3}


def test_short_or_empty_secrets_do_not_mangle_text():
    assert redact("a b c", ["", "b"]) == "a b c"
