"""Experts and their softmax gate."""

from __future__ import annotations

import torch

from apem.nn import ExpertGate, Experts


def test_experts_stack_their_outputs():
    experts = Experts(6, 3, [8, 4])
    x = torch.randn(5, 6)
    out = experts(x)
    assert out.shape == (5, 3, 4) and experts.out_dim == 4
    assert torch.allclose(out[:, 1], experts[1](x))


def test_gate_is_a_convex_combination_of_the_experts():
    gate = ExpertGate(6, 3)
    x = torch.randn(5, 6)
    experts = torch.randn(5, 3, 4)
    weights = torch.softmax(gate.logits(x), dim=-1)
    expected = (weights.unsqueeze(-1) * experts).sum(dim=1)
    assert torch.allclose(gate(x, experts), expected, atol=1e-6)
    same = torch.randn(5, 1, 4).expand(5, 3, 4)
    assert torch.allclose(gate(x, same), same[:, 0], atol=1e-6)
