"""Remove secret values from anything that leaves the process: events, logs, the ledger, the page."""

from __future__ import annotations

import re
from typing import Any

MASK = "[REDACTED]"
# Shapes of well-known tokens, masked even when the exact value is unknown to us.
TOKEN_PATTERNS = re.compile(r"(hf_[A-Za-z0-9]{20,}|sk-ant-[A-Za-z0-9_\-]{16,}|gh[pousr]_[A-Za-z0-9]{20,})")


def redact(value: Any, secrets: list[str]) -> Any:
    """Return `value` with every secret (and anything shaped like a token) replaced by a mask."""
    if isinstance(value, str):
        for secret in sorted(secrets, key=len, reverse=True):
            if secret and len(secret) >= 4:
                value = value.replace(secret, MASK)
        return TOKEN_PATTERNS.sub(MASK, value)
    if isinstance(value, dict):
        return {k: redact(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v, secrets) for v in value)
    return value
