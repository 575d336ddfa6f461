"""Fixtures the research tool tests share."""

from __future__ import annotations

import pytest


@pytest.fixture
def slept(monkeypatch) -> list[float]:
    """The delays the arXiv client waited, in seconds, recorded instead of slept."""
    calls: list[float] = []
    monkeypatch.setattr("tools.research.arxiv.sleep", calls.append)
    return calls
