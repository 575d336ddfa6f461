"""evals/runner.py: the eval runner on the tiny model (real lighteval, no mocks), its command line, and how it
checks its inputs, reads lighteval's scores and explains Hub failures."""

from __future__ import annotations

import json
import math
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from evals.catalogue import resolve_task
from evals.runner import (
    FIXTURE_HINT,
    RESULT_PREFIX,
    _hub_error,
    _scores,
    _stage,
    check_task,
    main,
    reproduce_command,
    run_lighteval,
)
from evals.tasks import TASKS
from evals.tiny_model import build_tiny_model

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evals.runner", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600)


def parse_result(stdout: str) -> dict:
    last = stdout.strip().splitlines()[-1]
    assert last.startswith(RESULT_PREFIX), stdout[-2000:]
    return json.loads(last[len(RESULT_PREFIX):])


def fixture_data_digest(task: str) -> str:
    from evals.integrity import verify_data

    return verify_data(TASKS[task]["data_path"])["data_sha256"]


def test_unknown_task_lists_the_available_ones(tmp_path, tiny_model_dir):
    with pytest.raises(ValueError, match="Offline fixtures: tiny_sentiment, tiny_sentiment_gen"):
        check_task("squad-9000")
    proc = run_cli("--model", str(tiny_model_dir), "--task", "squad-9000", "--output-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "unknown task 'squad-9000'. Offline fixtures: tiny_sentiment" in proc.stderr
    assert "gsm8k" in proc.stderr and RESULT_PREFIX not in proc.stdout


def test_not_a_model_directory(tmp_path):
    assert main(["--model", str(tmp_path), "--output-dir", str(tmp_path / "out")]) == 2


def test_models_backends_and_options_are_checked_before_lighteval_runs(tmp_path, capsys):
    with pytest.raises(ValueError, match="is not a model directory"):
        run_lighteval(str(tmp_path), output_dir=str(tmp_path / "out"))
    with pytest.raises(ValueError, match="model path /no/such/checkpoint does not exist"):
        run_lighteval("/no/such/checkpoint", output_dir=str(tmp_path / "out"))
    with pytest.raises(ValueError, match="unknown backend 'onnx'"):
        run_lighteval(str(tmp_path), output_dir=str(tmp_path / "out"), backend="onnx")
    assert main(["--model", str(tmp_path), "--task", "custom:me/qa", "--task-options", "{kind: generative",
                 "--output-dir", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("error: Expecting property name enclosed in double quotes")
    assert not (tmp_path / "out").exists()


def test_the_reproduce_command_names_every_setting_that_changes_the_score():
    plain = shlex.split(reproduce_command("/ckpt/run 1", "tiny_sentiment", "/out", None, 16, 0, "cpu"))
    assert plain == ["python", "-m", "evals.runner", "--model", "/ckpt/run 1", "--task", "tiny_sentiment",
                     "--output-dir", "/out", "--batch-size", "16", "--seed", "0", "--device", "cpu"]
    job = shlex.split(reproduce_command("me/model", "custom:me/qa", "/out", 50, 8, 3, "cuda", backend="vllm",
                                        task_options={"match": "number", "kind": "generative"}))
    assert job[len(plain):] == ["--backend", "vllm", "--task-options", '{"kind": "generative", "match": "number"}',
                                "--max-samples", "50"]
    assert job[job.index("--seed") + 1] == "3" and job[job.index("--device") + 1] == "cuda"


def test_cli_scores_the_untrained_model_near_chance(tmp_path, tiny_model_dir):
    out = tmp_path / "eval"
    proc = run_cli("--model", str(tiny_model_dir), "--task", "tiny_sentiment", "--output-dir", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = parse_result(proc.stdout)
    assert result["task"] == "tiny_sentiment" and result["task_spec"] == "tiny_sentiment|0"
    assert result["metric"] == "acc" and result["n_samples"] == 120 and result["fewshot"] == 0
    assert 0.3 <= result["value"] <= 0.7
    assert 0.03 < result["stderr"] < 0.06  # sqrt(p(1-p)/n) for n=120
    assert result["lighteval_version"] == "0.13.0" and result["seed"] == 0
    assert result["source"] == "fixture" and result["backend"] == "transformers" and result["device"] == "cpu"
    assert result["data_sha256"] == fixture_data_digest("tiny_sentiment")
    assert result["model"] == str(Path(tiny_model_dir).resolve())
    argv = shlex.split(result["command"])
    assert argv[:3] == ["python", "-m", "evals.runner"]
    assert argv[argv.index("--model") + 1] == result["model"] and "--task" in argv
    assert Path(result["results_path"]).is_file()
    rows = [json.loads(line) for line in Path(result["details_path"]).read_text().splitlines()]
    assert [r["id"] for r in rows] == [str(i) for i in range(120)]
    assert sum(r["metrics"]["acc"] for r in rows) / 120 == pytest.approx(result["value"])
    assert all(len(r["logprobs"]) == 2 and r["gold"] in (0, 1) for r in rows)


def test_generative_fixture_runs_on_the_tiny_model(tmp_path, tiny_model_dir):
    result = run_lighteval(str(tiny_model_dir), "tiny_sentiment_gen", output_dir=str(tmp_path / "gen"))
    assert result["task_spec"] == "tiny_sentiment_gen|0" and result["metric"] == "em" and result["n_samples"] == 60
    assert result["value"] <= 0.1  # an untrained model does not write the label word
    rows = [json.loads(line) for line in Path(result["details_path"]).read_text().splitlines()]
    assert [r["id"] for r in rows] == [str(i) for i in range(60)]
    assert all(r["choices"][0] in ("positive", "negative") and "prediction" in r and r["logprobs"] == [] for r in rows)


def test_runner_loads_no_builtin_tasks_and_never_reuses_a_stale_checkpoint(tmp_path):
    """lighteval caches outputs by model path; a checkpoint rewritten in place must be re-scored."""
    model = build_tiny_model(tmp_path / "ckpt", seed=0)
    files = sorted(p.name for p in model.iterdir())
    loaded = set(sys.modules)
    first = run_lighteval(str(model), "tiny_sentiment", output_dir=str(tmp_path / "a"), max_samples=16)
    assert first["n_samples"] == 16
    assert not [m for m in set(sys.modules) - loaded if m.startswith("lighteval.tasks.tasks.")]
    assert sorted(p.name for p in model.iterdir()) == files  # lighteval's sample cache stays out of the checkpoint
    build_tiny_model(model, seed=1)
    second = run_lighteval(str(model), "tiny_sentiment", output_dir=str(tmp_path / "b"), max_samples=16)
    logprobs = [[json.loads(line)["logprobs"] for line in Path(r["details_path"]).read_text().splitlines()]
                for r in (first, second)]
    assert logprobs[0] != logprobs[1]


def test_a_single_data_file_is_staged_as_a_split_file(tmp_path):
    data = tmp_path / "qa.jsonl"
    data.write_text('{"question": "q", "answer": "a"}\n')
    staged = _stage({"data_path": str(data), "split": "validation"}, tmp_path / "out")
    assert staged == tmp_path / "out" / "data" and (staged / "validation.jsonl").read_text() == data.read_text()
    assert _stage({"data_path": str(tmp_path), "split": "test"}, tmp_path / "out2") is None  # a folder already is
    assert _stage({"hf_repo": "me/qa", "split": "test"}, tmp_path / "out3") is None


def detail(doc_id: str, score: float, gold: int = 0) -> SimpleNamespace:
    """One per-sample detail as lighteval's details logger keeps it."""
    return SimpleNamespace(doc=SimpleNamespace(id=doc_id, gold_index=gold, choices=[" A", " B"]),
                           model_response=SimpleNamespace(logprobs=[-0.5, -1.5], text=[], final_text=[]),
                           metric={"em": score})


def test_scores_read_the_primary_metric_and_sort_samples_by_number():
    ref = {"metric": "em", "spec": "qa|0"}
    details = {"qa|0": [detail(str(i), i % 2) for i in (10, 2, 1)]}
    value, stderr, rows = _scores(ref, {"qa|0": {"em": 0.5, "em_stderr": 0.1}}, details)
    assert (value, stderr) == (0.5, 0.1) and [r["id"] for r in rows] == ["1", "2", "10"]
    assert rows[0] == {"id": "1", "gold": 0, "choices": [" A", " B"], "logprobs": [-0.5, -1.5], "metrics": {"em": 1}}
    assert math.isnan(_scores(ref, {"qa|0": {"em": 0.5}}, details)[1])
    with pytest.raises(ValueError, match=r"lighteval reported no 'em' for qa\|0; it reported \['acc'\]"):
        _scores(ref, {"qa|0": {"acc": 0.5}}, details)


def test_a_superset_scores_the_mean_over_its_subtasks():
    ref = resolve_task("mmlu")
    aggregated = {"mmlu:anatomy|5": {"em": 0.6, "em_stderr": 0.03}, "mmlu:virology|5": {"em": 0.2, "em_stderr": 0.04},
                  "all": {"em": 0.9}}
    details = {"mmlu:virology|5": [detail("0", 0.0)], "mmlu:anatomy|5": [detail("1", 1.0), detail("0", 1.0)]}
    value, stderr, rows = _scores(ref, aggregated, details)
    assert value == pytest.approx(0.4) and stderr == pytest.approx(0.025)  # sqrt(0.03² + 0.04²) / 2
    assert [r["id"] for r in rows] == ["mmlu:anatomy/0", "mmlu:anatomy/1", "mmlu:virology/0"]


def test_hub_failures_are_explained_and_other_errors_are_left_alone():
    ref = resolve_task("gsm8k")
    try:
        try:
            raise ConnectionError("Couldn't reach 'openai/gsm8k' on the Hub (LocalEntryNotFoundError)")
        except ConnectionError as cause:
            raise RuntimeError("could not load the dataset") from cause
    except RuntimeError as err:
        explained = _hub_error(ref, err)
    assert str(explained).startswith("gsm8k needs the Hugging Face Hub to download openai/gsm8k and could not get "
                                     "it (ConnectionError: Couldn't reach 'openai/gsm8k'")
    assert str(explained).endswith(FIXTURE_HINT)
    assert _hub_error(ref, ZeroDivisionError("division by zero")) is None
