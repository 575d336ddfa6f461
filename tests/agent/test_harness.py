"""`ml-intern run` (agent/harness.py): benchmark runs on the fixture benchmark tests/fixtures/benchmark, laid out like a
PostTrainBench task (evaluate.py, data/test.jsonl, task_context/train.jsonl), with the scripted backend and the tiny
model. Each run is a real `python -m agent run` process: real tools, real TRL training, the benchmark's evaluator."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.harness import eval_set_of
from agent.harness import main as run_main
from evals.tiny_model import build_tiny_model
from tools.backends.jobs import make_job_backend
from tools.context import ToolContext
from tools.errors import ToolError
from tools.evaluation.external import parse_metrics, pick_metric
from tools.ledger import LOCAL_USER, Ledger
from tools.paths import resolve_inside
from tools.run_rules import RunRules
from tools.settings import Settings
from tools.training.final_model import architecture_problems

FIXTURES = Path(__file__).parents[1] / "fixtures"
BENCHMARK = FIXTURES / "benchmark"
PLANS = FIXTURES / "harness"
PROJECT = Path(__file__).parents[2]


def load_evaluator(folder: Path):
    spec = importlib.util.spec_from_file_location("fixture_evaluate", folder / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def task_dir(tmp_path) -> Path:
    """A PostTrainBench-style working folder: the fixture benchmark copied."""
    return Path(shutil.copytree(BENCHMARK, tmp_path / "task"))


def benchmark_run(task_dir: Path, base: Path, plan: str, hours: float) -> dict:
    """Run `python -m agent run` in `task_dir` like a harness would; its trace, summary, exit code and wall time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_INTERN_", "HF_TOKEN", "ANTHROPIC"))}
    env.update(ML_INTERN_COMPUTE="local", PYTHONPATH=str(PROJECT))
    command = [sys.executable, "-m", "agent", "run", "--base-model", str(base),
               "--benchmark", f"custom:{task_dir / 'data' / 'test.jsonl'}", "--hours", str(hours),
               "--workdir", str(task_dir), "--backend", "scripted", "--plan", str(PLANS / plan),
               "--eval-command", f"{sys.executable} evaluate.py --model-path {{model}} --json-output-file {{json}}",
               "Make the model excel at Tiny Sentiment."]
    started = time.monotonic()
    done = subprocess.run(command, cwd=task_dir, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=hours * 3600 + 120)
    wall = time.monotonic() - started
    summary_line = [line for line in done.stderr.splitlines() if line.startswith("ml-intern run: {")]
    assert summary_line, done.stderr[-3000:]
    events = [json.loads(line) for line in done.stdout.splitlines()]
    return {"rc": done.returncode, "events": events, "summary": json.loads(summary_line[-1].split(": ", 1)[1]),
            "wall": wall, "audit": json.loads((task_dir / "audit.json").read_text()),
            "ledger": Ledger.in_dir(task_dir / ".ml-intern")}


def errors(events: list[dict]) -> list[str]:
    return [e["text"] for e in events if e["kind"] == "error"]


def timeline(events: list[dict]) -> str:
    """When each code action and notice came, for a failure message (a slow machine shows here)."""
    start = events[0]["ts"] if events else 0
    return "\n".join(f"{e['ts'] - start:6.1f}s {e['kind']}: {e['text'][:100]!r}" for e in events
                     if e["kind"] in ("code", "notice", "error", "final_answer"))


