"""time_left: how long a benchmark run has before it stops (its time limit minus the safety margin)."""

from __future__ import annotations

import time
from collections.abc import Callable

from smolagents import Tool

from tools.context import ToolContext


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


class TimeLeftTool(Tool):
    name = "time_left"
    description = """Time left in this benchmark run before it is stopped (the limit minus a safety margin).
Plan against it: a job or evaluation that does not end before then is canceled. Save a final model early.
Returns {"minutes_left", "stop_at", "limit_at", "margin_minutes", "elapsed_minutes"}.
Example: t = time_left(); print(t["minutes_left"])"""
    inputs = {}
    output_type = "object"

    def __init__(self, ctx: ToolContext, clock: Callable[[], float] = time.time):
        super().__init__()
        self.ctx, self.clock = ctx, clock

    def forward(self) -> dict:
        rules, now = self.ctx.rules, self.clock()
        return {"minutes_left": round(max(0.0, rules.stop_at - now) / 60, 2), "stop_at": _utc(rules.stop_at),
                "limit_at": _utc(rules.limit_at), "margin_minutes": round(rules.margin_s / 60, 2),
                "elapsed_minutes": round(max(0.0, now - rules.started_at) / 60, 2)}
