"""Mixture-of-experts parts shared by MMoE and PLE."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from apem.nn.checks import positive_int
from apem.nn.mlp import MLP


class Experts(nn.ModuleList):
    """``num_experts`` MLPs on one input: (B, in_dim) -> (B, num_experts, out_dim)."""

    def __init__(
        self,
        in_dim: int,
        num_experts: int,
        hidden: Sequence[int],
        dropout: float = 0.0,
        activation: str = "relu",
    ) -> None:
        count = positive_int("num_experts", num_experts)
        super().__init__(MLP(in_dim, hidden, dropout, activation) for _ in range(count))
        self.out_dim = self[0].out_dim

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([expert(x) for expert in self], dim=1)


class ExpertGate(nn.Module):
    """Softmax gate over experts: ``sum_e softmax(W x)_e * experts_e``.

    Shapes: gate input (B, in_dim), expert outputs (B, num_experts, h) -> (B, h).
    """

    def __init__(self, in_dim: int, num_experts: int) -> None:
        super().__init__()
        self.logits = nn.Linear(
            positive_int("in_dim", in_dim), positive_int("num_experts", num_experts)
        )

    def forward(self, x: Tensor, experts: Tensor) -> Tensor:
        weights = torch.softmax(self.logits(x), dim=-1)
        return torch.einsum("be,beh->bh", weights, experts)
