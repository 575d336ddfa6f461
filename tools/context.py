"""What every tool is handed when it is built: settings, the ledger, the job backend, and a
callback to report progress into the session's event stream.

Tools never import `agent`; the session builds one ToolContext and passes it to `build_tools`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tools.ledger import Ledger
from tools.settings import Settings

if TYPE_CHECKING:
    from tools.backends.jobs import JobBackend

Emit = Callable[[str, dict], None]


def _drop(kind: str, payload: dict) -> None:
    """Default emitter: tools used outside a session report nowhere."""


@dataclass
class ToolContext:
    settings: Settings
    ledger: Ledger
    jobs: JobBackend
    emit: Emit = _drop
    experiment_id: int | None = None
    goal: str = "ad-hoc experiment"
    session_id: str | None = None
    auto_approve: bool = True
    approve: Callable[[str, dict], bool] | None = field(default=None, repr=False)

    def current_experiment(self, **fields) -> int:
        """The experiment the tools record into, created on first use from the session's goal."""
        if self.experiment_id is None:
            self.experiment_id = self.ledger.create_experiment(
                goal=self.goal, session_id=self.session_id, **fields)
        return self.experiment_id

    def ask_approval(self, action: str, details: dict) -> bool:
        """True when a paid action may go ahead: auto-approve, or the user said yes."""
        if self.auto_approve:
            return True
        return bool(self.approve and self.approve(action, details))
