"""Is an experiment arm better than the baseline? Two independent proportions
compared with statsmodels' Agresti-Caffo method.

Agresti-Caffo adds one conversion and one non-conversion to each arm before the
usual normal approximation. Its interval keeps close to the stated coverage at
the small counts and low rates conversions have, where the textbook Wald interval
is too narrow (Fagerland, Lydersen and Laake 2015, the reference statsmodels
cites), and it works when an arm has no conversion at all, where statsmodels'
score interval cannot be inverted. The interval and the test are the same
statistic, so the interval excludes 0 exactly when the test says significant:
the verdict and the chart never disagree.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

from engine.insights.report_model import Uplift, VariantFigures

DEFAULT_ALPHA = 0.05
HOLDOUT = "holdout"
CONTROL = "control"

METHOD = (
    "Difference of conversion rates (arm minus baseline) with the Agresti-Caffo "
    "confidence interval and the two-sided Agresti-Caffo test of no difference "
    "(statsmodels confint_proportions_2indep / test_proportions_2indep, "
    "method='agresti-caffo', compare='diff'); an arm is significant when p < alpha. "
    "Each arm is compared once with the baseline, without correction for several arms."
)
_METHOD_NAME = "agresti-caffo"


def baseline_of(variants: Mapping[str, object]) -> str:
    """The arm the others are compared with: the holdout when the experiment keeps
    one (the message against no message), else ``control``, else the first name."""
    if HOLDOUT in variants:
        return HOLDOUT
    if CONTROL in variants:
        return CONTROL
    return min(variants)


def uplift(
    conversions: int,
    exposed: int,
    baseline_conversions: int,
    baseline_exposed: int,
    *,
    alpha: float = DEFAULT_ALPHA,
) -> Uplift | None:
    """The arm against the baseline; None when an arm was exposed to nobody."""
    if exposed <= 0 or baseline_exposed <= 0:
        return None
    with warnings.catch_warnings():
        # statsmodels also computes ratios it does not return (divisions by zero).
        warnings.simplefilter("ignore", RuntimeWarning)
        return _uplift(conversions, exposed, baseline_conversions, baseline_exposed, alpha)


def _uplift(
    conversions: int, exposed: int, baseline_conversions: int, baseline_exposed: int, alpha: float
) -> Uplift | None:
    # Imported here: statsmodels (and scipy under it) takes seconds to import, and
    # every process and CLI command that merely wires the report would pay for it.
    from statsmodels.stats.proportion import (
        confint_proportions_2indep,
        test_proportions_2indep,
    )

    low, high = confint_proportions_2indep(
        conversions,
        exposed,
        baseline_conversions,
        baseline_exposed,
        method=_METHOD_NAME,
        compare="diff",
        alpha=alpha,
    )
    test = test_proportions_2indep(
        conversions,
        exposed,
        baseline_conversions,
        baseline_exposed,
        method=_METHOD_NAME,
        compare="diff",
        alternative="two-sided",
    )
    p_value = float(test.pvalue)
    if not all(math.isfinite(value) for value in (low, high, p_value)):
        return None
    return Uplift(
        difference=conversions / exposed - baseline_conversions / baseline_exposed,
        # The adjusted interval can poke past what a difference of rates can be.
        ci_low=max(-1.0, float(low)),
        ci_high=min(1.0, float(high)),
        p_value=p_value,
        significant=p_value < alpha,
    )


def compare_arms(
    counts: Mapping[str, tuple[int, int]], *, alpha: float = DEFAULT_ALPHA
) -> tuple[str, tuple[VariantFigures, ...]]:
    """``counts``: arm -> (exposed, conversions). The baseline's name and every arm
    (baseline first, then by name) with its uplift over the baseline."""
    baseline = baseline_of(counts)
    base_exposed, base_conversions = counts[baseline]
    arms = [VariantFigures(baseline, base_exposed, base_conversions, baseline=True)]
    for name in sorted(counts):
        if name == baseline:
            continue
        exposed, conversions = counts[name]
        arms.append(
            VariantFigures(
                name,
                exposed,
                conversions,
                uplift=uplift(conversions, exposed, base_conversions, base_exposed, alpha=alpha),
            )
        )
    return baseline, tuple(arms)
