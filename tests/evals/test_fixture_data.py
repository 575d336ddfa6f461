"""evals/fixture_data.py and evals/tiny_model.py: the shipped fixture is learnable by the tiny model, so the
offline demo and the end-to-end tests measure a real gain."""

from __future__ import annotations

from evals import fixture_data
from evals.compare import compare
from evals.runner import run_lighteval

# The test-model settings the demo plans and the end-to-end tests pass (see evals/fixture_data.py).
SFT_STEPS, SFT_LR, SFT_BATCH = 150, 3e-3, 16


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
