"""The t-test machinery against scipy (a dev dependency, used only here)."""

import math

import pytest

from apem.train.stats import (
    paired_t_test,
    regularized_incomplete_beta,
    student_t_cdf,
)

scipy_stats = pytest.importorskip("scipy.stats")
scipy_special = pytest.importorskip("scipy.special")


@pytest.mark.parametrize("a", [0.5, 1.0, 2.5, 10.0, 150.0])
@pytest.mark.parametrize("b", [0.5, 1.0, 3.0, 40.0])
@pytest.mark.parametrize("x", [1e-6, 0.01, 0.3, 0.5, 0.77, 0.999])
def test_incomplete_beta_matches_scipy(a, b, x):
    expected = scipy_special.betainc(a, b, x)
    assert regularized_incomplete_beta(a, b, x) == pytest.approx(expected, rel=1e-10, abs=1e-14)


def test_incomplete_beta_edges_and_bad_arguments():
    assert regularized_incomplete_beta(2.0, 3.0, 0.0) == 0.0
    assert regularized_incomplete_beta(2.0, 3.0, 1.0) == 1.0
    with pytest.raises(ValueError, match="a, b > 0"):
        regularized_incomplete_beta(0.0, 1.0, 0.5)
    with pytest.raises(ValueError, match="0 <= x <= 1"):
        regularized_incomplete_beta(1.0, 1.0, 1.5)


@pytest.mark.parametrize("df", [1, 2, 4, 9, 30, 1000])
@pytest.mark.parametrize("t", [-40.0, -3.2, -1.0, -0.1, 0.0, 0.5, 2.0, 7.5])
def test_student_t_cdf_matches_scipy(t, df):
    assert student_t_cdf(t, df) == pytest.approx(scipy_stats.t.cdf(t, df), rel=1e-9, abs=1e-15)


def test_student_t_cdf_infinities():
    assert student_t_cdf(math.inf, 3) == 1.0
    assert student_t_cdf(-math.inf, 3) == 0.0
    assert math.isnan(student_t_cdf(math.nan, 3))


@pytest.mark.parametrize(
    ("x", "y"),
    [
        ([0.71, 0.72, 0.705], [0.70, 0.715, 0.70]),
        ([0.61, 0.60, 0.62, 0.64, 0.59], [0.60, 0.61, 0.60, 0.62, 0.60]),
        ([1.0, 2.0], [0.5, 2.25]),
    ],
)
def test_paired_t_test_matches_scipy(x, y):
    expected = scipy_stats.ttest_rel(x, y)
    t, p = paired_t_test(x, y)
    assert t == pytest.approx(expected.statistic, rel=1e-10)
    assert p == pytest.approx(expected.pvalue, rel=1e-9)


def test_paired_t_test_degenerate_cases():
    assert all(math.isnan(v) for v in paired_t_test([0.7], [0.6]))
    assert all(math.isnan(v) for v in paired_t_test([0.7, 0.8], [0.7, 0.8]))
    assert paired_t_test([1.5, 2.5], [1.0, 2.0]) == (math.inf, 0.0)
    with pytest.raises(ValueError, match="2 vs 3"):
        paired_t_test([1.0, 2.0], [1.0, 2.0, 3.0])
