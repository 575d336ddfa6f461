"""Bounded context for long sessions: what the LLM reads at step 300 is about the size it was at step 30.

smolagents renders the memory as the system prompt followed by each step's `to_messages()`
(`agent.write_memory_to_messages`). `ContextPolicy` is a step callback that keeps, of that:

- the system prompt and each task, as they are;
- the last `keep_last` action steps verbatim;
- older steps condensed in place, `chunk` at a time, into one message per chunk: each step is one line,
  its code abridged and its observation or error cut to what matters (errors, numbers, ids, paths),
  or an LLM summary when `summarize` is given (its failure falls back to those lines);
- when the condensed chunks together pass `max_condensed_chars`, they fold into one shorter chunk (rare);
- a pinned state block (goal, targets, budget spent and left, open jobs, best scores, runs and datasets,
  read from the ledger by `pinned_state`), sent last on every call.

Prompt caching: the messages before the newest chunk never change between condensations, and the
pinned block changes every call, so the condensed chunks go out as `StableBlock`s (the last one holds
a cache breakpoint) and the pinned block as an `UncachedBlock`, after the memory's breakpoint
(agent/models.py). With Claude, a call reads everything up to the previous step from the cache;
a condensation rewrites only the newest chunk and the verbatim steps after it.

Older steps' `model_input_messages` (a full copy of each call's input) are dropped, so memory stays
bounded too.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from smolagents.memory import ActionStep, TaskStep
from smolagents.models import ChatMessage, MessageRole

from agent.models import StableBlock, UncachedBlock
from tools.context import ToolContext
from tools.lineage import baseline_of, best, judged_tasks, runs_in_order
from tools.stages import ACTIVE
from tools.untrusted import BEGIN, END, fence

CONDENSED_HEADER = "Condensed steps"
BOILERPLATE = {"Execution logs:", "Last output from code snippet:", "None", "Observation:"}
ERROR_WORDS = re.compile(r"error|exception|traceback|fail|refused|denied|not found|invalid|nan\b|out of memory|"
                         r"\boom\b|timeout|timed out|killed|cannot|can't|unknown", re.I)
IDS_AND_PATHS = re.compile(r"/|\b[0-9a-f]{7,}\b|\b\w+[-_]\d+\b|\b(?:job|run|eval|dataset|checkpoint)s?\b|"
                           r"\w+_id\b|\.(?:py|json|jsonl|yaml|csv|parquet)\b", re.I)
MIN_LINE_CHARS = 80
# A fenced region of third-party text (tools/untrusted.py): condensing keeps only where it came from, so that
# no line of it can reach the LLM outside its fence.
FENCED = re.compile(re.escape(BEGIN.split("{source}")[0]) + r"(.{0,300}?)" + re.escape(BEGIN.split("{note}")[1])
                    + r".*?(?:" + re.escape(END) + r"|\Z)", re.S)
OMITTED = re.compile(r"\((\d+) older steps without errors left out\)")
Summarize = Callable[[str], str]


def _weight(line: str) -> int:
    if ERROR_WORDS.search(line):
        return 3
    if IDS_AND_PATHS.search(line):
        return 2
    return 1 if any(c.isdigit() for c in line) else 0


def gist(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters of what matters: its lines with errors first, then ids and
    paths, then numbers, kept in their order and joined by " | "; lines with none of those only if nothing
    else is there. Fenced third-party text is left out, its source named."""
    lines = [" ".join(line.split()) for line in without_untrusted(text or "").splitlines()]
    lines = [line for line in lines if line and line not in BOILERPLATE]
    weights = [_weight(line) for line in lines]
    if any(weights):
        lines = [line for line, weight in zip(lines, weights, strict=True) if weight]
        weights = [weight for weight in weights if weight]
    kept, size = [], 0
    for i in sorted(range(len(lines)), key=lambda i: (-weights[i], i)):
        piece = lines[i][:limit]
        if kept and size + len(piece) + 3 > limit:
            continue
        kept.append(i)
        size += len(piece) + 3
    return " | ".join(lines[i][:limit] for i in sorted(kept))[:limit]


def without_untrusted(text: str) -> str:
    """`text` with each fenced region of third-party text replaced by a note naming its source."""
    return FENCED.sub(lambda m: f"[untrusted data from {m.group(1)} left out]", text)


def code_gist(code: str, limit: int) -> str:
    """The code's non-comment lines on one line, cut to `limit` characters."""
    lines = [line.strip() for line in (code or "").splitlines()]
    text = "; ".join(line for line in lines if line and not line.startswith("#"))
    return text if len(text) <= limit else text[:limit - 1] + "…"


