"""Calibration of the findings' statistics on simulated studies, not examples.

A simulated study: arms (training sets) x seeds x test images; an image's score is its own
difficulty, plus an arm x image interaction, plus the seed's effect on the arm, plus noise,
so both sources of variation are there and the arms share their test images. The metric of
a cell is the mean over images (as count MAE or accuracy are); resampled the way the engine
resamples a ratio metric (weights @ per-image sums / weights @ image counts). With no true
effect, a claim reaches a verdict in at most 5% of studies (and any of five claims, with
Holm, in at most 5%); with a planted effect, a study of the seeds the engine says are needed
finds it about as often as the engine's power says.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
from scipy import stats as scipy_stats

from bgshift.findings import resample, stats

STUDIES = 500
IMAGES = 120
REPLICATES = 2000
ALPHA = 0.05
# (image difficulty, arm x image, seed x arm, per-image noise) standard deviations: one regime
# where the test images dominate the variance, one where the seeds do, one in between
REGIMES = {"images": (0.3, 0.08, 0.005, 0.1), "seeds": (0.3, 0.01, 0.03, 0.05), "mixed": (0.3, 0.04, 0.015, 0.1)}


def simulate(rng, seeds: int, arms: int, sd: tuple, effects: np.ndarray, studies: int = STUDIES) -> np.ndarray:
    """Per-image scores (studies, images, seeds, arms); arm k's mean is shifted by effects[k]."""
    difficulty, interaction, seed_sd, noise = sd
    scores = rng.normal(0, difficulty, (studies, IMAGES, 1, 1)) + rng.normal(0, interaction, (studies, IMAGES, 1, arms))
    scores = scores + rng.normal(0, seed_sd, (studies, 1, seeds, arms)) + rng.normal(0, noise, (studies, IMAGES, seeds, arms))
    return scores + effects


@functools.cache
def _weights() -> np.ndarray:
    """The engine's bootstrap weights, drawn once (drawing them is most of a study's time): the
    studies' data are independent, so the rates below are the engine's for one fixed draw."""
    weights = resample.bootstrap_weights(IMAGES, REPLICATES, 0)
    return weights / weights.sum(1, keepdims=True)


def claim_estimates(scores: np.ndarray, fixed: bool = False) -> stats.Estimate:
    """The engine's estimates of the claims 'arm k - arm 0' (k = 1..) of every simulated study at
    once: fields (studies, claims). A cell is the mean over images (a ratio metric with one image
    a unit), so the seed mean of a resampled effect is the weights times the seed-mean per-image effect."""
    per_image = scores[..., 1:] - scores[..., :1]  # (studies, images, seeds, claims)
    per_seed = per_image.mean(1)  # every image once
    resampled = np.einsum("bu,suc->scb", _weights(), per_image.mean(2))[..., None]  # (studies, claims, B, 1)
    return stats.estimate(np.moveaxis(per_seed, 1, 2), resampled, IMAGES, fixed=fixed)


def verdict_rate(seeds: int, sd: tuple, claims: int, effect: float = 0.0, seed: int = 0) -> tuple[float, float]:
    """Share of studies where the first claim reaches a verdict, and where any claim does (Holm)."""
    rng = np.random.default_rng([seed, seeds, claims])
    effects = np.zeros(claims + 1)
    effects[1] = effect
    estimate = claim_estimates(simulate(rng, seeds, claims + 1, sd, effects))
    adjusted, _ = stats.holm(stats.p_value(estimate, None), ALPHA)  # one family per study
    verdict = adjusted < ALPHA  # holds or reversed (stats.verdict's rule for two seeds and more)
    return float(np.mean(verdict[:, 0])), float(np.mean(verdict.any(1)))


def above_nominal(rate: float, nominal: float = ALPHA) -> float:
    """p-value of 'the true rate exceeds the nominal one' given the simulated rate."""
    return scipy_stats.binomtest(round(rate * STUDIES), STUDIES, nominal, alternative="greater").pvalue


@pytest.mark.parametrize("regime", sorted(REGIMES))
@pytest.mark.parametrize("seeds", [3, 5, 10])
def test_no_effect_reaches_a_verdict_at_most_at_the_nominal_rate(seeds, regime):
    single, _ = verdict_rate(seeds, REGIMES[regime], claims=1)
    assert above_nominal(single) > 0.01, f"{single:.3f} of null claims reached a verdict ({seeds} seeds, {regime})"


@pytest.mark.parametrize("regime", sorted(REGIMES))
@pytest.mark.parametrize("seeds", [3, 5, 10])
def test_family_wise_rate_with_holm(seeds, regime):
    _, family = verdict_rate(seeds, REGIMES[regime], claims=5)
    assert above_nominal(family) > 0.01, f"{family:.3f} of studies with five null claims had a verdict ({seeds} seeds, {regime})"


