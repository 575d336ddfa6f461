"""The app's ledger: one per data directory, opened (its schema checked) once."""

from __future__ import annotations

import functools
from pathlib import Path

from tools.settings import Settings


def ledger(data_dir: str | Path | None = None):
    """The ledger of `data_dir` (default: the configured one)."""
    return _open(Path(data_dir or Settings.from_env().data_dir).resolve())


@functools.cache
def _open(data_dir: Path):
    from tools.ledger import Ledger

    return Ledger.in_dir(data_dir)
