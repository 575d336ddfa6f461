"""The lighteval task file and the eval runner, on the tiny model: real lighteval, no mocks."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from evals import fixture_data
from evals.compare import compare
from evals.eval_job import render_eval_script
from evals.runner import RESULT_PREFIX, SAMPLES_PREFIX, check_task, main, run_lighteval
from evals.tasks import TASKS, task_spec, tiny_sentiment_prompt
from evals.tiny_model import build_tiny_model

REPO = Path(__file__).resolve().parents[2]
# The hyperparameters the demo and the training-script defaults rely on (see evals/fixture_data.py).
SFT_STEPS, SFT_LR, SFT_BATCH = 150, 3e-3, 16


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evals.runner", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600)


def parse_result(stdout: str) -> dict:
    last = stdout.strip().splitlines()[-1]
    assert last.startswith(RESULT_PREFIX), stdout[-2000:]
    return json.loads(last[len(RESULT_PREFIX):])


def test_task_registry_is_a_plain_dict_and_cheap_to_import():
    assert {"tiny_sentiment", "tiny_sentiment_gen"} <= set(TASKS) and isinstance(TASKS, dict)
    assert task_spec("tiny_sentiment") == "tiny_sentiment|0"
    assert task_spec("tiny_sentiment_gen") == "tiny_sentiment_gen|0"
    code = ("import sys, evals.tasks, evals.runner, evals.catalogue, evals.compare, evals.integrity, evals.eval_job, "
            "tools.evaluation.evaluate, tools.evaluation.checks; "
            "print(sorted(m for m in ('lighteval', 'torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_prompt_matches_the_training_format():
    row = fixture_data.test_rows()[1]
    doc = tiny_sentiment_prompt(row, "tiny_sentiment")
    assert doc.query == fixture_data.prompt_for(row["review"])
    assert doc.choices == [" positive", " negative"]
    assert doc.choices[doc.gold_index] == " " + row["label"]
    train = fixture_data.train_rows()[0]
    assert train["prompt"].startswith("Review: ") and train["completion"] in doc.choices


def test_unknown_task_lists_the_available_ones(tmp_path, tiny_model_dir):
    with pytest.raises(ValueError, match="Offline fixtures: tiny_sentiment, tiny_sentiment_gen"):
        check_task("squad-9000")
    proc = run_cli("--model", str(tiny_model_dir), "--task", "squad-9000", "--output-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "unknown task 'squad-9000'. Offline fixtures: tiny_sentiment" in proc.stderr
    assert "gsm8k" in proc.stderr and RESULT_PREFIX not in proc.stdout


def test_not_a_model_directory(tmp_path):
    assert main(["--model", str(tmp_path), "--output-dir", str(tmp_path / "out")]) == 2


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


def fixture_data_digest(task: str) -> str:
    from evals.integrity import verify_data

    return verify_data(TASKS[task]["data_path"])["data_sha256"]


def test_generative_fixture_runs_on_the_tiny_model(tmp_path, tiny_model_dir):
    result = run_lighteval(str(tiny_model_dir), "tiny_sentiment_gen", output_dir=str(tmp_path / "gen"))
    assert result["task_spec"] == "tiny_sentiment_gen|0" and result["metric"] == "em" and result["n_samples"] == 60
    assert result["value"] <= 0.1  # an untrained model does not write the label word
    rows = [json.loads(line) for line in Path(result["details_path"]).read_text().splitlines()]
    assert [r["id"] for r in rows] == [str(i) for i in range(60)]
    assert all(r["choices"][0] in ("positive", "negative") and "prediction" in r and r["logprobs"] == [] for r in rows)


def test_the_eval_job_script_carries_the_runner_and_the_data(tmp_path, tiny_model_dir):
    argv = ["--model", str(tiny_model_dir), "--task", "tiny_sentiment", "--output-dir", str(tmp_path / "out"),
            "--max-samples", "8"]
    cpu = render_eval_script(argv)
    assert cpu.startswith("# /// script") and '"lighteval==0.13.0"' in cpu and "vllm" not in cpu
    gpu = render_eval_script(argv, gpu=True)
    assert '"lighteval[vllm]==0.13.0"' in gpu and '"--backend", "vllm"' in gpu
    script = tmp_path / "eval_job.py"
    script.write_text(cpu)
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    samples = json.loads(lines[-2][len(SAMPLES_PREFIX):])
    result = parse_result(proc.stdout)
    assert lines[-2].startswith(SAMPLES_PREFIX) and len(set(samples["ids"])) == 8  # lighteval's seeded subset
    assert result["n_samples"] == 8 and sum(samples["scores"]) / 8 == pytest.approx(result["value"])


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


def test_sft_on_the_demo_data_lifts_accuracy_by_20_points(tmp_path, tiny_model_dir):
    from datasets import load_dataset
    from trl import SFTConfig, SFTTrainer

    baseline = run_lighteval(str(tiny_model_dir), output_dir=str(tmp_path / "base"))
    args = SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=SFT_STEPS, learning_rate=SFT_LR,
                     per_device_train_batch_size=SFT_BATCH, use_cpu=True, bf16=False, seed=42,
                     activation_checkpointing=False,  # TRL turns it on by default; it breaks this CPU run
                     save_strategy="no", report_to="none", disable_tqdm=True)
    dataset = load_dataset("json", data_files=str(fixture_data.TRAIN_FILE), split="train")
    trainer = SFTTrainer(model=str(tiny_model_dir), args=args, train_dataset=dataset)
    trainer.train()
    trainer.save_model(str(tmp_path / "trained"))
    trained = run_lighteval(str(tmp_path / "trained"), output_dir=str(tmp_path / "after"))
    assert trained["value"] >= baseline["value"] + 0.2, (baseline["value"], trained["value"])
    assert compare(baseline, trained)["verdict"] == "gain"
    generated = run_lighteval(str(tmp_path / "trained"), "tiny_sentiment_gen", output_dir=str(tmp_path / "gen"))
    assert generated["value"] >= 0.5, generated["value"]  # the trained model writes the label word itself