def test_without_the_image_level_the_interval_under_covers():
    """The reason for the inner level: ignoring the shared test images (seeds only) is anti-
    conservative where the images dominate, so the calibration tests above would fail."""
    estimate = claim_estimates(simulate(np.random.default_rng(7), 5, 2, REGIMES["images"], np.zeros(2)))
    seeds_only = stats.Estimate(estimate.effect, estimate.seed_var, 0.0, 5, IMAGES)
    assert np.mean(stats.p_value(seeds_only, None) < ALPHA) > 0.15


@pytest.mark.parametrize("regime, effect", [("mixed", 0.02), ("seeds", 0.04), ("images", 0.04)])
def test_a_planted_effect_is_found_as_often_as_the_seeds_needed_figure_predicts(regime, effect):
    rng = np.random.default_rng(11)
    sd = REGIMES[regime]
    pilot = claim_estimates(simulate(rng, 200, 2, sd, np.array([0.0, effect]), studies=1))  # the spreads, well measured
    truth = stats.Estimate(effect, float(pilot.seed_var[0, 0]), float(pilot.image_var[0, 0]), 200, IMAGES)
    needed = stats.seeds_needed(truth, ALPHA, None, 0.8)
    assert needed is not None and 3 <= needed <= 40, needed
    found, _ = verdict_rate(needed, sd, claims=1, effect=effect, seed=3)
    predicted = stats.power(truth, needed, ALPHA, None)
    assert predicted >= 0.8 and abs(found - predicted) < 0.1, (needed, found, predicted)


def test_equivalence_claims_are_calibrated_at_the_margin():
    """An effect exactly at the margin is 'equivalent' in at most 5% of studies (TOST)."""
    margin = 0.03
    estimate = claim_estimates(simulate(np.random.default_rng(5), 5, 2, REGIMES["mixed"], np.array([0.0, margin])))
    equivalent = stats.p_value(estimate, margin) < ALPHA
    assert above_nominal(float(np.mean(equivalent))) > 0.01, np.mean(equivalent)


def test_holm_is_statsmodels_holm():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(2)
    p_values = rng.uniform(0, 0.1, (20, 6)) ** 2
    adjusted, levels = stats.holm(p_values, ALPHA)
    for row, adjusted_row, level_row in zip(p_values, adjusted, levels):
        assert adjusted_row == pytest.approx(multipletests(row, alpha=ALPHA, method="holm")[1], abs=1e-15)
        assert sorted(level_row) == pytest.approx(ALPHA / np.arange(6, 0, -1))
    estimates = [stats.Estimate(0.1, 0.01, 0.001, 3, 50), stats.Estimate(-0.1, 0.0001, 0.0001, 3, 50)]
    assert [stats.verdict(e, 0.001, ALPHA, "greater", None) for e in estimates] == ["holds", "reversed"]
    assert stats.verdict(estimates[0], 0.2, ALPHA, "greater", None) == "inconclusive"


def test_more_test_images_not_seeds_when_the_images_dominate():
    estimate = stats.Estimate(effect=0.01, seed_var=1e-6, image_var=0.01 ** 2, seeds=3, units=100)
    assert stats.seeds_needed(estimate, ALPHA, None, 0.8) is None
    clear = stats.Estimate(effect=0.05, seed_var=0.02 ** 2, image_var=1e-6, seeds=3, units=100)
    assert 2 <= stats.seeds_needed(clear, ALPHA, None, 0.8) <= 8


def _fixed_models(effect: float, seed: int) -> stats.Estimate:
    """Studies of two given models (evaluate-only: one run each, nothing trained): what varies is
    the sample of test images only, so the seed part of the simulation is off."""
    difficulty, interaction, _, noise = REGIMES["images"]
    scores = simulate(np.random.default_rng(seed), 1, 2, (difficulty, interaction, 0.0, noise), np.array([0.0, effect]))
    return claim_estimates(scores, fixed=True)


def test_claims_between_models_evaluated_as_they_are_are_calibrated_on_their_test_images():
    """One run per model, no seed level: with no true difference a verdict comes at most at the
    nominal rate, and the interval covers a planted difference about 95% of the time."""
    null = _fixed_models(0.0, 21)
    verdicts = np.array([stats.verdict(stats.Estimate(e, np.nan, v, 1, IMAGES, fixed=True), p, ALPHA, "greater", None) != "inconclusive"
                         for e, v, p in zip(null.effect[:, 0], null.image_var[:, 0], stats.p_value(null, None)[:, 0])])
    assert above_nominal(float(verdicts.mean())) > 0.01, verdicts.mean()
    assert verdicts.mean() > 0.01  # not dead: the test images alone do reach verdicts
    planted = _fixed_models(0.03, 22)
    low, high = planted.effect - 1.96 * planted.se(), planted.effect + 1.96 * planted.se()
    covered = float(np.mean((low <= 0.03) & (0.03 <= high)))
    assert 0.92 <= covered <= 0.98, covered
    assert np.all(np.isinf(planted.df()))  # no seeds' variance to estimate: a normal interval
    assert stats.verdict(stats.Estimate(0.03, np.nan, 1e-6, 1, IMAGES), 0.001, ALPHA, "greater", None) == "inconclusive"  # trained, one seed
