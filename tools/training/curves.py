"""Judging a run by its metric curves: the failure a curve shows, or whether it shows learning.

`series` maps TRL's metric names (loss, grad_norm, learning_rate, reward, reward_std, kl,
frac_reward_zero_std, completions/clipped_ratio, rewards/margins, rewards/accuracies, ...) to sorted
finite (step, value) points, whether they came from our METRIC lines or a Trainer's printed dicts.
GRPO runs are judged by reward (their loss is not a learning curve), DPO runs by their reward margins,
everything else by its loss. Windows are the first and last quarter of the logged points.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

FLAT_MIN_POINTS = 8  # logged points needed before calling a curve flat
FLAT_REL_CHANGE = 0.02  # |mean(first window) - mean(last window)| / mean(first window)
DIVERGE_MIN_POINTS = 6
DIVERGE_REL_RISE = 0.3  # mean of the last window this far above the run's minimum (relative)
DIVERGE_MIN_RISE = 0.05  # ... and absolute, so noise at a tiny loss is not divergence
LOSS_EXPLODED = 20.0  # above ln(vocab) of any vocabulary (ln 256k ≈ 12.5): worse than a uniform guess
REWARD_ZERO = 1e-6
REWARD_RISE = 0.01  # reward's last window at least this far above its first (and 2% of it) is learning
COLLAPSE_FRACTION = 0.1  # reward's last window at or below this fraction of its earlier peak
KL_THRESHOLD = 1.0  # per-token KL (TRL's `kl`); healthy GRPO runs stay well below
ZERO_STD_GROUPS = 0.8  # frac_reward_zero_std: share of GRPO groups whose completions all score alike
MARGIN_GROWTH = 0.05  # DPO rewards/margins must grow at least this much from the first window to the last
DIVERGE_STEP = ("The loss is rising or blew up: lower learning_rate 3-10x (typical: 1e-5..5e-5 full, 1e-4..3e-4 "
                "LoRA), use warmup (warmup_ratio 0.05) and max_grad_norm=1.0, and keep the checkpoint from before "
                "the rise.")

Series = dict[str, list[tuple[int, float]]]


@dataclass
class Diagnosis:
    failure: str  # a short class name, "healthy" or "unknown"
    evidence: list[str] = field(default_factory=list)
    next_step: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _window(n: int) -> int:
    return max(2, n // 4)


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def fmt(x: float) -> str:
    return f"{x:.4g}"


def _ends(points: list[tuple[int, float]]) -> tuple[float, float, int]:
    """Mean of the first window, mean of the last window, and the window size."""
    values = [v for _, v in points]
    w = _window(len(values))
    return _mean(values[:w]), _mean(values[-w:]), w


def _trend(name: str, points: list[tuple[int, float]]) -> str:
    first, last, w = _ends(points)
    return (f"{name} {fmt(first)} (first {w} logs) -> {fmt(last)} (last {w} logs) over steps "
            f"{points[0][0]}-{points[-1][0]}")


def _zero_std_groups(series: Series) -> str | None:
    """Evidence when most GRPO groups score all alike at the end of the run (TRL's frac_reward_zero_std)."""
    frac = series.get("frac_reward_zero_std", [])
    if len(frac) < 3:
        return None
    _, last, w = _ends(frac)
    if last < ZERO_STD_GROUPS:
        return None
    return (f"frac_reward_zero_std {fmt(frac[0][1])} at step {frac[0][0]} -> {fmt(last)} (mean of the last {w} "
            f"logs): {last:.0%} of groups give every completion the same reward, so their advantage is 0")


def _reward_failure(series: Series) -> Diagnosis | None:
    reward, kl = series.get("reward", []), series.get("kl", [])
    reward_std = series.get("reward_std", [])
    if len(kl) >= 3 and len(reward) >= 3:
        kl_end = kl[-1][1]
        peak_step, peak = max(reward[:-1], key=lambda p: p[1])
        reward_end = _mean(v for _, v in reward[-_window(len(reward)):])
        if kl_end > KL_THRESHOLD and kl_end > 5 * max(kl[0][1], 1e-6) and reward_end < peak - 0.2 * abs(peak):
            return Diagnosis("kl_blowup", [
                f"kl {fmt(kl[0][1])} at step {kl[0][0]} -> {fmt(kl_end)} at step {kl[-1][0]} (threshold "
                f"{KL_THRESHOLD})", f"reward peaked at {fmt(peak)} (step {peak_step}), last logs mean "
                f"{fmt(reward_end)}"],
                "The policy drifts from the reference while reward falls: lower learning_rate, raise beta (KL "
                "coefficient, e.g. 0.04), keep the best earlier checkpoint, and look at completions for reward "
                "hacking.")
    if len(reward) < 3:
        return None
    values = [v for _, v in reward]
    clipped = series.get("completions/clipped_ratio", [])
    cut_off = ([f"completions/clipped_ratio {fmt(clipped[-1][1])} at step {clipped[-1][0]}: completions hit "
                "max_completion_length"] if clipped and clipped[-1][1] >= 0.5 else [])
    if all(abs(v) <= REWARD_ZERO for v in values):
        flat_std = ["reward_std is 0 too: no learning signal"] if reward_std and all(
            abs(v) <= REWARD_ZERO for _, v in reward_std) else []
        return Diagnosis("zero_reward", [
            f"reward mean is 0 at all {len(values)} logged steps ({reward[0][0]}-{reward[-1][0]})",
            *flat_std, *cut_off],
            "The reward never fires (the format never matches): print a few completions and run the reward "
            "function on them; check the answer column reaches it (GSM8K answers end with '#### N'); add a "
            "partial-credit format reward or SFT on the format first; raise max_completion_length if "
            "completions are cut off.")
    w = _window(len(values))
    peak_step, peak = max(reward[:-w], key=lambda p: p[1])
    end = _mean(values[-w:])
    zero_std = _zero_std_groups(series)
    if peak > REWARD_ZERO and end <= COLLAPSE_FRACTION * peak:
        return Diagnosis("reward_collapse", [
            f"reward peaked at {fmt(peak)} (step {peak_step}), mean of the last {w} logs "
            f"({reward[-w][0]}-{reward[-1][0]}) is {fmt(end)}", *([zero_std] if zero_std else []), *cut_off],
            "The reward collapsed after learning: lower learning_rate, set beta (e.g. 0.04) to anchor to the "
            "reference, keep the checkpoint from the peak, and check completions for truncation "
            "(completions/clipped_ratio) or degenerate output.")
    if zero_std or (len(reward_std) >= 3 and all(abs(v) <= REWARD_ZERO for _, v in reward_std)):
        return Diagnosis("no_reward_signal", [
            zero_std or f"reward_std is 0 at all {len(reward_std)} logged steps while reward mean is {fmt(end)}",
            f"reward mean {fmt(end)} over the last {w} logs", *cut_off],
            "Every completion in a group gets the same reward, so advantages are 0 and nothing is learned: the "
            "prompts are too hard (all wrong) or too easy (all right) for the model, or the reward is "
            "all-or-nothing. Keep prompts the model solves sometimes, raise num_generations and temperature, or "
            "make the reward graded (partial credit).")
    return None


def _margin_failure(series: Series) -> Diagnosis | None:
    margins = series.get("rewards/margins", [])
    if len(margins) < FLAT_MIN_POINTS:
        return None
    first, last, w = _ends(margins)
    if last - first >= MARGIN_GROWTH:
        return None
    evidence = [_trend("rewards/margins", margins)]
    accuracies = series.get("rewards/accuracies", [])
    if accuracies:
        evidence.append(f"rewards/accuracies {fmt(_ends(accuracies)[1])} over the last {w} logs (chance is 0.5)")
    loss = series.get("loss", [])
    if loss:
        evidence.append(f"loss {fmt(_ends(loss)[1])} over the last {w} logs (ln 2 = 0.6931: no preference learned)")
    return Diagnosis("flat_margins", evidence,
                     "DPO is not separating chosen from rejected: raise learning_rate (typical 5e-7..5e-6 full, "
                     "5e-6..5e-5 LoRA), check that chosen and rejected differ and are not swapped (margins "
                     "below 0), and that the prompt is not duplicated inside both answers; beta 0.1 is TRL's "
                     "default.")


def _loss_failure(series: Series) -> Diagnosis | None:
    loss = series.get("loss", [])
    exploded = [(s, v) for s, v in loss if v > LOSS_EXPLODED]
    if exploded:
        s, v = max(exploded, key=lambda p: p[1])
        return Diagnosis("divergence", [f"loss {fmt(v)} at step {s}: above ln(vocab size) (at most ~12.5), worse "
                                        f"than a uniform guess; last loss {fmt(loss[-1][1])} at step {loss[-1][0]}"],
                         DIVERGE_STEP)
    if len(loss) >= DIVERGE_MIN_POINTS:
        values = [v for _, v in loss]
        w = _window(len(values))
        low_index = min(range(len(values)), key=values.__getitem__)
        end = _mean(values[-w:])
        low = values[low_index]
        rise = end - low
        if low_index < len(values) - w and rise > DIVERGE_REL_RISE * max(abs(low), 1e-3) and rise > DIVERGE_MIN_RISE:
            evidence = [f"loss min {fmt(low)} at step {loss[low_index][0]}, mean of the last {w} logs "
                        f"(steps {loss[-w][0]}-{loss[-1][0]}) is {fmt(end)} (+{rise / max(abs(low), 1e-3):.0%})"]
            grad = series.get("grad_norm", [])
            if grad:
                gs, gv = max(grad, key=lambda p: p[1])
                evidence.append(f"grad_norm max {fmt(gv)} at step {gs}")
            return Diagnosis("divergence", evidence, DIVERGE_STEP)
    if len(loss) >= FLAT_MIN_POINTS:
        first, last, w = _ends(loss)
        change = abs(first - last) / max(abs(first), 1e-8)
        if change < FLAT_REL_CHANGE:
            evidence = [f"{_trend('loss', loss)}: {change:.2%} change"]
            lr = series.get("learning_rate", [])
            if lr:
                evidence.append(f"learning_rate max {fmt(max(v for _, v in lr))}")
            return Diagnosis("no_learning", evidence,
                             "The loss is flat: raise learning_rate (e.g. 10x; typical 1e-5..5e-5 full, 2e-4 "
                             "LoRA), check the schedule does not hold it at 0, and check that labels are not all "
                             "masked (completion-only loss with empty completions) and rows are not truncated away.")
    return None


def curve_failure(series: Series) -> Diagnosis | None:
    """The failure the curves show (kl_blowup, zero_reward, reward_collapse, no_reward_signal, flat_margins,
    divergence, no_learning), or None."""
    if series.get("reward"):
        return _reward_failure(series)  # GRPO's loss is not a learning curve; judge it by reward only
    return _margin_failure(series) or _loss_failure(series)


def learning(series: Series) -> tuple[bool, list[str]]:
    """Whether the run's main curve shows learning (reward or DPO margins rising, else loss falling),
    with the trend as evidence; (False, []) when there are fewer than two points to compare."""
    for name, rising, needed in (("reward", True, REWARD_RISE), ("rewards/margins", True, MARGIN_GROWTH),
                                 ("loss", False, None)):
        points = series.get(name, [])
        if not points:
            continue
        if len(points) < 2:
            return False, []
        first, last, _ = _ends(points)
        if rising:
            learned = last - first >= max(needed, FLAT_REL_CHANGE * abs(first))
        else:
            learned = (first - last) / max(abs(first), 1e-8) >= FLAT_REL_CHANGE
        evidence = [_trend(name, points)]
        if name == "rewards/margins" and series.get("rewards/accuracies"):
            evidence.append(f"rewards/accuracies {fmt(_ends(series['rewards/accuracies'])[1])} at the end")
        return learned, evidence
    return False, []
