"""The statistics of a claim: a two-level interval (seeds, then test images), Holm's correction
across a findings run, the probability of improvement, and the seeds a claim would need.

A claim's effect per seed s is a contrast of cells all scored on the same test images, so its
mean over seeds varies for two reasons: training (the seeds differ) and the sample of test
images (shared by every seed and arm, so it does not average away over seeds). Its variance
is the sum of the seeds' part, var_s / n, and the images' part, the variance over bootstrap
resamples of the test images (the same resample for every seed and arm) of the mean effect.
The interval is Student's t with Welch-Satterthwaite degrees of freedom (made conservative
where the seeds dominate, see Estimate.df); a percentile bootstrap over 3 seeds would have
10 distinct outer resamples and under-cover. Coverage is
checked on simulated studies at 3, 5 and 10 seeds (tests/test_findings_calibration.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

MAX_SEEDS = 1000  # seeds-needed figures above this are reported as "more test images"
SEED_VARIANCE_BOUND = 0.05  # the degrees of freedom come from the seeds' variance at its upper 95% bound


@dataclass
class Estimate:
    """One claim's effect and the parts of its variance (fields may be arrays: many claims at once)."""

    effect: float
    seed_var: float  # variance of the per-seed effects (nan for one seed)
    image_var: float  # variance of the seed-mean effect over test-image resamples
    seeds: int
    units: int  # test images resampled
    fixed: bool = False  # models evaluated as they are: no seed level, the test images are all that varies

    def _seed_part(self, seeds: int | None) -> np.ndarray:
        return np.where(np.isnan(self.seed_var), 0.0, self.seed_var) / (seeds or self.seeds)

    def se(self, seeds: int | None = None):
        return np.sqrt(self._seed_part(seeds) + self.image_var)

    def df(self, seeds: int | None = None):
        """Welch-Satterthwaite degrees of freedom, with the seeds' part at the upper 95% bound of
        its chi-square interval. The plain plug-in rejected true nulls in 7.7% (5% level) and 3.7%
        (1% level) of simulated 3-seed studies where seeds dominate: a low variance estimate both
        shrinks the interval and inflates the degrees of freedom. With the bound, the degrees of
        freedom fall to n - 1 where the seeds dominate and grow only where the images do
        (docs/findings.md, "Calibration")."""
        n = seeds or self.seeds
        if n < 2:
            return np.full(np.shape(self.effect), np.inf) if np.ndim(self.effect) else float("inf")
        upper = self._seed_part(n) * (n - 1) / stats.chi2.ppf(SEED_VARIANCE_BOUND, n - 1)
        denominator = upper ** 2 / (n - 1) + np.asarray(self.image_var) ** 2 / np.maximum(np.asarray(self.units) - 1, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(denominator > 0, (upper + self.image_var) ** 2 / denominator, np.inf)

    def interval(self, level: float, seeds: int | None = None) -> tuple[float, float]:
        """Two-sided interval at confidence 1 - level."""
        half = stats.t.ppf(1 - level / 2, self.df(seeds)) * self.se(seeds)
        return float(self.effect - half), float(self.effect + half)


def estimate(per_seed: np.ndarray, replicates: np.ndarray, units: int, fixed: bool = False) -> Estimate:
    """per_seed: (..., n) effects on the test set as it is; replicates: (..., B, n) under resampled
    images; `fixed`: the models are given (evaluate-only), so one seed is the whole study."""
    n = np.shape(per_seed)[-1]
    seed_var = np.var(per_seed, axis=-1, ddof=1) if n > 1 else np.full(np.shape(per_seed)[:-1], np.nan)
    image_var = np.var(np.mean(replicates, axis=-1), axis=-1, ddof=1) if np.shape(replicates)[-2] > 1 else 0.0
    return Estimate(np.mean(per_seed, axis=-1), seed_var, image_var, n, units, fixed)


def p_value(est: Estimate, margin: float | None):
    """Two-sided p of 'no effect', or for an equivalence claim TOST's p of 'an effect beyond the margin'."""
    se, df = est.se(), est.df()
    with np.errstate(divide="ignore", invalid="ignore"):
        if margin is None:
            p = 2 * stats.t.sf(np.abs(est.effect) / se, df)
            degenerate = np.where(np.asarray(est.effect) != 0, 0.0, 1.0)
        else:
            p = np.maximum(stats.t.sf((est.effect + margin) / se, df), stats.t.cdf((est.effect - margin) / se, df))
            degenerate = np.where(np.abs(est.effect) < margin, 0.0, 1.0)
    p = np.where(se > 0, p, degenerate)
    return float(p) if p.ndim == 0 else p


def holm(p_values, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Holm-Bonferroni over the last axis (one family of claims per row): adjusted p-values, and
    each claim's own step level alpha / (m - rank). statsmodels' multipletests gives the same
    adjusted p-values (tests/test_findings_calibration.py checks it) but one family per call,
    each running gc.collect() (64 ms here), which made 500 simulated studies take half a minute."""
    p = np.asarray(p_values, dtype=float)
    m = p.shape[-1]
    order = np.argsort(p, axis=-1, kind="stable")
    ranks = np.argsort(order, axis=-1, kind="stable")
    steps = m - np.arange(m)  # m, m - 1, ..., 1
    stepped = np.maximum.accumulate(np.take_along_axis(p, order, axis=-1) * steps, axis=-1)
    adjusted = np.take_along_axis(np.minimum(stepped, 1.0), ranks, axis=-1)
    return adjusted, alpha / (m - ranks)


def verdict(est: Estimate, adjusted_p: float, alpha: float, expect: str, margin: float | None) -> str:
    """holds / reversed / equivalent / inconclusive at the family-wise level alpha."""
    if (est.seeds < 2 and not est.fixed) or adjusted_p >= alpha:
        return "inconclusive"
    if margin is not None:
        return "equivalent"
    positive = est.effect > 0
    return "holds" if positive == (expect == "greater") else "reversed"


def probability_of_improvement(plus: np.ndarray, minus: np.ndarray) -> float:
    """P(plus > minus) over all pairs of seeds, ties counting half (rliable's probability of
    improvement for one task): how often a run of one arm beats a run of the other."""
    diff = np.asarray(plus)[:, None] - np.asarray(minus)[None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def power(est: Estimate, seeds: int, level: float, margin: float | None, effect: float | None = None) -> float:
    """Chance that a study of `seeds` seeds with this spread reaches a verdict at `level`,
    if the true effect is `effect` (default: the observed one)."""
    effect = est.effect if effect is None else effect
    se, df = float(est.se(seeds)), float(est.df(seeds))
    if seeds < 2 or se == 0:
        return float("nan")
    if margin is None:
        critical = stats.t.ppf(1 - level / 2, df)
        return float(stats.t.sf(critical - abs(effect) / se, df))
    critical = stats.t.ppf(1 - level, df)  # both one-sided tests of TOST
    return float(max(0.0, stats.t.cdf((margin - abs(effect)) / se - critical, df) - stats.t.sf((margin + abs(effect)) / se - critical, df)))


def seeds_needed(est: Estimate, level: float, margin: float | None, target: float) -> int | None:
    """The fewest seeds at which a verdict would come with probability `target`, if the true
    effect and spreads are the observed ones; None when the test images' part of the variance
    alone prevents it (more test images, not more seeds, would settle the claim)."""
    if np.isnan(est.seed_var) or est.effect == 0 or power(est, MAX_SEEDS, level, margin) < target:
        return None
    low, high = 1, 2  # power grows with the seeds: double, then halve the bracket
    while power(est, high, level, margin) < target:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if power(est, middle, level, margin) < target else (low, middle)
    return high
