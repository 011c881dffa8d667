"""The shared losses against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from apem.nn import calibrator_loss, check_labels, dependence_loss, dr_loss, ips_loss, step_bce


def bce(p: float, y: float) -> float:
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_dependence_loss_hand_computed():
    probs = torch.tensor([[0.9, 0.5, 0.1], [0.4, 0.3, 0.3]])
    labels = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    # pair (1,2): gaps (0.4 - 0) and (0.1 - 1); pair (2,3): (0.4 - 1) and (0.0 - 0)
    expected = (0.4**2 + 0.9**2) / 2 + (0.6**2 + 0.0**2) / 2
    assert dependence_loss(probs, labels).item() == pytest.approx(expected, rel=1e-6)


def test_dependence_loss_is_zero_when_the_gaps_match_the_labels():
    labels = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    assert dependence_loss(labels.clone(), labels).item() == 0.0


def test_calibrator_is_a_mean_over_samples_not_a_sum():
    probs = torch.tensor([[0.2, 0.5, 0.1], [0.6, 0.3, 0.4], [0.5, 0.5, 0.9], [0.1, 0.0, 0.0]])
    # step 2 over step 1: 0.3, 0, 0, 0; step 3 over step 2: 0, 0.1, 0.4, 0
    expected = 0.3 / 4 + 0.5 / 4
    assert calibrator_loss(probs).item() == pytest.approx(expected, rel=1e-6)
    assert calibrator_loss(torch.cat([probs, probs])).item() == pytest.approx(expected, rel=1e-6)


def test_step_bce_is_the_mean_per_step():
    probs = [[0.8, 0.3], [0.4, 0.1]]
    labels = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    logits = torch.tensor([[logit(p) for p in row] for row in probs])
    expected = [(bce(0.8, 1) + bce(0.4, 0)) / 2, (bce(0.3, 0) + bce(0.1, 0)) / 2]
    assert step_bce(logits, labels).tolist() == pytest.approx(expected, rel=1e-6)


def test_ips_loss_hand_computed():
    labels = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    conditional = torch.tensor([[logit(0.7)], [logit(0.2)], [logit(0.9)]])
    propensity = torch.tensor([[0.5], [0.25], [0.1]])
    # the third sample never reached step 1: it contributes nothing but counts in the mean
    expected = (bce(0.7, 1) / 0.5 + bce(0.2, 0) / 0.25) / 3
    assert ips_loss(conditional, labels, propensity).item() == pytest.approx(expected, rel=1e-6)


def test_dr_loss_hand_computed_and_detached_where_documented():
    labels = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    conditional = torch.tensor([[logit(0.7)], [logit(0.4)]], requires_grad=True)
    propensity = torch.tensor([[0.5], [0.2]])
    imputed = torch.tensor([[0.3], [0.6]], requires_grad=True)
    regulariser, imputation = dr_loss(conditional, labels, propensity, imputed)
    e = bce(0.7, 1)
    assert regulariser.item() == pytest.approx((0.3 + (e - 0.3) / 0.5 + 0.6) / 2, rel=1e-6)
    assert imputation.item() == pytest.approx((e - 0.3) ** 2 / 0.5 / 2, rel=1e-6)
    # the regulariser does not train the imputation, the imputation loss not the predictor
    assert torch.autograd.grad(regulariser, imputed, retain_graph=True, allow_unused=True) == (
        None,
    )
    assert torch.autograd.grad(imputation, conditional, allow_unused=True) == (None,)


def test_check_labels_names_the_problem():
    logits = torch.zeros(4, 3)
    with pytest.raises(ValueError, match=r"labels must have shape \(4, 3\)"):
        check_labels(torch.zeros(4, 2), logits)
    with pytest.raises(TypeError, match="labels must be a float tensor"):
        check_labels(torch.zeros(4, 3, dtype=torch.long), logits)
