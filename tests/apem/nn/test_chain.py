"""ESMM's product rule in log space."""

from __future__ import annotations

import torch

from apem.nn import chain_logits


def test_chain_logits_are_the_logits_of_the_product():
    conditional = torch.randn(16, 4, dtype=torch.float64) * 3
    expected = torch.sigmoid(conditional).cumprod(dim=1)
    assert torch.allclose(torch.sigmoid(chain_logits(conditional)), expected.float(), atol=1e-6)


def test_chain_logits_stay_finite_with_finite_gradients_when_saturated():
    conditional = torch.tensor([[60.0, 60.0], [-60.0, 60.0], [60.0, -60.0]], requires_grad=True)
    logits = chain_logits(conditional)
    labels = torch.tensor([[0.0, 0.0], [1.0, 1.0], [1.0, 0.0]])
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
    loss.backward()
    assert torch.isfinite(logits).all()
    assert torch.isfinite(conditional.grad).all()
    assert (torch.sigmoid(logits[:, 1]) <= torch.sigmoid(logits[:, 0])).all()
