"""The paired t-test: scipy's numbers, our conventions for degenerate inputs."""

import math

import pytest

from apem.train.stats import paired_t_test


def test_paired_t_test_known_values():
    # one degree of freedom: Cauchy, P(|T| >= 1) = 1/2
    assert paired_t_test([1.0, 0.0], [0.0, 0.0]) == pytest.approx((1.0, 0.5))
    # differences 3, 1, 2: t = 2 / (1 / sqrt 3); two degrees: P(|T| >= t) = 1 - t / sqrt(2 + t²)
    t = 2 * math.sqrt(3)
    expected = (t, 1 - t / math.sqrt(2 + t * t))
    assert paired_t_test([4.0, 1.5, 2.0], [1.0, 0.5, 0.0]) == pytest.approx(expected, rel=1e-12)


def test_paired_t_test_degenerate_cases():
    assert all(math.isnan(v) for v in paired_t_test([0.7], [0.6]))
    assert all(math.isnan(v) for v in paired_t_test([0.7, 0.8], [0.7, 0.8]))
    assert paired_t_test([1.5, 2.5], [1.0, 2.0]) == (math.inf, 0.0)
    with pytest.raises(ValueError, match="2 vs 3"):
        paired_t_test([1.0, 2.0], [1.0, 2.0, 3.0])