def test_a_benchmark_run_leaves_a_better_final_model_on_time_with_a_complete_audit(task_dir, tiny_model_dir):
    limit_s = 180
    result = benchmark_run(task_dir, tiny_model_dir, "plan.yaml", hours=limit_s / 3600)

    assert result["rc"] == 0, errors(result["events"])
    assert result["wall"] < limit_s and result["summary"]["seconds"] < limit_s
    assert not errors(result["events"])
    assert any(e["kind"] == "final_answer" for e in result["events"]), timeline(result["events"])
    final = task_dir / "final_model"
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(final) is not None
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json"} <= {
        p.name for p in final.iterdir()}
    evaluator = load_evaluator(task_dir)
    assert evaluator.evaluate(str(final))["accuracy"] > evaluator.evaluate(str(tiny_model_dir))["accuracy"]

    audit = result["audit"]
    (run,) = audit["training_runs"]
    assert run["model"] == str(tiny_model_dir) and run["status"] == "completed"
    assert run["admission"]["decontamination"]["clean"] and run["admission"]["decontamination"]["rows_checked"] > 400
    assert audit["final_model"]["runs_that_led_to_it"] == [run["id"]]
    assert [a["replaced"] for a in audit["final_model_attempts"]] == [True, True]
    losses = [a["held_out_loss"] for a in audit["final_model_attempts"]]
    assert losses[1] < losses[0]
    (dataset,) = audit["datasets"]
    assert dataset["transform"]["source"]["path"].endswith("task_context/train.jsonl")
    assert dataset["transform"]["decontamination"]["eval_set"] == str(task_dir / "data" / "test.jsonl")
    assert {c.get("purpose") for c in audit["decontamination"]} >= {"training data", "held-out split"}
    scores = [e for e in audit["evaluations"] if e["evaluator"] == "eval_command"]
    assert len(scores) == 2 and scores[1]["value"] > scores[0]["value"]
    assert audit["llm_written_data"] == {"allowed": False, "datasets": []}
    assert audit["base_model"] == str(tiny_model_dir) and audit["time"]["stop_at"] < audit["time"]["limit_at"]


def test_training_data_holding_evaluation_items_is_refused_and_the_decontaminated_copy_admitted(
        task_dir, tiny_model_dir):
    tests = [json.loads(line) for line in (task_dir / "data" / "test.jsonl").read_text().splitlines()][:15]
    with (task_dir / "task_context" / "train.jsonl").open("a") as handle:
        for row in tests:
            handle.write(json.dumps({"prompt": f"Review: {row['review']}\nSentiment:",
                                     "completion": f" {row['label']}"}) + "\n")

    result = benchmark_run(task_dir, tiny_model_dir, "contaminated_plan.yaml", hours=0.05)

    refused = [e for e in errors(result["events"]) if "hold items of the benchmark's evaluation data" in e]
    assert len(refused) == 1 and "decontaminate=" in refused[0]
    (run,) = result["audit"]["training_runs"]  # the refused run was never recorded
    assert run["admission"]["decontamination"]["clean"]
    (dataset,) = result["audit"]["datasets"]
    assert dataset["transform"]["decontamination"]["rows_dropped"] >= 14
    trained_on = (Path(dataset["path"]) / "train.jsonl").read_text()
    assert not [row for row in tests if row["review"] in trained_on]
    assert result["audit"]["final_model"]["fallback"] is True  # nothing saved: the base model is left


def test_a_run_told_to_train_another_model_is_refused_and_stops_before_the_limit(task_dir, tiny_model_dir):
    build_tiny_model(task_dir / "other-model", arch="llama")
    limit_s = 120
    result = benchmark_run(task_dir, tiny_model_dir, "wrong_model_plan.yaml", hours=limit_s / 3600)

    refused = [e for e in errors(result["events"]) if "may train only the base model" in e]
    assert len(refused) == 2, errors(result["events"])
    ledger = result["ledger"]
    runs = ledger.list_runs(user=LOCAL_USER)
    assert [r["model"] for r in runs] == [str(tiny_model_dir)]
    assert runs[0]["status"] == "canceled"  # the job that outlived the limit was ended
    assert result["wall"] < limit_s
    experiment = ledger.list_experiments(user=LOCAL_USER)[0]
    assert experiment["status"] == "budget_exhausted" and "time" in experiment["stop_reason"]
    assert result["audit"]["final_model"]["model"] == str(tiny_model_dir)


