"""MMoE baseline."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from apem.data.schema import Schema
from apem.models.base import FunnelModel
from apem.nn import ExpertGate, Experts, Towers
from apem.nn.checks import dropout_rate, layer_sizes, positive_int


class MMoE(FunnelModel):
    """Multi-gate Mixture-of-Experts (Ma et al., KDD 2018).

    Shared experts read the concatenated embeddings; each step has its own softmax gate over
    the experts (gate input: the same concatenated embeddings) and its own tower. Defaults:
    8 experts (the paper's synthetic-data setting), each a 256-128 MLP like Shared-Bottom's
    bottom, 64-unit towers.
    """

    name = "mmoe"

    def __init__(
        self,
        schema: Schema,
        *,
        embed_dim: int = 18,
        step_weights: Sequence[float] | None = None,
        num_experts: int = 8,
        expert_hidden: Sequence[int] = (256, 128),
        tower_hidden: Sequence[int] = (64,),
        dropout: float = 0.0,
    ) -> None:
        super().__init__(
            schema,
            embed_dim=embed_dim,
            step_weights=step_weights,
            num_experts=positive_int("num_experts", num_experts),
            expert_hidden=layer_sizes("expert_hidden", expert_hidden, nonempty=True),
            tower_hidden=layer_sizes("tower_hidden", tower_hidden),
            dropout=dropout_rate("dropout", dropout),
        )
        self.experts = Experts(self.flat_dim, num_experts, expert_hidden, dropout)
        self.gates = nn.ModuleList(
            ExpertGate(self.flat_dim, num_experts) for _ in range(self.num_steps)
        )
        self.towers = Towers(self.experts.out_dim, self.num_steps, tower_hidden, dropout)

    def logits(self, ids: Tensor, dense: Tensor | None = None) -> Tensor:
        x = self.embed(ids, dense).flatten(1)
        experts = self.experts(x)
        return self.towers(torch.stack([gate(x, experts) for gate in self.gates], dim=1))
