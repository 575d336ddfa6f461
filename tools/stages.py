"""The one vocabulary for where a job or a training run stands, shown by every tool and kept in the ledger.

A job backend reports one of STAGES for a job (`JobStatus.stage`); a run in the ledger holds the
same words in its `status`, plus CREATED:

- "created": the run is written (script and config in the ledger) but not submitted yet; runs only.
- "queued": submitted, waiting for hardware; jobs only (a run is "running" from submit on).
- "running": the job is executing.
- "completed": the job exited cleanly.
- "failed": the job exited with an error, or its process vanished without an exit code.
- "canceled": stopped on request.
- "timeout": killed when it hit its time limit.
"""

from __future__ import annotations

CREATED = "created"
STAGES = ("queued", "running", "completed", "failed", "canceled", "timeout")
ACTIVE = frozenset({"queued", "running"})
TERMINAL = frozenset({"completed", "failed", "canceled", "timeout"})
