"""What every tool is handed when it is built: settings, the ledger, the job backend, the user it acts for,
and a callback to report progress into the session's event stream.

Tools never import `agent`; the session builds one ToolContext and passes it to `build_tools`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tools.errors import ToolError
from tools.ledger import LOCAL_USER, Ledger, checked_user
from tools.settings import Settings

if TYPE_CHECKING:
    from tools.backends.jobs import JobBackend
    from tools.run_rules import RunRules

Emit = Callable[[str, dict], None]


def _drop(kind: str, payload: dict) -> None:
    """Default emitter: tools used outside a session report nowhere."""


@dataclass
class ToolContext:
    """`user` owns everything the tools record and is the only one whose rows they read: the signed-in
    Hugging Face username on a Space, `LOCAL_USER` for the one local user (validated: it is a path segment).

    `budget_usd` caps what the session may spend and hold (LLM calls, jobs, reservations: tools/spend.py), None for
    no cap; `deadline` (epoch seconds) is when a time budget ends, None for none."""

    settings: Settings
    ledger: Ledger
    jobs: JobBackend
    emit: Emit = _drop
    experiment_id: int | None = None
    goal: str = "ad-hoc experiment"
    session_id: str | None = None
    user: str = LOCAL_USER
    auto_approve: bool = True
    approve: Callable[[str, dict], bool] | None = field(default=None, repr=False)
    # Set when the user stops the session's turn: tools that wait (on a job, an evaluation) return at once.
    stop_requested: threading.Event = field(default_factory=threading.Event, repr=False)
    budget_usd: float | None = None
    deadline: float | None = None
    rules: RunRules | None = None  # a benchmark run's rules (tools/run_rules.py); None outside one

    def __post_init__(self):
        checked_user(self.user)

    def spent_usd(self) -> float:
        """What the session has spent and holds so far (`Ledger.session_spend`'s total)."""
        return self.ledger.session_spend(self.session_id, user=self.user)["total_usd"]

    def current_experiment(self, **fields) -> int:
        """The experiment the tools record into, created on first use from the session's goal."""
        if self.experiment_id is None:
            self.experiment_id = self.ledger.create_experiment(
                goal=self.goal, session_id=self.session_id, user=self.user, **fields)
        return self.experiment_id

    @property
    def workspace(self) -> Path:
        """The session's workspace, per user and per session: the working directory of its code actions and where
        relative paths start."""
        return Path(self.settings.data_dir) / "workspaces" / self.user / (self.session_id or "default")

    def data_area(self, area: str = "") -> Path:
        """The user's own folder of one of the data directory's areas (`runs`, `datasets`, `smoke`, `evals`), or
        with no area the folder that holds them: the data directory's own for the one local user, `users/<user>/`
        under it for each user of a Space."""
        root = Path(self.settings.data_dir)
        return root / area if self.user == LOCAL_USER else root / "users" / self.user / area

    def job_run(self, job_id: str) -> dict:
        """The ledger run of `job_id` (training or evaluation) when this user submitted it; a job that is not
        theirs is an unknown job, with the same ToolError as one that never existed."""
        run = self.ledger.run_by_job(job_id, user=self.user)
        if run is None:
            raise ToolError(f"unknown job id {job_id!r} on the {self.jobs.name} backend; use the job_id that "
                            "submit_job or run_evaluation(as_job=True) returned.")
        return run

    def ask_approval(self, action: str, details: dict) -> bool:
        """True when a paid action may go ahead: auto-approve, or the user said yes."""
        if self.auto_approve:
            return True
        return bool(self.approve and self.approve(action, details))
