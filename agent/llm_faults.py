"""What an LLM call may wait for, and the plain words for each way it fails.

The limits are AgentConfig's `llm_*` settings (`ML_INTERN_LLM_*` variables); these are their defaults.
The clients' own retries (anthropic, openai) back off exponentially on 429, 5xx and 529 overloaded and
honour Retry-After; agent/models.py retries what they cannot see: a Claude stream that breaks off.
"""

from __future__ import annotations

import random

CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 600.0  # a whole reply that is not streamed (the anthropic SDK's own default)
STREAM_IDLE_TIMEOUT_S = 60.0  # silence inside a streamed reply; the API pings a live stream
MAX_RETRIES = 3
RETRYABLE_STREAM_ERRORS = ("overloaded_error", "api_error", "rate_limit_error")


class ModelBackendError(RuntimeError):
    """The LLM backend refused or failed a call; the message says what to do about it."""


def explain_api_error(error: Exception, model_id: str, timeout_s: float | None = None,
                      attempts: int = 1) -> ModelBackendError:
    """Turn an `anthropic` SDK error into one that says what went wrong and what to do."""
    import anthropic

    if isinstance(error, anthropic.APITimeoutError):
        return ModelBackendError(
            f"The Anthropic API did not answer within {timeout_s or READ_TIMEOUT_S:g} s ({attempts} tries): it may "
            "be down or the network stalled. Try again in a few minutes; the limits are the ML_INTERN_LLM_* settings.")
    if isinstance(error, anthropic.APIConnectionError):
        return ModelBackendError(
            f"Could not reach the Anthropic API ({error}): check the network connection or "
            "the Anthropic base URL setting.")
    status = getattr(error, "status_code", None)
    kind = getattr(error, "type", None)
    detail = getattr(error, "api_message", None) or str(error)
    if status == 401 or kind == "authentication_error":
        text = "ANTHROPIC_API_KEY was rejected (401): set a valid key in Settings or the environment."
    elif status == 403 or kind == "permission_error":
        text = f"The Anthropic API key may not use {model_id} (403): use another key or model."
    elif status == 404 or kind == "not_found_error":
        text = f"Anthropic does not know the model {model_id!r} (404): pick another model id in Settings."
    elif status == 429 or kind == "rate_limit_error":
        text = "Anthropic rate limit reached (429) after retries: wait a minute, or raise the key's limits."
    elif status == 529 or kind == "overloaded_error":
        text = "Anthropic is overloaded (529) after retries: try again in a few minutes."
    elif status == 400 or kind == "invalid_request_error":
        text = "Anthropic rejected the request (400)."
    else:
        text = f"The Anthropic API failed ({status or kind or type(error).__name__})."
    return ModelBackendError(f"{text} Anthropic said: {detail}")


def broken_stream_error(cause: str, sent: int, attempts: int) -> ModelBackendError:
    """The plain words for a Claude reply stream that broke off; what arrived of it is not an answer."""
    tries = "" if attempts == 1 else f" (tried {attempts} times)"
    if sent:
        return ModelBackendError(
            f"Claude's reply broke off after {sent} characters: {cause}{tries}. The partial reply was "
            "discarded and nothing of it was run; send the message again to continue.")
    return ModelBackendError(f"Claude's reply broke off before any text arrived: {cause}{tries}. "
                             "Try again in a few minutes; the session is still usable.")


def plain_error(error: BaseException) -> str:
    """What to tell the user about a failed turn: a backend's own words (smolagents wraps them in an
    AgentGenerationError), else the error's type and message."""
    cause = error.__cause__
    if isinstance(cause, ModelBackendError):
        return str(cause)
    return f"{type(error).__name__}: {error}"


def backoff_s(attempt: int) -> float:
    """Seconds to wait before retry `attempt + 1`: the anthropic SDK's schedule (0.5 s doubling to 8 s, jitter)."""
    return min(0.5 * 2 ** attempt, 8.0) * (1 - 0.25 * random.random())
