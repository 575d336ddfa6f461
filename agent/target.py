"""The budget of a headless run, and the guard that holds the agent to it and to its targets
(`tools.targets`).

    targets = parse_targets("gsm8k>=0.60, ifeval>0.5")     # from tools.targets
    guard = RunGuard(ctx, targets, Budget(usd=20, hours=10))

The guard's `after_step` is a smolagents step callback: once the session's spend (the spend ledger: LLM calls,
ended jobs and the holds of running ones, tools/spend.py) or the wall time since the experiment started passes the
budget, it cancels the experiment's running jobs, records why, and interrupts the agent. Its
`target_is_met_or_unreachable` is a smolagents final-answer check: while a target is unmet and budget remains, a
final answer is refused (the refusal reaches the model as the step's error) unless it says the target cannot be
reached and gives the evidence. `settle` records the outcome: met, budget_exhausted, unreachable,
stopped, or done (no target).

Every session has a `SpendMeter` (a step callback before the guard's): it records each LLM call's cost
(agent/pricing.py) in the spend ledger, gives the token_usage event its figures, refuses to run on a model without
a price under a cap, and stops a session that has no guard holding the money cap once the cap is spent.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from agent.pricing import load_prices, price_of, unknown_price_text
from tools.context import ToolContext
from tools.ledger import Ledger
from tools.spend import money_text, settle_job
from tools.targets import Target

UNREACHABLE_PATTERN = re.compile(r"cannot (?:be )?reach|can't (?:be )?reach|cannot be met|can't be met|"
                                 r"target (?:is )?unreachable|not reachable", re.I)
MIN_EVIDENCE_WORDS = 12
STATUSES = ("met", "budget_exhausted", "unreachable", "stopped", "done")


@dataclass(frozen=True)
class Budget:
    usd: float | None = None
    hours: float | None = None

    def __post_init__(self):
        for name, value in (("--budget-usd", self.usd), ("--budget-hours", self.hours)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be a positive number, got {value}")

    def __bool__(self) -> bool:
        return self.usd is not None or self.hours is not None

    def __str__(self) -> str:
        parts = [f"${self.usd:g}" if self.usd is not None else "", f"{self.hours:g} h" if self.hours else ""]
        return ", ".join(p for p in parts if p) or "none"


def target_progress(ledger: Ledger, experiment_id: int, targets: list[Target], *, user: str) -> list[dict]:
    """For each target: {"target", "best" (the user's best full trained eval, or None), "met"}."""
    rows = []
    for target in targets:
        best = ledger.best_eval(experiment_id, target.task, lower_is_better=target.lower_is_better, user=user)
        rows.append({"target": target, "best": best, "met": target.met_by(best and best["value"])})
    return rows


def explains_unreachable(answer: str) -> bool:
    """True when a final answer says the target cannot be reached and backs it with numbers and a reason."""
    text = str(answer or "")
    return bool(UNREACHABLE_PATTERN.search(text) and re.search(r"\d", text)
                and len(text.split()) >= MIN_EVIDENCE_WORDS)


def goal_text(task: str, targets: list[Target], budget: Budget) -> str:
    """The task as the agent reads it: the user's words, then the target and budget it is held to."""
    lines = [task]
    if targets:
        lines.append("Target (checked against the ledger's best full evaluation of a trained checkpoint): "
                     + ", ".join(str(t) for t in targets) + ". Keep iterating until it is met; a final answer "
                     "is refused while it is unmet and budget remains, unless you show it cannot be reached: "
                     "say 'target unreachable' and give the scores you measured and why.")
    if budget:
        lines.append(f"Budget: {budget} (LLM calls plus training and evaluation jobs, each job's most it can cost "
                     "held from its submit; wall time since the experiment started). A job that does not fit what "
                     "is left is refused, and the run is stopped when it is spent.")
    return "\n\n".join(lines)


class RunGuard:
    """Holds one headless run to its targets and budget (see the module docstring)."""

    def __init__(self, ctx: ToolContext, targets: list[Target], budget: Budget,
                 clock: Callable[[], float] = time.time):
        self.ctx, self.targets, self.budget = ctx, list(targets), budget
        self.clock = clock
        self.stop_reason: str | None = None

    @property
    def experiment_id(self) -> int:
        return self.ctx.current_experiment()

    def start(self) -> int:
        """Record the target and budget on the session's experiment (created now if needed)."""
        fields = {}
        if self.targets:
            fields.update(target=", ".join(str(t) for t in self.targets), task=self.targets[0].task)
        if self.budget:
            fields["budget_json"] = json.dumps(asdict(self.budget))
        self.ctx.ledger.update_experiment(self.experiment_id, **fields)
        if self.budget.hours is not None:  # tools stop waiting then (tools/spend.py budget_spent)
            self.ctx.deadline = self._started() + self.budget.hours * 3600
        return self.experiment_id

    def _started(self) -> float:
        return self.ctx.ledger.get_experiment(self.experiment_id, user=self.ctx.user)["created_at"]

    def spent(self) -> dict:
        """The session's spend ledger (`Ledger.session_spend`: "llm_usd", "jobs_usd", "reserved_usd" held for running
        jobs), their sum "usd", and the "hours" since the experiment started."""
        spend = self.ctx.ledger.session_spend(self.ctx.session_id, user=self.ctx.user)
        return {**spend, "usd": spend["total_usd"], "hours": (self.clock() - self._started()) / 3600}

    def over_budget(self) -> str | None:
        """Why the budget is spent, or None while some is left."""
        spent = self.spent()
        if self.budget.usd is not None and spent["usd"] >= self.budget.usd:
            held = f", {money_text(spent['reserved_usd'])} of it held for running jobs" if spent["reserved_usd"] else ""
            return f"budget spent: ${spent['usd']:.2f} of ${self.budget.usd:g}{held}"
        if self.budget.hours is not None and spent["hours"] >= self.budget.hours:
            return f"time budget spent: {spent['hours']:.2f} h of {self.budget.hours:g} h"
        return None

    def after_step(self, step, agent=None) -> None:
        """smolagents step callback: stop the agent once the budget is spent."""
        if self.stop_reason or not self.budget:
            return
        reason = self.over_budget()
        if reason is None:
            return
        self.stop_reason = reason
        canceled = self._cancel_running_jobs()
        note = f"; canceled jobs {', '.join(canceled)}" if canceled else ""
        self.ctx.ledger.update_experiment(self.experiment_id, stop_reason=reason)
        self.ctx.emit("notice", {"text": f"Stopping: {reason}{note}.", "stop_reason": reason})
        if agent is not None:
            agent.interrupt()

    def all_met(self) -> bool:
        return bool(self.targets) and all(row["met"] for row in self.progress())

    def progress(self) -> list[dict]:
        return target_progress(self.ctx.ledger, self.experiment_id, self.targets, user=self.ctx.user)

    def target_is_met_or_unreachable(self, final_answer, memory=None, agent=None) -> bool:
        """smolagents final-answer check; raises with what to do next when the answer comes too early."""
        if not self.targets or self.all_met() or self.over_budget() or explains_unreachable(final_answer):
            return True
        unmet = []
        for row in self.progress():
            if not row["met"]:
                best = row["best"]
                score = (f"best so far {best['value']:.4g} (run {best['run_id']})" if best
                         else "no full evaluation of a trained checkpoint yet")
                unmet.append(f"{row['target']} ({score})")
        spent = self.spent()
        left = "" if not self.budget else f" Budget used: ${spent['usd']:.2f}, {spent['hours']:.2f} h of {self.budget}."
        raise ValueError(f"the target is not met yet: {'; '.join(unmet)}.{left} Keep going: read the last "
                         "evaluation, change one thing (write_training_script with parent_run_id and change), "
                         "retrain and evaluate. If it truly cannot be reached, call final_answer with 'target "
                         "unreachable' and the evidence: the scores you measured and why more will not help.")

    def settle(self, final_answer: str | None) -> str:
        """Record how the run ended on the experiment (status, stop_reason, finished_at); return the status."""
        if self.all_met():
            status = "met"
            reason = "; ".join(f"{r['target']} met by run {r['best']['run_id']} ({r['best']['value']:.3f})"
                               for r in self.progress())
        elif self.stop_reason:
            status, reason = "budget_exhausted", self.stop_reason
        elif self.targets and final_answer is not None and explains_unreachable(final_answer):
            status, reason = "unreachable", str(final_answer)[:500]
        elif not self.targets and final_answer is not None:
            status, reason = "done", "the agent gave its final answer"
        else:
            status = "stopped"
            reason = ("the agent stopped before meeting the target (error, interruption or step limit)"
                      if self.targets else "the agent stopped without a final answer")
        self.ctx.ledger.update_experiment(self.experiment_id, status=status, stop_reason=reason,
                                          finished_at=self.clock())
        return status

    def _cancel_running_jobs(self) -> list[str]:
        canceled = []
        for run in self.ctx.ledger.runs_for(self.experiment_id, user=self.ctx.user):
            if run["status"] == "running" and run["job_id"]:
                try:
                    self.ctx.jobs.cancel(run["job_id"])
                except Exception as err:  # stopping the agent matters more than one cancel
                    self.ctx.emit("notice", {"text": f"could not cancel job {run['job_id']}: {err}"})
                    continue
                now = self.clock()
                self.ctx.ledger.update_run(run["id"], status="canceled", finished_at=now,
                                           error="canceled: budget spent")
                settle_job(self.ctx, run, self.ctx.jobs.cost(run["hardware"], run["started_at"], now))
                canceled.append(run["job_id"])
        return canceled


class SpendMeter:
    """Meters one session's LLM spend against its cap (`ctx.budget_usd`; see the module docstring).

    `after_step` is a smolagents step callback (before the guard's, so the guard sees this step's call): it records
    the step's LLM call in the spend ledger and keeps {"call_usd" (None: no price), "spent_usd", "cap_usd"} for the
    step's token_usage event (`figures`); with `stops` it interrupts the agent once the spend reaches the cap.
    """

    def __init__(self, ctx: ToolContext, stops: bool = True):
        self.ctx, self.stops = ctx, stops
        self.stop_reason: str | None = None
        self._figures: dict[int, dict] = {}
        self._prices = None

    def price(self, model_id: str | None):
        if self._prices is None:
            self._prices = load_prices()
        return price_of(model_id, self._prices)

    def refusal(self, model_id: str | None) -> str | None:
        """Why no turn may run on `model_id`: a cap is set and its price is unknown (or the price table is broken)."""
        if self.ctx.budget_usd is None:
            return None
        try:
            known = self.price(model_id) is not None
        except ValueError as err:
            return f"{err}; nothing was run."
        return None if known else unknown_price_text(model_id, self.ctx.budget_usd)

    def after_step(self, step, agent=None) -> None:
        usage = getattr(step, "token_usage", None)
        if usage is None:
            return
        ctx, model = self.ctx, getattr(agent, "model", None)
        model_id = getattr(model, "model_id", None)
        cache = getattr(model, "last_cache_usage", None) or {}
        read, write = int(cache.get("cache_read_input_tokens") or 0), int(cache.get("cache_creation_input_tokens") or 0)
        tokens = {"input_tokens": max(0, usage.input_tokens - read - write), "output_tokens": usage.output_tokens,
                  "cache_write_tokens": write, "cache_read_tokens": read}
        try:
            price = self.price(model_id)
        except ValueError:
            price = None
        usd = price.cost(**tokens) if price is not None else None
        if usd or (usd is None and any(tokens.values())):
            detail = {"model": model_id, "step": step.step_number, **tokens}
            if usd is None:
                detail["unpriced"] = True
            ctx.ledger.record_spend(ctx.session_id, ctx.experiment_id, "llm", usd or 0.0, detail, user=ctx.user)
        spent, cap = ctx.spent_usd(), ctx.budget_usd
        self._figures[step.step_number] = {"call_usd": None if usd is None else round(usd, 6),
                                           "spent_usd": round(spent, 6), "cap_usd": cap}
        if self.stops and cap is not None and spent >= cap and self.stop_reason is None:
            self.stop_reason = f"budget spent: {money_text(spent)} of {money_text(cap)}"
            ctx.emit("notice", {"text": f"Stopping: {self.stop_reason} (LLM calls and jobs, running jobs' holds "
                                        "included).", "stop_reason": self.stop_reason})
            if agent is not None:
                agent.interrupt()

    def figures(self, step) -> dict:
        """The spend figures for `step`'s token_usage event (once), empty when the step was not metered."""
        return self._figures.pop(getattr(step, "step_number", None), {})
