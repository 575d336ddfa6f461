"""Money on the ground floor: a job's cost is held against the session's cap before it is submitted, and the
hold becomes the job's real cost when it ends.

    with reserve_job(ctx, "train", "a100-large", timeout_s=7200, run_id=3) as held:   # ToolError past the cap
        job_id = ctx.jobs.submit(...)
        held.attach(job_id)                     # an exception before this gives the hold back
    settle_job(ctx, run, cost_usd)              # the job ended: the hold is released, its cost recorded
    budget_spent(ctx)                           # why waiting should stop now, or None

The cap (`ctx.budget_usd`, None for no cap) covers everything the session spent or holds: LLM calls, ended jobs
and the holds of jobs still running (`Ledger.session_spend`). A job's hold is its flavor's hourly price × its
timeout, the most it can cost; a job whose price is unknown is refused under a cap (fail closed), and a job whose
real cost is unknown when it ends keeps its hold as its cost. Local jobs run on this machine and cost nothing.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from tools.context import ToolContext
from tools.errors import ToolError

_LOCK = threading.Lock()  # one check-and-hold at a time, so two submits cannot both fit the same headroom


def job_estimate(ctx: ToolContext, flavor: str | None, timeout_s: float) -> float | None:
    """The most a job on `flavor` can cost in `timeout_s` (price × time), 0 locally; None when its price is unknown."""
    if ctx.jobs.name == "local":
        return 0.0
    name = flavor or "cpu-basic"
    price = next((f.price_per_hour for f in ctx.jobs.flavors() if f.name == name), None)
    return None if price is None else round(price * float(timeout_s) / 3600, 6)


def money_text(usd: float) -> str:
    """Dollars to the cent; amounts under a cent with their first significant digits ("$0.0042")."""
    return f"${usd:,.2f}" if usd == 0 or abs(usd) >= 0.01 else f"${usd:.2g}"


class Reservation:
    """Money held for one job about to be submitted; `attach` names the job once it has an id."""

    def __init__(self, ctx: ToolContext, kind: str, usd: float, spend_id: int | None):
        self.ctx, self.kind, self.usd, self.spend_id = ctx, kind, usd, spend_id
        self.job_id: str | None = None

    def attach(self, job_id: str) -> None:
        self.job_id = job_id
        if self.spend_id is not None:
            self.ctx.ledger.link_spend(self.spend_id, job_id)

    def release(self, reason: str) -> None:
        if self.spend_id is not None and self.usd > 0:
            ctx = self.ctx
            ctx.ledger.record_spend(ctx.session_id, ctx.experiment_id, "release", self.usd,
                                    {"reservation": self.spend_id, "reason": reason}, user=ctx.user)


def hold(ctx: ToolContext, kind: str, flavor: str | None, timeout_s: float, **detail) -> Reservation:
    """Hold a job's estimated cost, or raise ToolError when it would cross the cap or its price is unknown."""
    with _LOCK:
        usd = job_estimate(ctx, flavor, timeout_s)
        if usd == 0:
            return Reservation(ctx, kind, 0.0, None)
        cap = ctx.budget_usd
        what = (f"{'an evaluation' if kind == 'eval' else 'a training'} job on {flavor or 'cpu-basic'} for up to "
                f"{timeout_s / 60:g} minutes")
        if cap is not None:
            if usd is None:
                raise ToolError(f"the price of {what} is unknown, so it cannot be held to the session's "
                                f"{money_text(cap)} budget; nothing was submitted. Pick a flavor listed with a price "
                                "(see the flavor list in submit_job's errors), or run it locally.")
            spent = ctx.spent_usd()
            if spent + usd > cap + 1e-9:
                raise ToolError(f"{what} may cost {money_text(usd)} (price × timeout), and the session has spent or "
                                f"holds {money_text(spent)} of its {money_text(cap)} budget: "
                                f"{money_text(max(0.0, cap - spent))} is left, so nothing was submitted. Use a "
                                "cheaper flavor or a shorter timeout, or stop here and report.")
        if usd is None:
            return Reservation(ctx, kind, 0.0, None)  # no cap: nothing to hold it against, its cost counts when it ends
        spend_id = ctx.ledger.record_spend(ctx.session_id, ctx.experiment_id, "reserve", usd, {
            "kind": kind, "flavor": flavor or "cpu-basic", "timeout_s": timeout_s, **detail}, user=ctx.user)
        return Reservation(ctx, kind, usd, spend_id)


@contextmanager
def reserve_job(ctx: ToolContext, kind: str, flavor: str | None, timeout_s: float, **detail):
    """`hold` as a context: the hold is given back when the block raises before `attach` (nothing was submitted)."""
    held = hold(ctx, kind, flavor, timeout_s, **detail)
    try:
        yield held
    except BaseException:
        if held.job_id is None:
            held.release("not submitted")
        raise


def settle_job(ctx: ToolContext, run: dict, cost_usd: float | None) -> None:
    """Once a run's job ended: release what was held for it and record its cost (the hold itself when the real
    cost is unknown: fail closed). Recorded once per job."""
    job_id = run.get("job_id")
    if not job_id:
        return
    ledger = ctx.ledger
    held = ledger.job_spend(job_id, user=ctx.user)
    if held["settled"]:
        return
    session_id, experiment_id = ctx.session_id, run.get("experiment_id") or ctx.experiment_id
    if held["reserved_usd"]:
        ledger.record_spend(session_id, experiment_id, "release", held["reserved_usd"],
                            {"job_id": job_id, "reason": "job ended"}, user=ctx.user)
    usd, estimated = (cost_usd, False) if cost_usd is not None else (held["reserved_usd"], True)
    if usd or held["reserved_usd"]:
        ledger.record_spend(session_id, experiment_id, run.get("kind") or "train", usd, {
            "job_id": job_id, "run_id": run.get("id"), "hardware": run.get("hardware"), "estimated": estimated},
            user=ctx.user)


def budget_spent(ctx: ToolContext) -> str | None:
    """Why the session's budget leaves nothing to wait for (its cap reached, its time budget over), or None."""
    if ctx.deadline is not None and time.time() >= ctx.deadline:
        return "the time budget is spent"
    if ctx.budget_usd is not None:
        spent = ctx.spent_usd()
        if spent >= ctx.budget_usd:
            return (f"the budget is spent ({money_text(spent)} of {money_text(ctx.budget_usd)}, running jobs' "
                    "holds included)")
    return None
