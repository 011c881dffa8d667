"""The paired t-test that ``compare`` reports, by scipy."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence


def paired_t_test(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Two-sided paired-samples t-test of ``mean(x - y) = 0`` (``scipy.stats.ttest_rel``).

    Returns:
        ``(t, p)``; both NaN with fewer than 2 pairs or when every difference is 0, and
        ``(±inf, 0.0)`` when the differences are a nonzero constant (scipy's conventions,
        without its warnings).
    """
    if len(x) != len(y):
        raise ValueError(f"paired_t_test: {len(x)} vs {len(y)} samples")
    if len(x) < 2:
        return math.nan, math.nan
    from scipy import stats  # here, not at the top: importing it takes ~0.7 s of every `apem` run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # zero variance: scipy's inf or NaN
        result = stats.ttest_rel(x, y)
    return float(result.statistic), float(result.pvalue)