@pytest.fixture
def run_ctx(tmp_path, tiny_model_dir) -> ToolContext:
    task = Path(shutil.copytree(BENCHMARK, tmp_path / "task"))
    settings = Settings(data_dir=task / ".ml-intern", compute_backend="local", extra_read_dirs=(task, tiny_model_dir),
                        read_only_dirs=(task,))
    now = time.time()
    rules = RunRules(base_model=str(tiny_model_dir), benchmark="custom:x", eval_set=str(task / "data" / "test.jsonl"),
                     workdir=task, final_dir=task / "final_model", audit_path=task / "audit.json",
                     eval_command="python evaluate.py", eval_dir=task, started_at=now, limit_at=now + 60)
    return ToolContext(settings=settings, ledger=Ledger.in_dir(settings.data_dir), jobs=make_job_backend(settings),
                       rules=rules)


def test_the_evaluators_folder_is_read_only_to_tools_but_the_data_dir_inside_it_is_not(run_ctx):
    task = run_ctx.rules.workdir
    with pytest.raises(ToolError, match="read-only"):
        resolve_inside(run_ctx, task / "evaluate.py", "output_dir", write=True)
    assert resolve_inside(run_ctx, task / "evaluate.py", "script") == (task / "evaluate.py").resolve()
    inside = task / ".ml-intern" / "datasets" / "mine"
    assert resolve_inside(run_ctx, inside, "output_dir", write=True) == inside.resolve()


def test_the_final_model_must_keep_the_base_models_architecture(run_ctx, tiny_model_dir, tmp_path):
    assert architecture_problems(run_ctx, tiny_model_dir) == []
    other = build_tiny_model(tmp_path / "llama", arch="llama")
    problems = architecture_problems(run_ctx, other)
    assert any("model_type" in p for p in problems)
    wider = build_tiny_model(tmp_path / "wider", hidden_size=96)
    assert any(p.startswith("weight model.embed_tokens.weight") for p in architecture_problems(run_ctx, wider))


def test_evaluator_scores_are_read_from_json_or_name_value_lines():
    assert parse_metrics('noise\n{"accuracy": 0.41, "stderr": 0.03}\n') == {"accuracy": 0.41, "stderr": 0.03}
    assert parse_metrics("ERROR something\naccuracy: 0.5\nstderr = 0.1\n") == {"accuracy": 0.5, "stderr": 0.1}
    assert pick_metric({"stderr": 0.1, "accuracy": 0.5}, None) == "accuracy"
    with pytest.raises(ToolError, match="reported no metric"):
        pick_metric({"accuracy": 0.5}, "f1")


def test_run_refuses_an_unknown_benchmark_or_a_missing_base_model(tmp_path, capsys):
    assert run_main(["--base-model", str(tmp_path / "none"), "--benchmark", "gsm8k", "--hours", "1",
                     "--workdir", str(tmp_path)]) == 2
    assert "neither a model folder nor a Hub id" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown task"):
        eval_set_of("not-a-benchmark")
    assert eval_set_of("GSM-8K") == "gsm8k"


def test_a_benchmark_run_adds_its_own_tools_described_like_the_others(run_ctx):
    from tools.toolset import build_tools

    plain = {t.name for t in build_tools(ToolContext(settings=run_ctx.settings, ledger=run_ctx.ledger,
                                                     jobs=run_ctx.jobs))}
    tools = {t.name: t for t in build_tools(run_ctx)}
    assert set(tools) - plain == {"time_left", "save_final_model", "run_benchmark_eval"}
    for name in set(tools) - plain:
        tool = tools[name]
        tool.validate_arguments()
        assert "\nReturns " in tool.description and tool.description.count("Example:") == 1
        assert re.search(rf"^Example: .*\b{name}\(", tool.description, re.M)
    assert tools["time_left"].forward()["minutes_left"] <= 1.0
