"""The experiment statistics as pure functions: a real difference is found, and
A/A experiments (no difference) are called significant about alpha of the time."""

from __future__ import annotations

import math

import numpy as np

from engine.insights.experiment_stats import DEFAULT_ALPHA, baseline_of, compare_arms, uplift

SIMULATED_EXPERIMENTS = 400


def binomial_band(trials: int, p: float, coverage: float) -> tuple[int, int]:
    """The central interval holding ``coverage`` of Binomial(trials, p), exactly."""
    tail = (1 - coverage) / 2
    probabilities = [
        math.comb(trials, k) * p**k * (1 - p) ** (trials - k) for k in range(trials + 1)
    ]
    low, below = 0, probabilities[0]
    while below < tail:
        low += 1
        below += probabilities[low]
    high, above = trials, probabilities[trials]
    while above < tail:
        high -= 1
        above += probabilities[high]
    return low, high


def test_a_real_difference_is_significant_with_an_interval_above_zero() -> None:
    found = uplift(120, 1000, 60, 1000)
    assert found is not None
    assert found.significant
    assert 0 < found.ci_low < found.difference < found.ci_high
    assert abs(found.difference - 0.06) < 1e-12


def test_a_small_sample_is_not_called() -> None:
    found = uplift(3, 20, 1, 20)
    assert found is not None
    assert not found.significant
    assert found.ci_low < 0 < found.ci_high


def test_an_arm_without_any_conversion_still_gets_an_interval() -> None:
    found = uplift(0, 500, 4, 500)
    assert found is not None
    assert found.ci_low < found.difference == -0.008 < found.ci_high


def test_no_exposure_means_no_comparison() -> None:
    assert uplift(0, 0, 5, 100) is None


def test_the_holdout_then_control_is_the_baseline() -> None:
    assert baseline_of({"A": 1, "control": 1, "holdout": 1}) == "holdout"
    assert baseline_of({"B": 1, "control": 1}) == "control"
    assert baseline_of({"B": 1, "A": 1}) == "A"
    baseline, arms = compare_arms({"B": (100, 20), "control": (100, 5)})
    assert baseline == "control"
    assert [arm.variant for arm in arms] == ["control", "B"]
    assert arms[0].uplift is None
    assert arms[1].uplift is not None


def test_a_a_experiments_are_significant_at_about_alpha() -> None:
    """400 experiments whose arms share one true rate: the share called significant
    stays within the 99.9 % binomial band around alpha (a fixed seed, so the test
    is repeatable; the band says the method, not luck, keeps the rate)."""
    rng = np.random.default_rng(20261206)
    called = 0
    for _ in range(SIMULATED_EXPERIMENTS):
        exposed_a, exposed_b = (int(n) for n in rng.integers(400, 3000, size=2))
        rate = float(rng.uniform(0.02, 0.2))
        conversions_a = int(rng.binomial(exposed_a, rate))
        conversions_b = int(rng.binomial(exposed_b, rate))
        found = uplift(conversions_b, exposed_b, conversions_a, exposed_a)
        assert found is not None
        called += found.significant
    low, high = binomial_band(SIMULATED_EXPERIMENTS, DEFAULT_ALPHA, 0.999)
    assert low <= called <= high, f"{called} of {SIMULATED_EXPERIMENTS} called significant"
