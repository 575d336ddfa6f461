"""run_evaluation and collect_evaluation end to end: real lighteval on the tiny model, the real ledger, real
job backends (the local one, and HF Jobs through its loopback fake)."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import shutil
import zlib
from pathlib import Path

import pytest

from evals.fixture_data import TRAIN_FILE
from evals.runner import main as runner_main
from evals.tiny_model import build_tiny_model
from tests.fakes.jobs_api import serve_jobs_api
from tools.backends.jobs import HfJobsBackend, LocalJobBackend
from tools.context import ToolContext
from tools.errors import ToolError
from tools.evaluation.evaluate import CollectEvaluationTool, RunEvaluationTool
from tools.settings import Settings
from tools.training.jobs import CancelJobTool, JobLogsTool, JobStatusTool, WaitForJobTool

CANARY = "hf_canary_eval_42"


@pytest.fixture
def events():
    return []


@pytest.fixture
def tool(settings, ledger, events):
    ctx = ToolContext(settings=settings, ledger=ledger, jobs=LocalJobBackend(settings.data_dir),
                      emit=lambda kind, p: events.append((kind, p)), goal="improve tiny on tiny_sentiment")
    return RunEvaluationTool(ctx)


@pytest.fixture
def collect(tool):
    collector = CollectEvaluationTool(tool.ctx)
    collector.poll_interval_s = 0.2
    return collector


def test_tools_are_described_for_the_llm(tool, collect):
    assert tool.name == "run_evaluation" and tool.output_type == "object"
    assert set(tool.inputs) == {"model", "task", "is_baseline", "run_id", "max_samples", "task_options", "as_job",
                                "flavor"}
    assert all(tool.inputs[k].get("nullable") for k in tool.inputs if k not in ("model", "task"))
    assert not tool.inputs["task"].get("nullable")
    for name in ("tiny_sentiment", "tiny_sentiment_gen", "gsm8k", "gpqa:diamond", "custom:", "within_noise",
                 "contaminated", "collect_evaluation", "Example:", "run_evaluation(model="):
        assert name in tool.description, name
    assert collect.name == "collect_evaluation" and set(collect.inputs) == {"job_id", "max_minutes"}
    assert "collect_evaluation(job_id=" in collect.description


def test_baseline_then_checkpoint_records_both_with_comparison_and_contamination(tool, ledger, events,
                                                                                 tiny_model_dir, tmp_path):
    base = tool(model=str(tiny_model_dir), task="tiny_sentiment", is_baseline=True)
    assert set(base) == {"eval_id", "task", "metric", "value", "stderr", "n_samples", "is_baseline", "model",
                         "command"}
    assert base["is_baseline"] is True and base["n_samples"] == 120 and base["metric"] == "acc"
    assert 0.3 <= base["value"] <= 0.7 and 0 < base["stderr"] < 0.1
    assert base["command"].startswith("python -m evals.runner --model ")

    exp_id = tool.ctx.experiment_id
    experiment = ledger.get_experiment(exp_id, user="local")
    assert experiment["task"] == "tiny_sentiment" and experiment["base_model"] == base["model"]
    run_id = ledger.create_run("sft", str(tiny_model_dir), str(TRAIN_FILE), experiment_id=exp_id, user="local")
    checkpoint = build_tiny_model(tmp_path / "checkpoint", seed=3)

    after = tool(model=str(checkpoint), task="tiny_sentiment", run_id=run_id)
    assert after["baseline"] == base["value"]
    assert after["delta"] == pytest.approx(after["value"] - base["value"])
    assert after["is_baseline"] is False and after["contaminated"] is False and "warning" not in after
    comparison = after["comparison"]
    assert comparison["method"] == "paired_bootstrap" and comparison["n_paired"] == 120
    assert comparison["within_noise"] == (comparison["ci95"][0] <= 0 <= comparison["ci95"][1])
    assert after["note"].startswith("vs baseline: acc ")

    rows = ledger.evals_for(exp_id, user="local")
    assert [r["id"] for r in rows] == [base["eval_id"], after["eval_id"]]
    assert [r["is_baseline"] for r in rows] == [1, 0] and rows[1]["run_id"] == run_id
    assert rows[1]["checkpoint"] == str(Path(checkpoint).resolve()) and rows[1]["n_samples"] == 120
    assert rows[1]["command"] == after["command"] and rows[1]["value"] == after["value"]
    assert rows[1]["stderr"] == after["stderr"] and rows[1]["metric"] == "acc"
    details = json.loads(rows[1]["details_json"])
    assert details["task_spec"] == "tiny_sentiment|0" and details["lighteval_version"] == "0.13.0"
    assert details["fewshot"] == 0 and details["seed"] == 0 and details["source"] == "fixture"
    assert details["manifest_verified"] is True and len(details["data_sha256"]) == 64
    assert details["baseline_eval_id"] == base["eval_id"] and details["comparison"] == comparison
    assert details["contaminated"] is False and details["contamination"]["train_rows_read"] == 600
    assert len(Path(details["details_path"]).read_text().splitlines()) == 120
    assert [kind for kind, _ in events] == ["eval_result", "eval_result"]
    assert events[1][1]["delta"] == after["delta"] and events[1][1]["run_id"] == run_id
    assert events[1][1]["comparison"]["verdict"] == comparison["verdict"]


def test_a_trained_score_needs_a_baseline_of_the_starting_model_first(tool, ledger, tiny_model_dir, tmp_path):
    run_id = ledger.create_run("sft", str(tiny_model_dir), str(TRAIN_FILE),
                               experiment_id=tool.ctx.current_experiment(), user="local")
    with pytest.raises(ToolError, match=r"no baseline of the starting model .* on tiny_sentiment \(tiny_sentiment\|0\)"
                                        r".*run the baseline first"):
        tool(model=str(tiny_model_dir), task="tiny_sentiment", run_id=run_id)
    other = build_tiny_model(tmp_path / "other", seed=5)
    tool(model=str(other), task="tiny_sentiment", is_baseline=True, max_samples=4)  # not the run's starting model
    with pytest.raises(ToolError, match=f"no baseline of the starting model {tiny_model_dir} on tiny_sentiment"):
        tool(model=str(tiny_model_dir), task="tiny_sentiment", run_id=run_id, max_samples=4)
    tool(model=str(tiny_model_dir), task="tiny_sentiment_gen", is_baseline=True, max_samples=4)
    with pytest.raises(ToolError, match="no baseline .* on tiny_sentiment "):  # a baseline on another task
        tool(model=str(tiny_model_dir), task="tiny_sentiment", run_id=run_id, max_samples=4)
    assert all(e["is_baseline"] for e in ledger.list_evals(user="local"))
    tool(model=str(tiny_model_dir), task="tiny_sentiment", is_baseline=True, max_samples=4)
    after = tool(model=str(tiny_model_dir), task="tiny_sentiment", run_id=run_id, max_samples=4)
    assert after["baseline"] == ledger.list_evals(user="local")[-2]["value"] and after["delta"] == 0


def test_subset_evaluation_is_flagged_as_not_comparable(tool, tiny_model_dir):
    tool(model=str(tiny_model_dir), task="tiny_sentiment", is_baseline=True, max_samples=24)
    quick = tool(model=str(tiny_model_dir), task="tiny_sentiment", max_samples=12)
    assert quick["n_samples"] == 12 and "not a fair comparison" in quick["note"]
    assert quick["comparison"]["method"] == "stderr" and "contamination not checked: no run_id" in quick["note"]


@pytest.mark.parametrize("model, message", [
    ("MISSING", "does not exist"),
    ("/no/such/checkpoint", "which tools may not read: files may go only in the session workspace"),
    ("EMPTY", "has no config.json"),
    ("ADAPTER", "LoRA adapter"),
])
def test_bad_model_paths(tool, tmp_path, model, message):
    if model == "MISSING":
        model = str(tmp_path / "no-such-checkpoint")
    elif model == "EMPTY":
        model = str(tmp_path)
    elif model == "ADAPTER":
        (tmp_path / "adapter_config.json").write_text("{}")
        model = str(tmp_path)
    with pytest.raises(ToolError, match=message):
        tool(model=model, task="tiny_sentiment")


def test_unknown_task_run_or_sample_count(tool, tiny_model_dir, ledger):
    with pytest.raises(ToolError, match="unknown task 'squad-9000'. Offline fixtures: tiny_sentiment"):
        tool(model=str(tiny_model_dir), task="squad-9000")
    with pytest.raises(ToolError, match="there is no run 999"):
        tool(model=str(tiny_model_dir), task="tiny_sentiment", run_id=999)
    with pytest.raises(ToolError, match="max_samples must be a positive integer"):
        tool(model=str(tiny_model_dir), task="tiny_sentiment", max_samples=0)
    for task in ("", "  ", None):
        with pytest.raises(ToolError, match=r"needs a task: pass task= an offline fixture \(tiny_sentiment.*gsm8k.*"
                                            r"'custom:"):
            tool(model=str(tiny_model_dir), task=task)
    assert ledger.list_evals(user="local") == []


def test_benchmarks_resolve_offline_but_say_they_cannot_run(tool, tiny_model_dir, ledger, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ToolError, match=r"the benchmark gsm8k downloads openai/gsm8k from the Hugging Face Hub.*"
                                        r"cannot run offline"):
        tool(model=str(tiny_model_dir), task="GSM-8K", is_baseline=True)
    with pytest.raises(ToolError, match="the model someone/model is downloaded from the Hugging Face Hub"):
        tool(model="someone/model", task="tiny_sentiment", is_baseline=True)
    assert ledger.list_evals(user="local") == []


def test_failed_evaluation_shows_the_end_of_its_output(tool, tiny_model_dir, tmp_path, ledger):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ToolError) as err:
        tool(model=str(broken), task="tiny_sentiment", is_baseline=True)
    text = str(err.value)
    assert "failed (exit code 1)" in text and "Last lines of its output" in text
    assert "Error" in text and len(text.splitlines()) <= 25
    assert ledger.list_evals(user="local") == []


def test_evaluation_as_a_local_job(tool, collect, ledger, tiny_model_dir, events):
    job = tool(model=str(tiny_model_dir), task="tiny_sentiment_gen", is_baseline=True, as_job=True)
    assert job["job_id"].startswith("local-") and job["backend"] == "local" and job["stage"] in ("running", "completed")
    assert "collect_evaluation(job_id=" in job["message"] and ledger.list_evals(user="local") == []
    run = ledger.run_by_job(job["job_id"], user="local")  # the job is a ledger run of its own kind
    assert (run["id"], run["kind"], run["status"], run["backend"], run["hardware"]) == (
        job["eval_run_id"], "eval", "running", "local", "local")
    assert (run["model"], run["dataset"], run["parent_run_id"]) == (str(tiny_model_dir.resolve()),
                                                                    "tiny_sentiment_gen|0", None)
    assert run["experiment_id"] == tool.ctx.experiment_id and run["started_at"] and run["finished_at"] is None
    script = Path(run["script_path"]).read_text()
    assert script.startswith("# /// script") and "vllm" not in script and len(run["script_sha256"]) == 64
    assert ("job_update", job["eval_run_id"]) in [(kind, p.get("run_id")) for kind, p in events]

    waiter = WaitForJobTool(tool.ctx)
    waiter.poll_interval_s = 0.2
    done = waiter(job_id=job["job_id"], max_minutes=5)
    assert done["stage"] == "completed" and done["run_id"] == job["eval_run_id"]
    assert done["next"] == f"collect_evaluation(job_id={job['job_id']!r})" and done["next"] in done["message"]
    assert done["latest_metrics"] == {} and done["progress"]["step"] == 0  # no training metrics parsed
    assert ledger.metric_series(job["eval_run_id"], user="local") == {}
    logs = JobLogsTool(tool.ctx)(job_id=job["job_id"])
    assert logs["run_id"] == job["eval_run_id"] and "EVAL_RESULT" in logs["log"]

    base = collect(job_id=job["job_id"], max_minutes=5)
    assert base["is_baseline"] is True and base["n_samples"] == 60 and base["metric"] == "em"
    [row] = ledger.list_evals(user="local")
    assert row["run_id"] is None  # a baseline scores no training run
    details = json.loads(row["details_json"])
    assert details["job"]["job_id"] == job["job_id"] and details["job"]["stage"] == "completed"
    assert details["job"]["eval_run_id"] == job["eval_run_id"]
    assert len(details["job"]["script_sha256"]) == 64 and Path(details["details_path"]).is_file()
    assert collect(job_id=job["job_id"])["already_collected"] is True and len(ledger.list_evals(user="local")) == 1
    assert ledger.get_run(job["eval_run_id"], user="local")["status"] == "completed"
    after = JobStatusTool(tool.ctx)(job_id=job["job_id"])
    assert "next" not in after and "recorded" in after["message"]

    run_id = ledger.create_run("sft", str(tiny_model_dir), str(TRAIN_FILE), experiment_id=tool.ctx.experiment_id,
                               user="local")
    with pytest.raises(ToolError, match=f"run {job['eval_run_id']} is an evaluation job"):
        tool(model=str(tiny_model_dir), task="tiny_sentiment_gen", run_id=job["eval_run_id"], as_job=True)
    second = tool(model=str(tiny_model_dir), task="tiny_sentiment_gen", run_id=run_id, as_job=True)
    assert ledger.get_run(second["eval_run_id"], user="local")["parent_run_id"] == run_id
    trained = collect(job_id=second["job_id"], max_minutes=5)
    assert trained["comparison"]["method"] == "paired_bootstrap" and trained["comparison"]["within_noise"] is True
    assert trained["contaminated"] is False and trained["delta"] == 0
    assert ledger.list_evals(user="local")[-1]["run_id"] == run_id  # the score attaches to the training run
    eval_run = ledger.get_run(second["eval_run_id"], user="local")
    assert (eval_run["status"], eval_run["error"]) == ("completed", None) and eval_run["finished_at"]

    tree = ledger.experiment_tree(tool.ctx.experiment_id, user="local")
    [root] = tree["runs"]  # the training run; the evaluation runs hang off it or stand alone
    assert root["id"] == run_id and [r["id"] for r in root["eval_runs"]] == [second["eval_run_id"]]
    assert [r["id"] for r in tree["eval_runs"]] == [job["eval_run_id"], second["eval_run_id"]]
    assert ledger.experiments_table(user="local")[0]["runs"] == 1
    assert not (tool.ctx.settings.data_dir / "evals" / "jobs").exists()  # no sidecar files
    with pytest.raises(ToolError, match="not an evaluation job"):
        collect(job_id="local-000000000000")
    ledger.create_run("sft", "m", "d", job_id="local-train", user="local")
    with pytest.raises(ToolError, match="not an evaluation job"):
        collect(job_id="local-train")


def test_cancel_job_stops_an_evaluation_job(tool, collect, ledger, tiny_model_dir):
    job = tool(model=str(tiny_model_dir), task="tiny_sentiment", is_baseline=True, as_job=True)
    canceled = CancelJobTool(tool.ctx)(job_id=job["job_id"])
    assert (canceled["stage"], canceled["run_id"]) == ("canceled", job["eval_run_id"])
    run = ledger.get_run(job["eval_run_id"], user="local")
    assert run["status"] == "canceled" and run["finished_at"]
    with pytest.raises(ToolError, match="ended with stage canceled"):
        collect(job_id=job["job_id"], max_minutes=0)
    assert ledger.get_run(job["eval_run_id"], user="local")["status"] == "canceled"
    assert ledger.list_evals(user="local") == []


def test_another_users_evaluation_job_and_run_are_unknown(tool, collect, ledger, tiny_model_dir):
    job = tool(model=str(tiny_model_dir), task="tiny_sentiment", is_baseline=True, as_job=True)
    trained = ledger.create_run("sft", str(tiny_model_dir), str(TRAIN_FILE), experiment_id=tool.ctx.experiment_id,
                                user="local")
    bob = ToolContext(settings=tool.ctx.settings, ledger=ledger, jobs=tool.ctx.jobs, user="bob")
    with pytest.raises(ToolError) as theirs:
        CollectEvaluationTool(bob)(job_id=job["job_id"], max_minutes=0)
    with pytest.raises(ToolError) as unknown:
        CollectEvaluationTool(bob)(job_id="local-000000000000", max_minutes=0)
    assert str(theirs.value).replace(job["job_id"], "<id>") == str(unknown.value).replace("local-000000000000", "<id>")
    with pytest.raises(ToolError, match=f"there is no run {trained} in the ledger"):
        RunEvaluationTool(bob)(model=str(tiny_model_dir), task="tiny_sentiment", run_id=trained)
    assert ledger.list_experiments(user="bob") == [] and ledger.list_evals(user="bob") == []
    assert ledger.get_run(job["eval_run_id"], user="local")["status"] == "running"
    assert CancelJobTool(tool.ctx)(job_id=job["job_id"])["stage"] == "canceled"


def _runner_log(model_dir: Path, out: Path, hub_id: str) -> list[str]:
    """The log lines an evaluation job prints, from a real run, as a remote job would print them."""
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert runner_main(["--model", str(model_dir), "--task", "tiny_sentiment", "--output-dir", str(out),
                            "--max-samples", "16", "--print-samples"]) == 0
    lines = stdout.getvalue().strip().splitlines()[-2:]
    result = json.loads(lines[1].split(" ", 1)[1])
    result.update(model=hub_id, details_path="/tmp/ml-intern-eval/details_tiny_sentiment.jsonl")
    return ["Installed 80 packages in 2.1s", lines[0], "EVAL_RESULT " + json.dumps(result)]


def test_evaluation_as_an_hf_job_on_a_gpu_flavor(tmp_path, data_dir, ledger, tiny_model_dir, read_dirs):
    server = serve_jobs_api(token=CANARY)
    try:
        settings = Settings(data_dir=data_dir, hf_endpoint=server.url, hf_token=CANARY, compute_backend="hf-jobs",
                            extra_read_dirs=read_dirs)
        ctx = ToolContext(settings=settings, ledger=ledger, jobs=HfJobsBackend(settings, sleep=lambda s: None))
        tool, collect = RunEvaluationTool(ctx), CollectEvaluationTool(ctx)
        collect.poll_interval_s = 0.01
        with pytest.raises(ToolError, match="a job on HF Jobs cannot see"):
            tool(model=str(tiny_model_dir), task="tiny_sentiment", is_baseline=True, as_job=True)
        server.state["plan"] = {"stages": [("RUNNING", None), ("COMPLETED", None)],
                                "logs": _runner_log(tiny_model_dir, tmp_path / "remote", "me/tiny-base")}
        job = tool(model="me/tiny-base", task="tiny_sentiment", is_baseline=True, as_job=True, flavor="a10g-small")
        [created] = server.state["jobs"].values()
        assert created["spec"]["flavor"] == "a10g-small" and set(created["spec"]["secrets"]) == {"HF_TOKEN"}
        held = ledger.session_spend(None, user="local")["reserved_usd"]
        assert held == pytest.approx(0.016667 * 60 * 3)  # the most 3 hours on a10g-small can cost, until it ends
        script = base64.b64decode(created["spec"]["environment"]["ML_INTERN_SCRIPT_B64"]).decode()
        assert '"lighteval[vllm]==0.13.0"' in script and CANARY not in script
        argv = json.loads(re.search(r"^ARGV = (.*)$", script, re.M).group(1))
        assert argv[argv.index("--backend") + 1] == "vllm" and argv[argv.index("--model") + 1] == "me/tiny-base"
        packed = re.search(r'"evals/runner.py": "([^"]+)"', script).group(1)
        assert zlib.decompress(base64.b64decode(packed)) == Path("evals/runner.py").read_bytes()

        base = collect(job_id=job["job_id"], max_minutes=1)
        assert base["model"] == "me/tiny-base" and base["n_samples"] == 16
        details = json.loads(ledger.list_evals(user="local")[0]["details_json"])
        assert details["job_details_path"].startswith("/tmp/ml-intern-eval/")
        assert len(Path(details["details_path"]).read_text().splitlines()) == 16  # rebuilt from EVAL_SAMPLES
        assert ledger.get_experiment(ctx.experiment_id, user="local")["base_model"] == "me/tiny-base"
        eval_run = ledger.get_run(job["eval_run_id"], user="local")  # priced like a training job: 120 s on a10g-small
        assert (eval_run["kind"], eval_run["backend"], eval_run["hardware"], eval_run["status"]) == (
            "eval", "hf-jobs", "a10g-small", "completed")
        assert eval_run["cost_usd"] == pytest.approx(2 * 0.016667, rel=1e-3)
        assert ledger.experiment_cost(ctx.experiment_id, user="local") == eval_run["cost_usd"]
        spend = ledger.session_spend(None, user="local")
        assert (spend["jobs_usd"], spend["reserved_usd"]) == (eval_run["cost_usd"], 0.0)

        server.state["plan"] = {**server.state["plan"], "logs": _runner_log(tiny_model_dir, tmp_path / "r2",
                                                                            "me/tiny-sft")}
        run_id = ledger.create_run("sft", "me/tiny-base", str(TRAIN_FILE), experiment_id=ctx.experiment_id,
                                   user="local")
        job = tool(model="me/tiny-sft", task="tiny_sentiment", run_id=run_id, as_job=True, flavor="cpu-upgrade")
        created = server.state["jobs"][job["job_id"]]
        assert "vllm" not in base64.b64decode(created["spec"]["environment"]["ML_INTERN_SCRIPT_B64"]).decode()
        trained = collect(job_id=job["job_id"], max_minutes=1)
        assert trained["comparison"]["method"] == "paired_bootstrap" and trained["comparison"]["n_paired"] == 16
        assert trained["contaminated"] is False and trained["model"] == "me/tiny-sft"
    finally:
        server.close()
