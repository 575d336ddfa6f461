"""Redaction: each secret, its cheap transformations, and token shapes are masked; other text is left alone."""

import base64
import json
import random
import string
from urllib.parse import quote

import pytest

from tools.redact import MASK, redact

CANARY = "hf_CanaryRedact7Qx9Zp2Lm4Vb8Nc1Dk6Wj3"
# a secret with the characters percent-encoding and base64 treat specially
ODD = "sk-canary/value+12=34~ok"


def spaced(secret: str, sep: str) -> str:
    return sep.join(secret)


TRANSFORMS = {
    "as is": lambda s: s,
    "reversed": lambda s: s[::-1],
    "upper": str.upper,
    "lower": str.lower,
    "spaces": lambda s: spaced(s, " "),
    "dashes": lambda s: spaced(s, "-"),
    "dots": lambda s: spaced(s, "."),
    "newlines": lambda s: spaced(s, "\n"),
    "reversed with spaces": lambda s: spaced(s[::-1], " "),
    "printed list": lambda s: str(list(s)),
    "json list": lambda s: json.dumps(list(s)),
    "repr of newline-joined": lambda s: repr("\n".join(s)),
    "hex": lambda s: s.encode().hex(),
    "HEX": lambda s: s.encode().hex().upper(),
    "hex with spaces": lambda s: s.encode().hex(" "),
    "hex of reversed": lambda s: s[::-1].encode().hex(),
    "\\x escapes": lambda s: "".join(f"\\x{b:02x}" for b in s.encode()),
    "0x list": lambda s: ", ".join(f"0x{b:02X}" for b in s.encode()),
    "percent every byte": lambda s: "".join(f"%{b:02X}" for b in s.encode()),
    "url-encoded": lambda s: quote(s, safe=""),
    "base64": lambda s: base64.b64encode(s.encode()).decode(),
    "base64 unpadded": lambda s: base64.b64encode(s.encode()).decode().rstrip("="),
    "urlsafe base64": lambda s: base64.urlsafe_b64encode(s.encode()).decode(),
    "urlsafe base64 unpadded": lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("="),
}


def leaked(text: str, secret: str) -> list[str]:
    """The transformations of `secret` still readable in `text`."""
    return [name for name, transform in TRANSFORMS.items() if transform(secret) in text]


@pytest.mark.parametrize("secret", [CANARY, ODD])
@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_each_cheap_transformation_is_masked(secret, name):
    form = TRANSFORMS[name](secret)
    out = redact(f"Execution logs:\nhere it is: {form} (done)\n", [secret])
    assert MASK in out, (name, out)
    assert leaked(out, secret) == [], (name, out)
    assert out.startswith("Execution logs:\nhere it is: ") and out.endswith(" (done)\n")


@pytest.mark.parametrize("offset", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("encode", [base64.b64encode, base64.urlsafe_b64encode])
def test_base64_of_a_longer_text_holding_the_secret_is_masked_at_every_alignment(offset, encode):
    blob = encode(("x" * offset + f'{{"token": "{CANARY}", "user": "me"}}').encode()).decode()
    out = redact(f"payload={blob}", [CANARY])
    assert MASK in out
    # no 12-character window of the secret's own encodings survives
    for shift in range(3):
        core = base64.b64encode(bytes(shift) + CANARY.encode()).decode()[4:-4]
        assert not any(core[i:i + 12] in out for i in range(len(core) - 12))


def test_known_secrets_and_token_shapes_are_masked_everywhere():
    canary = "sk-canary-value-1234"
    value = {"text": f"key={canary}", "nested": [f"hf_{'a' * 34}", ("ghp_" + "b" * 36,)], "n": 3}
    out = redact(value, [canary])
    assert out == {"text": f"key={MASK}", "nested": [MASK, (MASK,)], "n": 3}


def test_transformations_inside_nested_values_are_masked():
    value = {"logs": [CANARY[::-1], {"deep": (" ".join(CANARY),)}], "n": 1.5}
    assert redact(value, [CANARY]) == {"logs": [MASK, {"deep": (MASK,)}], "n": 1.5}


def test_short_or_empty_secrets_do_not_mangle_text():
    assert redact("a b c", ["", "b"]) == "a b c"
    assert redact("a.b.c.d and dcba", ["abcd"]) == "a.b.c.d and dcba", "transformations start at 8 characters"
    assert redact("key abcd here", ["abcd"]) == f"key {MASK} here"


def test_ordinary_text_is_left_alone():
    rng = random.Random(7)
    logs = "\n".join(
        f"step {i} loss={rng.random():.4f} lr=2e-05 grad_norm={rng.random() * 3:.3f} "
        f"sha={rng.getrandbits(128):032x} id={''.join(rng.choices(string.ascii_letters, k=24))}"
        for i in range(2000))
    blob = base64.b64encode(rng.randbytes(30_000)).decode()
    text = logs + "\n" + blob
    assert redact(text, [CANARY, ODD, "canary-secret-value-9f8e7d"]) == text


def test_a_megabyte_with_several_secrets_is_redacted_whole():
    rng = random.Random(3)
    filler = "".join(rng.choices(string.ascii_letters + string.digits + " \n.,:-_/", k=1_000_000))
    planted = [CANARY, " ".join(CANARY[::-1]), base64.b64encode(ODD.encode()).decode(), ODD.encode().hex()]
    text = filler[:250_000].join(["", *planted, ""]) + filler[250_000:]
    out = redact(text, [CANARY, ODD, "canary-secret-value-9f8e7d"])
    assert out.count(MASK) == len(planted)
    assert leaked(out, CANARY) == [] and leaked(out, ODD) == []
