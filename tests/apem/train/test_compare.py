"""The comparison summary (mean ± std, gain over Single-Task, paired t-test) and its table."""

import math

import pytest

from apem.train.compare import Comparison
from apem.train.metrics import FunnelMetrics
from apem.train.report import comparison_table, format_table
from apem.train.stats import paired_t_test
from apem.train.trainer import FitResult

STEPS = ("click", "buy")


def result(click: float, buy: float, speed: float = 100.0) -> FitResult:
    metrics = FunnelMetrics(
        steps=STEPS,
        auc={"click": click, "buy": buy},
        conditional_auc={"buy": 0.5},
        logloss={"click": 0.3, "buy": 0.1},
        violation_rate=0.25,
    )
    return FitResult(1.0, metrics, metrics, [], speed, 10, False)


@pytest.fixture
def comparison():
    runs = {
        "single_task": [result(0.60, 0.50), result(0.62, 0.52), result(0.61, 0.54)],
        "esmm": [result(0.63, 0.60), result(0.64, 0.61), result(0.62, 0.59)],
        "apem": [result(0.66, 0.58), result(0.65, 0.60), result(0.67, 0.59, speed=400.0)],
    }
    return Comparison(steps=STEPS, seeds=(0, 1, 2), runs=runs)


def test_summary_statistics(comparison):
    summary = comparison.summary("apem")
    assert summary.auc_mean["click"] == pytest.approx(0.66)
    assert summary.auc_std["click"] == pytest.approx(0.01)
    assert summary.gain_pct["click"] == pytest.approx(100 * (0.66 - 0.61) / 0.61)
    assert summary.gain_pct["buy"] == pytest.approx(100 * (0.59 - 0.52) / 0.52)
    assert summary.samples_per_s_mean == pytest.approx(200.0)
    assert summary.violation_rate_mean == pytest.approx(0.25)


def test_p_value_is_against_the_best_other_model_of_each_step(comparison):
    apem, esmm = comparison.summary("apem"), comparison.summary("esmm")
    assert apem.best_other == {"click": "esmm", "buy": "esmm"}
    assert esmm.best_other == {"click": "apem", "buy": "apem"}
    expected = paired_t_test([0.66, 0.65, 0.67], [0.63, 0.64, 0.62])[1]
    assert apem.p_value["click"] == pytest.approx(expected)


def test_one_seed_has_no_spread_and_no_p_value():
    comparison = Comparison(STEPS, (0,), {"a": [result(0.6, 0.5)], "b": [result(0.7, 0.6)]})
    summary = comparison.summary("a")
    assert summary.auc_std == {"click": 0.0, "buy": 0.0}
    assert math.isnan(summary.p_value["click"])
    assert summary.gain_pct is None  # no Single-Task run to measure against
    assert comparison.to_dict()["models"][0]["p_value"] == {"click": None, "buy": None}


def test_json_has_per_seed_lists(comparison):
    entries = {entry["model"]: entry for entry in comparison.to_dict()["models"]}
    assert entries["esmm"]["auc"] == {"click": [0.63, 0.64, 0.62], "buy": [0.60, 0.61, 0.59]}
    assert entries["esmm"]["conditional_auc"] == {"buy": [0.5, 0.5, 0.5]}
    assert entries["apem"]["samples_per_s"] == [100.0, 100.0, 400.0]


def test_comparison_table(comparison):
    lines = comparison_table(comparison).splitlines()
    assert lines[0].split()[:4] == ["model", "click", "AUC", "buy"]
    apem = next(line for line in lines if line.startswith("apem"))
    assert "0.6600 ± 0.0100" in apem and "+8.20%" in apem and "200" in apem
    single = next(line for line in lines if line.startswith("single_task"))
    assert "+0.00%" in single


def test_format_table_aligns_columns():
    assert format_table(["name", "value"], [["a", "1.5"], ["long name", "10"]]) == (
        "name       value\na            1.5\nlong name     10"
    )


def test_a_comparison_rebuilt_from_its_json_summarises_the_same(comparison):
    payload = comparison.to_dict()
    rebuilt = Comparison.from_dict(payload)
    assert rebuilt.steps == STEPS and rebuilt.seeds == (0, 1, 2)
    assert list(rebuilt.runs) == ["single_task", "esmm", "apem"]
    assert rebuilt.to_dict() == payload
    # More models join the rebuilt runs, and every summary is recomputed over all of them.
    rebuilt.runs["ple"] = [result(0.70, 0.40), result(0.71, 0.41), result(0.69, 0.42)]
    assert rebuilt.summary("apem").best_other["click"] == "ple"
