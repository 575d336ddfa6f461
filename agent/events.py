"""The typed events a turn produces. The app, the CLI and the ledger all consume these.

Every event is an `Event` with a `kind` from `EVENT_KINDS`; `text` is what a human reads and
`data` holds the structured details (job ids, scores, token counts).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Literal

EventKind = Literal["user", "thought", "code", "tool_result", "run_created", "job_update", "eval_result",
                    "preflight", "diagnosis", "notice", "error", "final_answer", "token_usage", "delta",
                    "approval"]
EVENT_KINDS: tuple[str, ...] = EventKind.__args__
PERSISTED_KINDS = frozenset(EVENT_KINDS) - {"delta"}


@dataclass
class Event:
    kind: EventKind
    text: str = ""
    data: dict = field(default_factory=dict)
    step: int | None = None
    ts: float = field(default_factory=time.time)

    def __post_init__(self):
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: dict) -> Event:
        return cls(**payload)
