"""LLM prices: what one call cost, from its token usage.

    price = price_of("claude-sonnet-5-5")    # Price(input=3.0, output=15.0, cache_write=3.75, cache_read=0.3)
    price.cost(input_tokens=1200, output_tokens=300, cache_write_tokens=9000, cache_read_tokens=40000)  # dollars

Prices are USD per million tokens: uncached input, output, cache writes (Anthropic's 5-minute cache: 1.25 × input)
and cache reads (0.1 × input). `ML_INTERN_LLM_PRICES` adds or overrides models with JSON, inline or the path of a
file: {"model-id": {"input": 3, "output": 15, "cache_write": 3.75, "cache_read": 0.3}} (cache prices default to
the input price) or {"model-id": [input, output, cache_write, cache_read]}. A model in neither has no price: its
calls are counted in tokens only, and a session with a spending cap refuses to run on it (fail closed).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

PRICES_ENV = "ML_INTERN_LLM_PRICES"
FREE_PREFIXES = ("scripted",)  # the scripted model replays a plan: no LLM is called


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cache_write: float
    cache_read: float

    def __post_init__(self):
        for name in ("input", "output", "cache_write", "cache_read"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value < 10_000:
                raise ValueError(f"a price is dollars per million tokens (0 to 10000), got {name}={value!r}")

    def cost(self, input_tokens: int = 0, output_tokens: int = 0, cache_write_tokens: int = 0,
             cache_read_tokens: int = 0) -> float:
        """Dollars for one call; `input_tokens` are the uncached prompt tokens only (as Anthropic counts them)."""
        return (input_tokens * self.input + output_tokens * self.output + cache_write_tokens * self.cache_write
                + cache_read_tokens * self.cache_read) / 1e6


def _claude(input_usd: float, output_usd: float) -> Price:
    return Price(input_usd, output_usd, cache_write=input_usd * 1.25, cache_read=input_usd * 0.1)


def _plain(input_usd: float, output_usd: float) -> Price:
    """A provider without prompt-cache discounts: cached tokens bill as input."""
    return Price(input_usd, output_usd, cache_write=input_usd, cache_read=input_usd)


_OPUS, _SONNET, _HAIKU = _claude(5.0, 25.0), _claude(3.0, 15.0), _claude(1.0, 5.0)
# Anthropic list prices (November 2026) for the models in the installed SDK's model list (anthropic 2.14
# types/model_param.py; agent/models.py DEFAULT_MODEL_ID is one); prompts over 200k tokens can cost more.
# Hugging Face Inference Providers: approximate prices of the providers that serve each model (they differ by
# provider); set ML_INTERN_LLM_PRICES for your provider's exact ones.
BUILTIN_PRICES: dict[str, Price] = {
    **dict.fromkeys(("claude-opus-5-5", "claude-opus-5", "claude-opus-4-8", "claude-opus-4-7", "claude-opus-4-6",
                     "claude-opus-4-5", "claude-opus-4-5-20251101"), _OPUS),
    **dict.fromkeys(("claude-sonnet-5-5", "claude-sonnet-5", "claude-sonnet-4-6", "claude-sonnet-4-5",
                     "claude-sonnet-4-5-20250929"), _SONNET),
    **dict.fromkeys(("claude-haiku-5-5", "claude-haiku-4-5", "claude-haiku-4-5-20251001"), _HAIKU),
    "Qwen/Qwen3-Next-80B-A3B-Thinking": _plain(0.15, 1.50),  # smolagents' InferenceClientModel default
    "Qwen/Qwen3-Next-80B-A3B-Instruct": _plain(0.15, 1.50),
    "Qwen/Qwen3-Coder-480B-A35B-Instruct": _plain(2.00, 2.00),
    "Qwen/Qwen3-235B-A22B-Instruct-2507": _plain(0.20, 0.60),
    "Qwen/Qwen3-8B": _plain(0.05, 0.25),
    "meta-llama/Llama-3.3-70B-Instruct": _plain(0.88, 0.88),
    "deepseek-ai/DeepSeek-V3.1": _plain(0.60, 1.70),
    "openai/gpt-oss-120b": _plain(0.15, 0.60),
}


def _parse_price(model_id: str, value) -> Price:
    if isinstance(value, (list, tuple)) and len(value) in (2, 4):
        value = dict(zip(("input", "output", "cache_write", "cache_read"), value, strict=False))
    if not isinstance(value, dict) or not {"input", "output"} <= set(value):
        raise ValueError(f"{PRICES_ENV}: the price of {model_id!r} needs at least input and output dollars per "
                         f"million tokens, e.g. {{\"input\": 3, \"output\": 15}}; got {value!r}")
    unknown = set(value) - {"input", "output", "cache_write", "cache_read"}
    if unknown:
        raise ValueError(f"{PRICES_ENV}: unknown price keys {sorted(unknown)} for {model_id!r}; use input, output, "
                         "cache_write and cache_read")
    return Price(value["input"], value["output"], value.get("cache_write", value["input"]),
                 value.get("cache_read", value["input"]))


def load_prices(env: dict | None = None) -> dict[str, Price]:
    """The built-in table with `ML_INTERN_LLM_PRICES` (JSON, or a file holding it) on top; ValueError when it
    cannot be read."""
    text = (os.environ if env is None else env).get(PRICES_ENV, "").strip()
    if not text:
        return dict(BUILTIN_PRICES)
    if not text.startswith("{"):
        try:
            text = Path(text).expanduser().read_text()
        except OSError as err:
            raise ValueError(f"{PRICES_ENV} is neither JSON nor a readable file: {err}") from err
    try:
        given = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{PRICES_ENV} is not valid JSON ({err})") from err
    if not isinstance(given, dict):
        raise ValueError(f"{PRICES_ENV} must be a JSON object of model id to price")
    return {**BUILTIN_PRICES, **{str(model): _parse_price(str(model), value) for model, value in given.items()}}


def price_of(model_id: str | None, prices: dict[str, Price] | None = None) -> Price | None:
    """The price of `model_id` (a provider suffix like ":together" after a Hub id is ignored), or None."""
    prices = BUILTIN_PRICES if prices is None else prices
    model_id = str(model_id or "")
    if model_id.startswith(FREE_PREFIXES):
        return Price(0.0, 0.0, 0.0, 0.0)
    if model_id in prices:
        return prices[model_id]
    if "/" in model_id and ":" in model_id:
        return prices.get(model_id.rsplit(":", 1)[0])
    return None


def unknown_price_text(model_id: str | None, cap_usd: float) -> str:
    """Why a session with a cap cannot run on a model without a price, and what to do."""
    example = json.dumps({str(model_id or "MODEL"): {"input": 3, "output": 15}})
    return (f"The price of the LLM {model_id!r} is unknown, so its spend cannot be held to the ${cap_usd:g} "
            f"budget and nothing was run. Give its price (dollars per million tokens) in {PRICES_ENV}, e.g. "
            f"{PRICES_ENV}='{example}', or choose a model with a known price, or run without a cap "
            "(ML_INTERN_BUDGET_USD=none).")
