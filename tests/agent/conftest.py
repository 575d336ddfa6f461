"""Fixtures the agent tests share."""

from __future__ import annotations

import pytest

from tests.fakes.anthropic_api import start_fake_anthropic


@pytest.fixture
def fake():
    """The loopback fake of the Anthropic Messages API (tests/fakes/anthropic_api.py)."""
    server = start_fake_anthropic()
    yield server
    server.close()
