"""Remove secret values from anything that leaves the process: events, logs, the ledger, the page.

Besides each secret as it is, `redact` masks the cheap transformations an LLM-written code action
could print to smuggle one out: the secret reversed or in another case, with separators between its
characters (`"h f _ a b c"`, `list(token)`, one character per line), hex (lower or upper, plain or
with `%68`, `\\x68`, `0x68` prefixes), URL-percent-encoded, and base64 (standard or urlsafe, padded or
not, alone or inside a longer base64 string at each of the three byte alignments). Secrets shorter
than `MIN_TRANSFORMED` characters are masked only as they are.

It runs on every event, so the common case (no secret in the text) costs a few passes in C: the text
is reduced once to a skeleton without separators (and once more to lower-case hex digits) where each
form of a secret is looked up as a plain substring; only a form found there is masked by a pattern.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "[REDACTED]"
# Shapes of well-known tokens, masked even when the exact value is unknown to us. One pattern per
# literal prefix: the regex engine then scans for the prefix instead of trying every position.
TOKEN_PATTERNS = tuple(re.compile(p) for p in (
    r"hf_[A-Za-z0-9]{20,}", r"sk-ant-[A-Za-z0-9_\-]{16,}", r"gh[pousr]_[A-Za-z0-9]{20,}"))
MIN_SECRET = 4
MIN_TRANSFORMED = 8
SEPARATORS = " \t\n\r\f\v.,:;|/'\"`_+*%-\\"
# What may stand between two characters of a spelled-out secret: separators (the quotes and commas of
# a printed list among them) or a `\n` escape, at most four of them.
SEPARATOR = rf"(?:[{re.escape(SEPARATORS)}]|\\[nrt]){{0,4}}"
HEX_PREFIX = r"(?:%|\\[xX]|0[xX])?"
_DROP_SEPARATORS = str.maketrans("", "", SEPARATORS)


def _skeleton(text: str) -> str:
    """`text` without separators: a spelled-out secret becomes the secret's own skeleton."""
    return text.translate(_DROP_SEPARATORS)


def _skeletons(text: str) -> list[str]:
    """The skeleton of `text`; where it holds a backslash, also the one read with `\\n`-style escapes and
    `\\x` prefixes taken as separators (kept apart: a backslash before a secret starting with n would hide it)."""
    if "\\" not in text:
        return [_skeleton(text)]
    escapes_dropped = text
    for escape in ("\\n", "\\r", "\\t", "\\x", "\\X"):
        escapes_dropped = escapes_dropped.replace(escape, "")
    return [_skeleton(text), _skeleton(escapes_dropped)]


def _case_free(char: str) -> str:
    return f"[{re.escape(char.lower())}{re.escape(char.upper())}]" if char.lower() != char.upper() else re.escape(char)


def _spelled(chars: str) -> re.Pattern:
    """`chars` in any case, with separators between the characters."""
    return re.compile(SEPARATOR.join(_case_free(c) for c in chars))


def _hex_spelled(chars: str) -> re.Pattern:
    """The UTF-8 bytes of `chars` in hex of any case, each byte optionally prefixed, separators between them.
    The first byte's prefix is left out of the pattern (it stays visible) so that it starts with a literal."""
    digits = [f"{byte:02x}" for byte in chars.encode()]
    units = ["".join(_case_free(d) for d in pair) for pair in digits]
    return re.compile(units[0] + "".join(SEPARATOR + HEX_PREFIX + unit for unit in units[1:]))


def _base64_forms(secret: str) -> set[str]:
    """The base64 text of `secret` alone, and the part of it that any longer base64 string holding
    `secret` at byte offset 0, 1 or 2 (modulo 3) contains; standard and urlsafe."""
    raw = secret.encode()
    forms = set()
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + raw).decode()
        first = -(-8 * offset // 6)  # the characters that hold bits of the bytes before the secret
        last = 8 * (offset + len(raw)) // 6  # the last one may also hold bits of whatever follows
        forms.add(encoded[first:last])
        if offset == 0:
            forms.update((encoded, encoded.rstrip("=")))
    return forms | {form.replace("+", "-").replace("/", "_") for form in forms}


@dataclass(frozen=True)
class _Forms:
    """How to find and mask the transformations of one secret."""

    in_skeleton: tuple[tuple[str, re.Pattern], ...]  # lower-cased skeleton of a spelling, its pattern
    in_hex: tuple[tuple[str, re.Pattern], ...]  # hex digits, their pattern
    literal: tuple[tuple[str, str], ...]  # (its skeleton, a literal form), longest form first


@lru_cache(maxsize=256)
def _forms(secret: str) -> _Forms:
    spellings = (secret, secret[::-1])
    literal = _base64_forms(secret) | ({quote(secret, safe=""), quote_plus(secret, safe="")} - {secret})
    return _Forms(
        in_skeleton=tuple((_skeleton(s).lower(), _spelled(s)) for s in spellings),
        in_hex=tuple((s.encode().hex(), _hex_spelled(s)) for s in spellings),
        literal=tuple((_skeleton(form), form) for form in sorted(literal, key=len, reverse=True)))


def _redact_text(text: str, secrets: tuple[str, ...]) -> str:
    secrets = tuple(sorted({s for s in secrets if s and len(s) >= MIN_SECRET}, key=len, reverse=True))
    for secret in secrets:
        text = text.replace(secret, MASK)
    transformed = [_forms(s) for s in secrets if len(s) >= MIN_TRANSFORMED]
    if transformed:
        skeletons = _skeletons(text)
        lowered = [skeleton.lower() for skeleton in skeletons]
        hex_digits = lowered[-1].replace("0x", "")  # `0x68`, `\\x68`, `%68` and `68` all read `68` here
        for forms in transformed:
            for key, pattern in forms.in_skeleton:
                if any(key in skeleton for skeleton in lowered):
                    text = pattern.sub(MASK, text)
            for key, pattern in forms.in_hex:
                if key in hex_digits:
                    text = pattern.sub(MASK, text)
            for key, form in forms.literal:
                if key in skeletons[0]:
                    text = text.replace(form, MASK)
    for pattern in TOKEN_PATTERNS:
        text = pattern.sub(MASK, text)
    return text


def redact(value: Any, secrets: list[str]) -> Any:
    """Return `value` with every secret (in the forms above, and anything shaped like a token) masked."""
    if isinstance(value, str):
        return _redact_text(value, tuple(secrets))
    if isinstance(value, dict):
        return {k: redact(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v, secrets) for v in value)
    return value