def step_line(step: ActionStep, limit: int) -> str:
    """One action step on one line: `#12 job_status('j-1') → stage running | step 40/100 loss 1.23`."""
    code = code_gist(step.code_action or str(step.model_output or ""), max(limit // 3, 30))
    head = f"#{step.step_number} {code} → "
    room = max(limit - len(head), 20)
    if step.error is not None:
        error = str(step.error).rsplit("due to: ", 1)[-1]  # smolagents: "Code execution failed at line … due to: …"
        result = "ERROR " + gist(error, room - 6)
        observed = gist(step.observations or "", room - len(result) - 3)
        result += f" | {observed}" if observed else ""
    else:
        result = gist(step.observations or "", room) or "(no output)"
    return head + result


def transcript(steps: list[ActionStep], per_step_chars: int = 3000) -> str:
    """The steps' code and results as text, for an LLM to summarize."""
    parts = []
    for step in steps:
        result = without_untrusted((f"Error: {step.error}\n" if step.error is not None else "")
                                   + (step.observations or ""))
        parts.append(f"Step {step.step_number} code:\n{(step.code_action or '')[:per_step_chars]}\n"
                     f"Result:\n{result[:per_step_chars]}")
    return "\n\n".join(parts)


def is_condensed_head(step) -> bool:
    return (isinstance(step, ActionStep) and step.model_output is None and step.tool_calls is None
            and isinstance(step.observations, str) and step.observations.startswith(CONDENSED_HEADER))


def is_condensed(step) -> bool:
    """True for a step the policy condensed: a chunk's head (which carries the chunk) or one of its blank steps."""
    blank = (step.model_output is None and step.tool_calls is None and step.observations is None
             and step.error is None)
    return isinstance(step, ActionStep) and (blank or is_condensed_head(step))


def _header(first: int, last: int, note: str) -> str:
    return f"{CONDENSED_HEADER} {first}-{last} ({note}):"


def _blank(step: ActionStep) -> None:
    step.model_output = step.tool_calls = step.observations = step.error = step.observations_images = None
    step.model_input_messages = None


class ContextPolicy:
    """smolagents step callback that keeps the LLM's input bounded (see the module docstring).

    `state()` returns the pinned state text (e.g. `lambda: pinned_state(ctx)`); `summarize(text)` is an
    optional LLM summary of a chunk's transcript. `attach(agent)` (else the first step it is called with) takes
    over the agent's `write_memory_to_messages`, to send the chunks as stable blocks and the pinned block last.
    """

    def __init__(self, state: Callable[[], str] | None = None, keep_last: int = 8, chunk: int = 10,
                 line_chars: int = 180, max_condensed_chars: int = 24_000, summarize: Summarize | None = None):
        if keep_last < 1 or chunk < 1:
            raise ValueError("keep_last and chunk must be at least 1")
        self.state, self.keep_last, self.chunk = state, keep_last, chunk
        self.line_chars, self.max_condensed_chars, self.summarize = line_chars, max_condensed_chars, summarize
        self.summary_failures = 0

    def __call__(self, memory_step, agent=None) -> None:
        if agent is None or not isinstance(memory_step, ActionStep):
            return
        self.attach(agent)
        steps = list(agent.memory.steps)
        for step in steps:
            if isinstance(step, ActionStep):
                step.model_input_messages = None
        self._condense_due(steps if any(s is memory_step for s in steps) else steps + [memory_step])

    def attach(self, agent) -> None:
        """Render `agent`'s memory through this policy from its next model call on, condensing what is due
        (a resumed memory comes back verbatim)."""
        if getattr(agent, "context_policy", None) is not self:
            agent.context_policy = self
            agent.write_memory_to_messages = lambda summary_mode=False: self.messages(agent, summary_mode)
            self._condense_due(list(agent.memory.steps))

    def _condense_due(self, steps: list) -> None:
        """While more than `keep_last + chunk` steps are verbatim, condense the oldest `chunk` (fewer where a
        task starts), then fold when the chunks have grown past `max_condensed_chars`."""
        while True:
            verbatim = [i for i, s in enumerate(steps) if isinstance(s, ActionStep) and not is_condensed(s)]
            if len(verbatim) <= self.keep_last + self.chunk:
                break
            run = [verbatim[0]]
            for i in verbatim[1:self.chunk]:
                if i != run[-1] + 1:
                    break
                run.append(i)
            self.condense([steps[i] for i in run])
        if sum(len(step.observations) for step in steps if is_condensed_head(step)) > self.max_condensed_chars:
            self.fold(steps)

    def messages(self, agent, summary_mode: bool = False) -> list[ChatMessage]:
        """What the LLM reads: smolagents' rendering of the memory, condensed chunks as stable blocks, then
        the pinned state."""
        messages = agent.memory.system_prompt.to_messages(summary_mode=summary_mode)
        for step in agent.memory.steps:
            rendered = step.to_messages(summary_mode=summary_mode)
            if is_condensed_head(step):
                rendered = [StableBlock(role=m.role, content=m.content) for m in rendered]
            messages.extend(rendered)
        if self.state is not None:
            messages.append(UncachedBlock(role=MessageRole.USER, content=[{"type": "text", "text": self._state()}]))
        return messages

    def _state(self) -> str:
        try:
            return self.state()
        except Exception as error:  # the state block is a help, never a reason to fail a call
            return f"Session state: unavailable ({type(error).__name__}: {error})."

    def condense(self, steps: list[ActionStep]) -> None:
        """Replace `steps` (consecutive) by one chunk carried by the first; the others render nothing."""
        body = None
        if self.summarize is not None:
            try:
                body = str(self.summarize(transcript(steps)) or "").strip()[:self.line_chars * len(steps)] or None
            except Exception:  # a failed summary falls back to the lines below
                body = None
            self.summary_failures += body is None
        note = "LLM summary" if body else "each cut to its errors, numbers, ids and paths"
        body = body or "\n".join(step_line(step, self.line_chars) for step in steps)
        head = steps[0]
        header = _header(steps[0].step_number, steps[-1].step_number, note)
        for step in steps:
            _blank(step)
        head.observations = f"{header}\n{body}"

    def fold(self, steps: list) -> None:
        """Fold the condensed chunks of each task's steps into one, its lines cut to fit half the limit."""
        segments: list[list[ActionStep]] = [[]]
        for step in steps:
            if isinstance(step, TaskStep):
                segments.append([])
            elif is_condensed_head(step):
                segments[-1].append(step)
        segments = [heads for heads in segments if len(heads) > 1]
        room = self.max_condensed_chars // 2 // max(len(segments), 1)
        for heads in segments:
            first, last = heads[0].observations.split("\n", 1)[0], heads[-1].observations.split("\n", 1)[0]
            numbers = re.findall(r"\d+", first)[:1] + re.findall(r"\d+", last)[1:2]
            lines = [line for head in heads for line in head.observations.split("\n")[1:] if line.strip()]
            for head in heads[1:]:
                head.observations = None
            heads[0].observations = f"{_header(int(numbers[0]), int(numbers[-1]), 'folded')}\n{_fit(lines, room)}"


def _shorten(line: str, width: int) -> str:
    """A condensed step line cut to `width`: its code to a quarter, its result to the rest."""
    if len(line) <= width:
        return line
    code, arrow, result = line.partition(" → ")
    if not arrow:
        return line[:width - 1] + "…"
    code_room = max(width // 4, 16)
    code = code if len(code) <= code_room else code[:code_room - 1] + "…"
    room = max(width - len(code) - 3, 10)
    return f"{code} → {result if len(result) <= room else result[:room - 1] + '…'}"


def _fit(lines: list[str], room: int) -> str:
    """`lines` cut to fit `room` characters: each line shortened (errors less), then the least telling (no error,
    older) left out, counted on the first line."""
    dropped = 0
    for line in [line for line in lines if OMITTED.fullmatch(line)]:
        dropped += int(OMITTED.fullmatch(line).group(1))
        lines.remove(line)
    width = max(MIN_LINE_CHARS, room // max(len(lines), 1) - 1)
    cut = [_shorten(line, width * (2 if _weight(line.partition(" → ")[2]) == 3 else 1)) for line in lines]
    if sum(len(line) + 1 for line in cut) > room:
        keep = max(room // (width + 1) - 1, 1)
        ranked = sorted(range(len(cut)), key=lambda i: (-_weight(cut[i].partition(" → ")[2] or cut[i]), -i))
        dropped += len(cut) - keep
        cut = [cut[i] for i in sorted(ranked[:keep])]
    return "\n".join(([f"({dropped} older steps without errors left out)"] if dropped else []) + cut)


def summary_from_model(model, on_usage: Callable[[dict], None] | None = None) -> Summarize:
    """A `summarize` for `ContextPolicy` that asks `model` (a smolagents Model); `on_usage` gets each call's
    token counts, so that its cost is counted."""
    instructions = ("Summarize these steps of an ML engineering agent in at most one line per step: keep every "
                    "error, number, id, path and decision; drop everything else.")

    def summarize(text: str) -> str:
        reply = model.generate([ChatMessage(role=MessageRole.SYSTEM, content=[{"type": "text", "text": instructions}]),
                                ChatMessage(role=MessageRole.USER, content=[{"type": "text", "text": text}])])
        if on_usage is not None and reply.token_usage is not None:
            on_usage({"input_tokens": reply.token_usage.input_tokens,
                      "output_tokens": reply.token_usage.output_tokens, "purpose": "context_summary"})
        return reply.content or ""

    return summarize


def _money(usd: float | None) -> str:
    return "unknown" if usd is None else f"${usd:.2f}"


def pinned_state(ctx: ToolContext, clock: Callable[[], float] = time.time, max_items: int = 5) -> str:
    """The session's state as the agent should keep it in mind, read from the ledger for `ctx.user`: goal,
    targets and best scores, budget spent and left, open jobs, the latest runs and datasets."""
    lines = ["Session state (from the ledger, refreshed every step; older steps above are condensed):",
             "Goal: " + " ".join(str(ctx.goal).split())[:300]]
    tree = ctx.ledger.experiment_tree(ctx.experiment_id, user=ctx.user) if ctx.experiment_id else None
    spend = None
    if ctx.session_id and hasattr(ctx.ledger, "session_spend"):
        spend = ctx.ledger.session_spend(ctx.session_id, user=ctx.user)
    if tree is None:
        if spend:
            lines.append(f"Spent: {_money(spend.get('total_usd'))}.")
        return "\n".join(lines + ["No experiment recorded yet."])
    exp = tree["experiment"]
    lines.append(f"Experiment {exp['id']} [{exp['status']}]" + (f", base model {exp['base_model']}"
                                                                 if exp.get("base_model") else ""))
    for task, lower_is_better in judged_tasks(tree):
        if task is None:
            continue
        top, base = best(tree["evals"], task, lower_is_better), baseline_of(tree, task)
        score = f"best {top['value']:.4g} (run {top['run_id']})" if top else "no trained score yet"
        baseline = f"{base['value']:.4g}" if base else "none"
        lines.append(f"Score on {task}: {score}; baseline {baseline}")
    if exp.get("target"):
        lines.append(f"Target: {exp['target']}")
    lines.append(_budget_line(exp, tree, spend, clock))
    runs = runs_in_order(tree) + tree["eval_runs"]
    open_jobs = [r for r in runs if r["status"] in ACTIVE and r.get("job_id")]
    if open_jobs:
        lines.append("Open jobs: " + "; ".join(f"{r['job_id']} ({r['kind']} run {r['id']}, {r['status']}"
                                               + (f", {r['hardware']}" if r.get("hardware") else "") + ")"
                                               for r in open_jobs[:max_items]))
    for run in sorted(runs, key=lambda r: r["id"])[-max_items:]:
        source = f"run {run['id']} error"
        error = f" error: {fence(run['error'], source, 80)}" if run.get("error") else ""
        lines.append(f"Run {run['id']} {run['kind']} {run['method']} {run['model']} on {run['dataset']} "
                     f"[{run['status']}]" + (f" job {run['job_id']}" if run.get("job_id") else "") + error)
    for data in tree["datasets"][-max_items:]:
        rows = f", {data['rows']} rows" if data.get("rows") is not None else ""
        lines.append(f"Dataset {data['id']} {data.get('hub_id') or data['path']} ({data.get('format') or '?'}{rows})")
    return "\n".join(lines)


def _budget_line(exp: dict, tree: dict, spend: dict | None, clock: Callable[[], float]) -> str:
    budget = exp.get("budget") or {}
    if spend:
        spent = spend.get("total_usd")
        parts = [f"spent {_money(spent)} (LLM {_money(spend.get('llm_usd'))}, jobs {_money(spend.get('jobs_usd'))}"
                 f", reserved {_money(spend.get('reserved_usd'))})"]
    else:
        spent = sum(run["cost_usd"] or 0.0 for run in runs_in_order(tree) + tree["eval_runs"])
        parts = [f"jobs spent {_money(spent)} (LLM cost not counted)"]
    if budget.get("usd") is not None and spent is not None:
        parts.append(f"left {_money(budget['usd'] - spent)} of ${budget['usd']:g}")
    hours = (clock() - exp["created_at"]) / 3600
    parts.append(f"{hours:.2f} h elapsed" + (f" of {budget['hours']:g} h" if budget.get("hours") else ""))
    return "Budget: " + "; ".join(parts)
