"""One scripted 300-step session through ml-intern and through a plain smolagents CodeAgent; prints the numbers.

    python -m bench.long_session               # 300 steps, a few minutes on 2 cores
    python -m bench.long_session --steps 60    # quicker

The same replies drive both agents: define the tool-output generator (bench/long_session_outputs.py), then
one call per step whose observation is about 2.3 KB (job status with TRL logs, dataset rows, lighteval tables,
paper search, preflight, an OOM failure), with a scripted loop at 2/3 of the way: the same failing
`fetch_rows(..., split='tets')` five times, after which the script changes course (as a model does once refused).

- ml-intern: a real `Session` (sandbox, ledger, events, budget guard, loop guard, context policy) whose model is
  `AnthropicModel` pointed at the loopback fake of the Messages API (tests/fakes), which simulates prompt caching
  and counts tokens as characters / 4; the ledger holds an experiment, runs and evals, so the pinned state is real.
- plain: `CodeAgent` with the same tools, instructions and prompt templates, no policy and no caching, its model
  a fake that counts the same tokens.

Printed: input tokens at the first, middle and last call and the peak (goal <= 40k for ml-intern); billed input
token equivalents (uncached + 1.25 x cache writes + 0.1 x cache reads; the plain agent pays every token) and their
ratio (goal >= 20x); overhead per step (a step's wall time minus its LLM call) at steps 1-10 and the last 11;
and where the loop guard caught the loop (goal: within 6 repeats), with a second short session that never changes
course, to show the stop.
"""

from __future__ import annotations

import argparse
import io
import math
import statistics
import tempfile
import time
from pathlib import Path

import yaml
from rich.console import Console
from smolagents import CodeAgent, Model
from smolagents.memory import ActionStep
from smolagents.models import ChatMessage, MessageRole
from smolagents.monitoring import AgentLogger, LogLevel, TokenUsage

from agent.builder import AUTHORIZED_IMPORTS, load_instructions, prompt_templates
from agent.config import AgentConfig
from agent.models import AnthropicModel, to_anthropic_messages
from agent.session import Session
from agent.target import Budget
from bench.long_session_outputs import DEFINE
from tests.fakes.anthropic_api import FAKE_KEY, start_fake_anthropic
from tools.backends.jobs import LocalJobBackend
from tools.context import ToolContext
from tools.ledger import Ledger
from tools.settings import Settings
from tools.toolset import build_tools

TASK = "Improve Qwen3-1.7B on GSM8K with SFT then GRPO; keep the best checkpoint and report."
LOOP_CODE = "rows = fetch_rows('openai/gsm8k', split='tets')\nprint(rows)"
LOOP_REPEATS = 5


def replies(steps: int) -> list[str]:
    """The scripted model replies: define the outputs, one tool call per step, a loop at 2/3, a final answer."""
    loop_at = steps * 2 // 3
    out = [f"Thought: set up the helpers.\n<code>\n{DEFINE.strip()}\n</code>"]
    for i in range(1, steps - 1):
        code = LOOP_CODE if loop_at <= i < loop_at + LOOP_REPEATS else f"print(report({i}))"
        out.append(f"Thought: step {i}: check the next result and decide.\n<code>\n{code}\n</code>")
    return out + ["Thought: done.\n<code>\nfinal_answer('best checkpoint: run 9, gsm8k 0.5523')\n</code>"]


def tokens(messages) -> int:
    """Prompt tokens as the fake Messages API counts them (characters / 4 per content block)."""
    system, turns = to_anthropic_messages(messages)
    blocks = system + [block for turn in turns for block in turn["content"]]
    return sum(math.ceil(len(block.get("text", "")) / 4) or 1 for block in blocks)


