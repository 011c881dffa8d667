"""Exact AUC (ties), log-loss, conditional AUC and violation rate against hand-computed values."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from apem.train.metrics import funnel_metrics, log_loss, roc_auc


def pairwise_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Brute force: P(score_pos > score_neg) + P(tie) / 2 over all pairs."""
    pos = scores[labels.bool()][:, None]
    neg = scores[~labels.bool()][None, :]
    wins = (pos > neg).sum() + 0.5 * (pos == neg).sum()
    return float(wins) / (pos.numel() * neg.numel())


@pytest.mark.parametrize(
    ("scores", "labels", "expected"),
    [
        ([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.75),
        ([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1], 0.5),
        ([0.2, 0.5, 0.5, 0.9], [0, 1, 0, 1], 0.875),
        ([0.9, 0.8, 0.1], [0, 0, 1], 0.0),
        # positive 0.3: one tie, one loss; each positive 0.7: one win, one tie
        ([0.3, 0.3, 0.7, 0.7, 0.7], [0, 1, 0, 1, 1], 3.5 / 6),
    ],
)
def test_auc_hand_computed(scores, labels, expected):
    auc = roc_auc(torch.tensor(scores), torch.tensor(labels))
    assert auc.dtype == torch.float64
    assert float(auc) == pytest.approx(expected, abs=1e-12)


def test_auc_single_class_is_nan():
    assert math.isnan(float(roc_auc(torch.tensor([0.1, 0.2]), torch.tensor([1, 1]))))
    assert math.isnan(float(roc_auc(torch.empty(0), torch.empty(0))))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=2, max_size=60).filter(
        lambda rows: 0 < sum(y for _, y in rows) < len(rows)
    )
)
def test_auc_matches_pairwise_count(rows):
    scores = torch.tensor([s / 6 for s, _ in rows], dtype=torch.float32)
    labels = torch.tensor([y for _, y in rows])
    assert float(roc_auc(scores, labels)) == pytest.approx(pairwise_auc(scores, labels), abs=1e-12)


def test_auc_large_random_with_ties_matches_pairwise():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 50, (3000,), generator=generator).float()
    labels = torch.rand(3000, generator=generator) < torch.sigmoid((scores - 25) / 10)
    assert float(roc_auc(scores, labels)) == pytest.approx(pairwise_auc(scores, labels), abs=1e-12)


def test_log_loss_per_column():
    probs = torch.tensor([[0.8, 0.5], [0.25, 0.5]], dtype=torch.float64)
    labels = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    expected = [-(math.log(0.8) + math.log(0.75)) / 2, -math.log(0.5)]
    assert log_loss(probs, labels).tolist() == pytest.approx(expected, abs=1e-12)


def test_funnel_metrics_by_hand():
    # p1, p2 per row; labels o1, o2. Row 3 violates p2 <= p1.
    probs = torch.tensor([[0.9, 0.6], [0.8, 0.2], [0.3, 0.4], [0.1, 0.05]])
    labels = torch.tensor([[1, 1], [1, 0], [0, 0], [0, 0]], dtype=torch.float32)
    metrics = funnel_metrics(probs, labels, ("click", "buy"))
    assert metrics.auc["click"] == pytest.approx(1.0)
    # buy: pos 0.6 vs negs 0.2, 0.4, 0.05 -> 1.0
    assert metrics.auc["buy"] == pytest.approx(1.0)
    # conditional on clicked rows 0, 1: implied p2/p1 = 0.667 (buy) vs 0.25 (no buy)
    assert metrics.conditional_auc == {"buy": pytest.approx(1.0)}
    assert metrics.violation_rate == pytest.approx(0.25)
    assert metrics.mean_auc == pytest.approx(1.0)
    assert set(metrics.to_dict()) == {
        "auc",
        "mean_auc",
        "conditional_auc",
        "logloss",
        "violation_rate",
    }


def test_conditional_auc_ranks_the_implied_conditional_not_p_i():
    # Among clicked rows, p2 ranks row 0 above row 1, but p2/p1 ranks row 1 above row 0.
    probs = torch.tensor([[0.9, 0.3], [0.2, 0.15], [0.1, 0.01]])
    labels = torch.tensor([[1, 0], [1, 1], [0, 0]], dtype=torch.float32)
    metrics = funnel_metrics(probs, labels, ("click", "buy"))
    assert metrics.conditional_auc["buy"] == pytest.approx(1.0)
    assert metrics.auc["buy"] == pytest.approx(0.5)


def test_independent_tasks_have_no_conditional_metrics():
    probs = torch.tensor([[0.2, 0.9], [0.7, 0.1]])
    labels = torch.tensor([[0, 1], [1, 0]], dtype=torch.float32)
    metrics = funnel_metrics(probs, labels, ("a", "b"), sequential=False)
    assert metrics.conditional_auc == {}
    assert metrics.violation_rate is None
    assert metrics.to_dict()["violation_rate"] is None


def test_undefined_auc_is_none_in_json():
    probs = torch.tensor([[0.2, 0.1], [0.7, 0.3]])
    labels = torch.tensor([[0, 0], [1, 0]], dtype=torch.float32)
    metrics = funnel_metrics(probs, labels, ("click", "buy"))
    assert metrics.to_dict()["auc"] == {"click": 1.0, "buy": None}
    assert metrics.mean_auc == 1.0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="do not agree"):
        funnel_metrics(torch.zeros(3, 2), torch.zeros(3, 2), ("a", "b", "c"))


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("distinct", [7, 1000, None])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_auc_matches_sklearn(distinct, dtype, device):
    metrics = pytest.importorskip("sklearn.metrics")
    generator = torch.Generator().manual_seed(distinct or 0)
    labels = torch.rand(20_000, generator=generator) < 0.1
    scores = torch.randn(20_000, generator=generator) + labels.float()
    if distinct is not None:  # heavy ties
        scores = (scores * distinct / 8).round()
    scores = scores.to(dtype)
    expected = metrics.roc_auc_score(labels.numpy(), scores.float().numpy())
    auc = roc_auc(scores.to(device), labels.to(device))
    assert auc.device.type == device
    assert auc.item() == pytest.approx(expected, rel=1e-12)
