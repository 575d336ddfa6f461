"""compare(): the difference between a baseline and a trained score, with its 95% interval."""

from __future__ import annotations

import json
import random

import pytest

from evals.compare import compare, sample_scores


def write_details(path, scores, metric="acc", prefix=""):
    path.write_text("".join(json.dumps({"id": f"{prefix}{i}", "metrics": {metric: s}}) + "\n"
                            for i, s in enumerate(scores)))
    return str(path)


def result(tmp_path, name, scores, metric="acc", **extra):
    value = sum(scores) / len(scores)
    return {"metric": metric, "value": value, "stderr": (value * (1 - value) / len(scores)) ** 0.5,
            "n_samples": len(scores), "details_path": write_details(tmp_path / f"{name}.jsonl", scores, metric),
            **extra}


def flips(scores, n, rng):
    """`scores` with `n` randomly chosen samples flipped from wrong to right."""
    out = list(scores)
    for i in rng.sample([i for i, s in enumerate(out) if s == 0], n):
        out[i] = 1
    return out


def test_a_gain_within_noise_is_reported_as_such(tmp_path):
    rng = random.Random(0)
    base = [rng.randint(0, 1) for _ in range(200)]
    trained = flips(base, 3, rng)  # +1.5 points on 200 samples: well inside the noise
    for a, b in ((base, trained), (trained, trained)):
        out = compare(result(tmp_path, "b", a), result(tmp_path, "t", b))
        assert out["method"] == "paired_bootstrap" and out["n_paired"] == 200 and out["resamples"] == 2000
        assert out["within_noise"] is True and out["verdict"] == "within noise"
        low, high = out["ci95"]
        assert low <= 0 <= high
    out = compare(result(tmp_path, "b", base), result(tmp_path, "t", trained))
    assert out["difference"] == pytest.approx(0.015)
    assert "within noise, not a gain" in out["text"]


def test_a_clear_gain_is_not_noise(tmp_path):
    rng = random.Random(1)
    base = [int(rng.random() < 0.4) for _ in range(200)]
    trained = flips(base, 60, rng)  # +30 points
    out = compare(result(tmp_path, "b", base), result(tmp_path, "t", trained))
    assert out["verdict"] == "gain" and out["within_noise"] is False
    assert 0 < out["ci95"][0] < out["difference"] < out["ci95"][1]
    assert "gain beyond noise" in out["text"]
    reverse = compare(result(tmp_path, "t", trained), result(tmp_path, "b", base))
    assert reverse["verdict"] == "loss" and reverse["ci95"][1] < 0


def test_pairing_detects_a_gain_that_independent_stderrs_call_noise(tmp_path):
    rng = random.Random(2)
    base = [rng.randint(0, 1) for _ in range(400)]
    trained = flips(base, 24, rng)  # +6 points, and no sample got worse
    paired = compare(result(tmp_path, "b", base), result(tmp_path, "t", trained))
    independent = compare({**result(tmp_path, "b", base), "details_path": None},
                          {**result(tmp_path, "t", trained), "details_path": None})
    assert independent["method"] == "stderr" and independent["within_noise"] is True
    assert paired["method"] == "paired_bootstrap" and paired["verdict"] == "gain"


def test_bootstrap_is_seeded(tmp_path):
    rng = random.Random(3)
    base = [rng.randint(0, 1) for _ in range(100)]
    trained = flips(base, 10, rng)
    a, b = (compare(result(tmp_path, "b", base), result(tmp_path, "t", trained)) for _ in range(2))
    assert a == b and a["seed"] == 0
    assert compare(result(tmp_path, "b", base), result(tmp_path, "t", trained), seed=1)["ci95"] != a["ci95"]


def test_stderr_fallback_without_details_or_on_different_samples(tmp_path):
    noisy = compare({"metric": "acc", "value": 0.50, "stderr": 0.05}, {"metric": "acc", "value": 0.55, "stderr": 0.05})
    assert noisy["method"] == "stderr" and noisy["within_noise"] is True
    assert noisy["stderr"] == pytest.approx(0.05 * 2 ** 0.5)
    clear = compare({"metric": "acc", "value": 0.2, "stderr": 0.01}, {"metric": "acc", "value": 0.6, "stderr": 0.01})
    assert clear["verdict"] == "gain"
    subset = compare(result(tmp_path, "b", [0, 1, 0, 1]), result(tmp_path, "t", [1, 1, 1]))
    assert subset["method"] == "stderr" and "different samples" in subset["note"]
    unknown = compare({"metric": "acc", "value": 0.5, "stderr": None}, {"metric": "acc", "value": 0.6})
    assert unknown["verdict"] == "unknown" and unknown["within_noise"] is None


def test_superset_bootstrap_is_stratified_by_subtask(tmp_path):
    base_path, trained_path = tmp_path / "b.jsonl", tmp_path / "t.jsonl"
    rows_b, rows_t = [], []
    for subject, n, gain in (("mmlu:a", 10, 5), ("mmlu:b", 100, 0)):
        for i in range(n):
            rows_b.append({"id": f"{subject}/{i}", "metrics": {"em": 0}})
            rows_t.append({"id": f"{subject}/{i}", "metrics": {"em": int(i < gain)}})
    base_path.write_text("".join(json.dumps(r) + "\n" for r in rows_b))
    trained_path.write_text("".join(json.dumps(r) + "\n" for r in rows_t))
    # macro average over the two subjects: (0.5 + 0) / 2
    out = compare({"metric": "em", "value": 0.0, "stderr": 0.0, "details_path": str(base_path)},
                  {"metric": "em", "value": 0.25, "stderr": 0.1, "details_path": str(trained_path)})
    assert out["groups"] == 2 and out["n_paired"] == 110 and out["difference"] == pytest.approx(0.25)
    assert out["ci95"][1] <= 0.5 + 1e-9


def test_ledger_rows_are_accepted(tmp_path):
    rng = random.Random(4)
    base = [rng.randint(0, 1) for _ in range(50)]
    path = write_details(tmp_path / "b.jsonl", base)
    row = {"metric": "acc", "value": sum(base) / 50, "stderr": 0.07, "details_json": json.dumps({"details_path": path})}
    out = compare(row, result(tmp_path, "t", base))
    assert out["method"] == "paired_bootstrap" and out["difference"] == 0
    assert sample_scores(path, "acc")["0"] == base[0] and sample_scores(path, "em") is None
