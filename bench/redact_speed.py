"""Measure `tools.redact.redact` on 1 MB strings; prints milliseconds per call.

    python -m bench.redact_speed

Redaction runs on every event, tool log and report, so it has to stay cheap on large text. Four
secrets of real shapes (HF, Anthropic, GitHub tokens and a plain canary) are redacted from 1 MB of
log-like text, hex digests, base64 and JSON with escapes (none holds a secret: the common case), and
from log-like text with a secret planted in six of its transformed forms (the masking path).
"""

from __future__ import annotations

import base64
import json
import random
import string
import time

from tools.redact import redact

SIZE = 1_000_000


def _token(rng: random.Random, prefix: str, n: int) -> str:
    return prefix + "".join(rng.choices(string.ascii_letters + string.digits, k=n))


def texts(rng: random.Random, secrets: list[str]) -> dict[str, str]:
    """1 MB samples by kind; the last one holds planted transformations of the first secret."""
    logs = "".join(rng.choices(string.ascii_letters + string.digits + " \n.,:-_/=", k=SIZE))
    hf = secrets[0]
    planted = [hf[::-1], " ".join(hf), hf.encode().hex(), base64.b64encode(hf.encode()).decode(), hf.upper(),
               str(list(hf))]
    chunk = SIZE // (len(planted) + 1)
    return {
        "log-like text": logs,
        "hex digests": "".join(rng.choices("0123456789abcdef", k=SIZE)),
        "base64": base64.b64encode(rng.randbytes(SIZE * 3 // 4)).decode(),
        "JSON with escapes": json.dumps(["line\n" + logs[i:i + 80] for i in range(0, SIZE, 80)])[:SIZE],
        "log-like text, 6 planted forms": "".join(logs[i * chunk:(i + 1) * chunk] + form
                                                  for i, form in enumerate(planted)) + logs[-chunk:],
    }


def main() -> None:
    rng = random.Random(0)
    secrets = [_token(rng, "hf_", 34), _token(rng, "sk-ant-api03-", 80), _token(rng, "ghp_", 36),
               "canary-secret-value-9f8e7d"]
    redact("warm-up", secrets)
    for name, text in texts(rng, secrets).items():
        start = time.perf_counter()
        for _ in range(5):
            redact(text, secrets)
        ms = (time.perf_counter() - start) / 5 * 1000
        print(f"{name:32s} {len(text) / 1e6:.2f} MB  {ms:6.1f} ms  ({len(secrets)} secrets)")


if __name__ == "__main__":
    main()
