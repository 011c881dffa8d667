"""Student's t distribution and the paired t-test, without scipy (a dev-only dependency)."""

from __future__ import annotations

import math
from collections.abc import Sequence

_TINY = 1e-300
_EPS = 1e-15
_MAX_TERMS = 10_000


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of ``I_x(a, b)`` (converges fast for x < (a+1)/(a+b+2)),
    evaluated by the modified Lentz method: ``1 / (1 + d_1 / (1 + d_2 / (1 + ...)))`` with
    ``d_2m+1 = -(a+m)(a+b+m)x / ((a+2m)(a+2m+1))`` and ``d_2m = m(b-m)x / ((a+2m-1)(a+2m))``."""
    f = _TINY
    c = f
    d = 0.0
    for j in range(1, 2 * _MAX_TERMS):
        if j == 1:
            numerator = 1.0
        elif j % 2 == 0:
            m = (j - 2) // 2
            numerator = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        else:
            m = (j - 1) // 2
            numerator = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        d = 1.0 + numerator * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + numerator / c
        c = c if abs(c) > _TINY else _TINY
        f *= c * d
        if abs(c * d - 1.0) < _EPS:
            return f
    raise ArithmeticError(f"incomplete beta: no convergence for a={a}, b={b}, x={x}")


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """``I_x(a, b) = B(x; a, b) / B(a, b)`` for a, b > 0 and 0 <= x <= 1."""
    if not (a > 0 and b > 0):
        raise ValueError(f"incomplete beta needs a, b > 0, got a={a}, b={b}")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"incomplete beta needs 0 <= x <= 1, got {x}")
    if x == 0.0 or x == 1.0:
        return x
    log_front = (
        a * math.log(x)
        + b * math.log1p(-x)
        - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def student_t_sf_two_sided(t: float, df: float) -> float:
    """``P(|T| >= |t|)`` for T ~ Student-t with ``df`` degrees of freedom."""
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0
    return regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t))


def student_t_cdf(t: float, df: float) -> float:
    """``P(T <= t)`` for T ~ Student-t with ``df`` degrees of freedom."""
    if math.isnan(t):
        return math.nan
    tail = 0.5 * student_t_sf_two_sided(t, df)
    return 1.0 - tail if t > 0 else tail


def paired_t_test(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Two-sided paired-samples t-test of ``mean(x - y) = 0``.

    Returns:
        ``(t, p)``; both NaN with fewer than 2 pairs or when every difference is 0, and
        ``(±inf, 0.0)`` when the differences are a nonzero constant (scipy's conventions).
    """
    if len(x) != len(y):
        raise ValueError(f"paired_t_test: {len(x)} vs {len(y)} samples")
    n = len(x)
    if n < 2:
        return math.nan, math.nan
    diffs = [a - b for a, b in zip(x, y, strict=True)]
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    if sd == 0.0:
        if mean == 0.0:
            return math.nan, math.nan
        return math.copysign(math.inf, mean), 0.0
    t = mean / (sd / math.sqrt(n))
    return t, student_t_sf_two_sided(t, n - 1)