class TimedClaude(AnthropicModel):
    """AnthropicModel that records each call's usage and the time spent waiting on the API."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.usages: list[dict] = []
        self.llm_s: list[float] = []

    def generate_stream(self, *args, **kwargs):
        inner, spent = super().generate_stream(*args, **kwargs), 0.0
        while True:
            start = time.perf_counter()
            try:
                delta = next(inner)
            except StopIteration:
                break
            finally:
                spent += time.perf_counter() - start
            yield delta
        self.llm_s.append(spent)
        self.usages.append(dict(self.last_usage))


class CountingModel(Model):
    """Replays the replies; counts each call's input tokens (no caching)."""

    def __init__(self, texts: list[str]):
        super().__init__(model_id="counting")
        self.texts, self.inputs, self.llm_s = list(texts), [], []

    def generate(self, messages, stop_sequences=None, **kwargs) -> ChatMessage:
        start = time.perf_counter()
        self.inputs.append(tokens(messages))
        text = self.texts.pop(0)
        for stop in stop_sequences or []:
            text = text.split(stop)[0] if stop.strip() else text
        self.llm_s.append(time.perf_counter() - start)
        return ChatMessage(role=MessageRole.ASSISTANT, content=text,
                           token_usage=TokenUsage(input_tokens=self.inputs[-1], output_tokens=len(text) // 4))


def seed_ledger(session: Session) -> None:
    """An experiment as the tools would have recorded it by now, so the pinned state has something to show."""
    ctx, ledger = session.ctx, session.ledger
    exp = ctx.current_experiment(base_model="Qwen/Qwen3-1.7B", task="gsm8k")
    ledger.update_experiment(exp, target="gsm8k>=0.6")
    data = ledger.record_dataset("openai/gsm8k", "/data/datasets/gsm8k-pc", format="prompt-completion", rows=7473,
                                 experiment_id=exp, user=ctx.user)
    ledger.record_eval("Qwen/Qwen3-1.7B", "gsm8k", "extractive_match", 0.481, stderr=0.0137, n_samples=1319,
                       is_baseline=True, experiment_id=exp, user=ctx.user)
    first = ledger.create_run("sft", "Qwen/Qwen3-1.7B", "/data/datasets/gsm8k-pc", experiment_id=exp, dataset_id=data,
                              status="completed", job_id="68a1f00001", hardware="a10g-large", cost_usd=3.15,
                              user=ctx.user)
    ledger.record_eval("/data/runs/1/checkpoint-1200", "gsm8k", "extractive_match", 0.5523, stderr=0.0137,
                       n_samples=1319, experiment_id=exp, run_id=first, user=ctx.user)
    ledger.create_run("grpo", "/data/runs/1/checkpoint-1200", "/data/datasets/gsm8k-pc", experiment_id=exp,
                      parent_run_id=first, change="GRPO on top of SFT", status="running", job_id="68a1f00002",
                      hardware="a10g-large", user=ctx.user)


def step_overheads(ends: list[float], start: float, llm_s: list[float]) -> list[float]:
    """Per step: wall time since the previous step ended, minus its LLM call, in ms."""
    walls = [b - a for a, b in zip([start] + ends[:-1], ends, strict=True)]
    return [1000 * (wall - llm) for wall, llm in zip(walls, llm_s, strict=False)]


def run_ml_intern(texts: list[str], data_dir: Path) -> dict:
    fake = start_fake_anthropic(texts)
    try:
        settings = Settings(data_dir=data_dir, compute_backend="local")
        config = AgentConfig(backend="anthropic", anthropic_api_key=FAKE_KEY, anthropic_base_url=fake.url,
                             settings=settings, auto_approve=True, max_steps=len(texts))
        model = TimedClaude(api_key=FAKE_KEY, base_url=fake.url)
        session = Session(config, model=model, budget=Budget(usd=50, hours=24))
        seed_ledger(session)
        policy, policy_ms = session.context_policy, []
        render = policy.messages

        def timed_render(*args, **kwargs):  # the policy's share of the overhead: rendering and the state read
            began = time.perf_counter()
            try:
                return render(*args, **kwargs)
            finally:
                policy_ms.append(1000 * (time.perf_counter() - began))

        policy.messages = timed_render
        start, ends, loop, answer = time.time(), [], [], None
        for event in session.run(TASK):
            if event.kind == "token_usage":
                ends.append(event.ts)
            elif event.kind == "notice" and event.data.get("guard") == "loop":
                loop.append((event.data["level"], event.data["step"]))
            elif event.kind == "final_answer":
                answer = event.text
        session._agent.python_executor.cleanup()
    finally:
        fake.close()
    prompts = [u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"]
               for u in model.usages]
    billed = sum(u["input_tokens"] + 1.25 * u["cache_creation_input_tokens"] + 0.1 * u["cache_read_input_tokens"]
                 for u in model.usages)
    return {"prompts": prompts, "billed": billed, "overhead_ms": step_overheads(ends, start, model.llm_s),
            "loop": loop, "answer": answer, "state": policy.state(), "policy_ms": policy_ms}


def run_plain(texts: list[str], data_dir: Path) -> dict:
    settings = Settings(data_dir=data_dir, compute_backend="local")
    ctx = ToolContext(settings=settings, ledger=Ledger.in_dir(data_dir), jobs=LocalJobBackend(data_dir))
    model = CountingModel(texts)
    agent = CodeAgent(tools=build_tools(ctx), model=model, instructions=load_instructions(),
                      prompt_templates=prompt_templates(), max_steps=len(texts),
                      additional_authorized_imports=AUTHORIZED_IMPORTS,
                      logger=AgentLogger(level=LogLevel.OFF, console=Console(file=io.StringIO())))
    start, ends = time.time(), []
    for item in agent.run(TASK, stream=True):
        if isinstance(item, ActionStep):
            ends.append(time.time())
    return {"prompts": model.inputs, "billed": float(sum(model.inputs)),
            "overhead_ms": step_overheads(ends, start, model.llm_s)}


def run_stop_check(data_dir: Path) -> list[tuple[str, int]]:
    """A short session whose script never changes course: the guard's stop."""
    data_dir.mkdir(parents=True)
    plan = data_dir / "loop_plan.yaml"
    plan.write_text(yaml.safe_dump([{"code": DEFINE.strip()}] + [{"code": LOOP_CODE}] * 8))
    config = AgentConfig(backend="scripted", model_id="scripted", scripted_plan=plan, auto_approve=True,
                         settings=Settings(data_dir=data_dir, compute_backend="local"))
    session = Session(config)
    loop = [(e.data["level"], e.data["step"]) for e in session.run(TASK)
            if e.kind == "notice" and e.data.get("guard") == "loop"]
    session._agent.python_executor.cleanup()
    return loop


def median(values: list[float]) -> str:
    return f"{statistics.median(values):6.1f}" if values else "     -"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    texts = replies(args.steps)
    loop_at = args.steps * 2 // 3 + 1  # the agent's step number of the first repeat (step 1 defines the helpers)
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        ours = run_ml_intern(texts, Path(tmp) / "ours")
        ours_s = time.perf_counter() - began
        plain = run_plain(texts, Path(tmp) / "plain")
        plain_s = time.perf_counter() - began - ours_s
        stop = run_stop_check(Path(tmp) / "stop")
    n = len(texts)
    print(f"long session: {n} steps, observations ~2.3 KB; ml-intern {ours_s:.0f} s, plain {plain_s:.0f} s wall")
    print(f"answer: {ours['answer']!r}")
    print(f"{'':34}{'ml-intern':>12}{'plain':>12}")
    for label, index in (("input tokens, first call", 0), (f"input tokens, call {n // 2}", n // 2 - 1),
                         (f"input tokens, call {n}", -1)):
        print(f"{label:34}{ours['prompts'][index]:>12,}{plain['prompts'][index]:>12,}")
    peak = max(ours["prompts"])
    print(f"{'peak context tokens':34}{peak:>12,}{max(plain['prompts']):>12,}   goal <= 40,000: "
          f"{'met' if peak <= 40_000 else 'NOT met'}")
    ratio = plain["billed"] / ours["billed"]
    print(f"{'billed input-token equivalents':34}{ours['billed']:>12,.0f}{plain['billed']:>12,.0f}   "
          f"ratio {ratio:.1f}x, goal >= 20x: {'met' if ratio >= 20 else 'NOT met'}")
    for label, part in (("overhead ms/step, steps 1-10", slice(0, 10)),
                        (f"overhead ms/step, steps {n - 10}-{n}", slice(n - 11, n))):
        print(f"{label:34}{median(ours['overhead_ms'][part]):>12}{median(plain['overhead_ms'][part]):>12}"
              f"   (median; wall time minus the LLM call; context policy {median(ours['policy_ms'][part]).strip()})")
    caught = dict(ours["loop"])
    print(f"loop from step {loop_at} (the same failing code, {LOOP_REPEATS} times, then the script changes course):")
    for level in ("note", "refused"):
        if level in caught:
            print(f"  {level:15} at step {caught[level]} (repeat {caught[level] - loop_at + 1})")
    if "changed_course" in caught:
        print(f"  {'changed course':15} at step {caught['changed_course']} (the user read: \"The agent was "
              "repeating itself and changed course.\")")
    others = [(level, step) for level, step in ours["loop"] if not loop_at <= step < loop_at + LOOP_REPEATS + 1]
    print(f"  loop notices elsewhere in the session (false alarms): {len(others)}")
    stopped = dict(stop)
    if "stop" in stopped:
        print(f"a loop that never changes course: {stop} -> stopped at repeat {stopped['stop'] - 1} "
              f"(step {stopped['stop']}); goal <= 6: {'met' if stopped['stop'] - 1 <= 6 else 'NOT met'}")
    else:
        print(f"a loop that never changes course was NOT stopped: {stop}")
    print("pinned state at the end:\n  " + ours["state"].replace("\n", "\n  "))


if __name__ == "__main__":
    main()
