"""Is a trained score really better than its baseline? The difference with its 95% confidence interval.

    compare(baseline, trained) -> {"difference", "ci95", "stderr", "method", "within_noise", "verdict", "text", ...}

`baseline` and `trained` are evaluation results (or ledger rows): value, stderr, n_samples and,
when there is one, details_path, the per-sample JSON lines the runner writes. When both details
files score the same sample ids, the interval comes from a paired bootstrap (seeded, 2000
resamples of the sample ids; stratified by subtask for supersets such as MMLU, whose score is the
mean over subtasks): pairing removes the variance both models share, so it detects smaller gains
than the stderrs do. Otherwise it is difference ± 1.96·sqrt(se1² + se2²), which treats the two
scores as independent (conservative). A difference whose interval includes 0 is "within noise":
not a gain.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

RESAMPLES = 2000
SEED = 0
Z95 = 1.959964


def sample_scores(details_path: str | Path | None, metric: str) -> dict[str, float] | None:
    """id -> the sample's `metric` from a runner details file; None when there is no usable file."""
    if not details_path or not Path(details_path).is_file():
        return None
    scores = {}
    for line in Path(details_path).read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            value = (row.get("metrics") or {}).get(metric)
            if value is None:
                return None
            scores[str(row["id"])] = float(value)
    return scores or None


def _field(result: dict, name: str):
    if name in result:
        return result[name]
    details = result.get("details")
    if details is None and result.get("details_json"):
        details = json.loads(result["details_json"])
    return (details or {}).get(name)


def _paired_bootstrap(base: dict[str, float], trained: dict[str, float], resamples: int, seed: int) -> dict:
    import numpy as np

    ids = sorted(base)
    groups: dict[str, list[int]] = {}
    for i, sample_id in enumerate(ids):
        groups.setdefault(sample_id.rpartition("/")[0], []).append(i)
    diffs = np.array([trained[i] - base[i] for i in ids])
    rng = np.random.default_rng(seed)
    # The statistic is the mean over groups of each group's mean difference (one group: the plain mean).
    means = np.zeros(resamples)
    point = 0.0
    for members in groups.values():
        group = diffs[members]
        point += group.mean()
        means += group[rng.integers(0, len(group), size=(resamples, len(group)))].mean(axis=1)
    point, means = point / len(groups), means / len(groups)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"difference": float(point), "ci95": [float(low), float(high)], "stderr": float(means.std(ddof=1)),
            "method": "paired_bootstrap", "n_paired": len(ids), "resamples": resamples, "seed": seed,
            "groups": len(groups)}


def compare(baseline: dict, trained: dict, metric: str | None = None, resamples: int = RESAMPLES,
            seed: int = SEED) -> dict:
    """The trained-minus-baseline difference, its 95% CI and whether it is within noise."""
    metric = metric or trained.get("metric") or baseline.get("metric")
    difference = float(trained["value"]) - float(baseline["value"])
    base_scores = sample_scores(_field(baseline, "details_path"), metric)
    trained_scores = sample_scores(_field(trained, "details_path"), metric)
    if base_scores and trained_scores and set(base_scores) == set(trained_scores) and len(base_scores) > 1:
        out = {**_paired_bootstrap(base_scores, trained_scores, resamples, seed), "difference": difference}
    else:
        errors = [trained.get("stderr"), baseline.get("stderr")]
        if any(e is None or not math.isfinite(float(e)) for e in errors):
            return {"difference": difference, "ci95": None, "stderr": None, "method": "none", "within_noise": None,
                    "verdict": "unknown", "text": f"difference {difference:+.4f}; no stderr or per-sample details "
                                                  "to judge it against noise."}
        se = math.sqrt(sum(float(e) ** 2 for e in errors))
        out = {"difference": difference, "ci95": [difference - Z95 * se, difference + Z95 * se], "stderr": se,
               "method": "stderr"}
        if base_scores and trained_scores:
            out["note"] = "the two evaluations scored different samples: no paired comparison."
    low, high = out["ci95"]
    within = low <= 0 <= high
    out["within_noise"] = within
    out["verdict"] = "within noise" if within else ("gain" if out["difference"] > 0 else "loss")
    how = (f"paired bootstrap over {out['n_paired']} samples" if out["method"] == "paired_bootstrap"
           else "independent stderrs")
    out["text"] = (f"{metric} {out['difference']:+.4f} (95% CI {low:+.4f} to {high:+.4f}, {how}): "
                   + ("within noise, not a gain." if within and out["difference"] > 0 else
                      "within noise." if within else f"a {out['verdict']} beyond noise."))
    return out
