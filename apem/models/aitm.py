"""AITM baseline."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from apem.data.batching import Batch
from apem.data.schema import Schema
from apem.models.base import FunnelModel
from apem.nn import MLP, calibrator_loss
from apem.nn.checks import dropout_rate, layer_sizes, non_negative


class AdaptiveInformationTransfer(nn.Module):
    """AIT: attention over the transferred previous-step information and the current tower.

    ``z_t = sum_u w_u h3(u)``, ``w_u = softmax_u(<h1(u), h2(u)> / sqrt(dim))`` for
    u in {p_{t-1}, q_t}, with bias-free projections h1, h2, h3.

    Shapes: p_prev, q (B, dim) -> (B, dim).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(dim, dim, bias=False)
        self.key = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(dim, dim, bias=False)
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, p_prev: Tensor, q: Tensor) -> Tensor:
        inputs = torch.stack([p_prev, q], dim=1)
        scores = (self.query(inputs) * self.key(inputs)).sum(-1) * self.scale
        weights = torch.softmax(scores, dim=1)
        return (weights.unsqueeze(-1) * self.value(inputs)).sum(dim=1)


class AITM(FunnelModel):
    """Adaptive Information Transfer Multi-task framework (Xi et al., KDD 2021).

    Per step t a tower q_t = MLP_t(concatenated embeddings); z_1 = q_1 and, for t >= 2,
    z_t = AIT(p_{t-1}, q_t) with the transfer p_{t-1} = ReLU(Linear(z_{t-1})) (one per step
    pair) and one AIT module shared by all steps (AITM's code); p_t = sigmoid(Linear_t(z_t)).
    Loss: the entire-space BCEs plus ``calibrator_weight`` times the behavioural expectation
    calibrator ``sum_t mean max(p_t - p_{t-1}, 0)``. Defaults from the AITM paper: towers
    128-64-32 (so AIT works in 32 dimensions), calibrator weight 0.6.
    """

    name = "aitm"
    needs_funnel = True

    def __init__(
        self,
        schema: Schema,
        *,
        embed_dim: int = 18,
        step_weights: Sequence[float] | None = None,
        tower_hidden: Sequence[int] = (128, 64, 32),
        dropout: float = 0.0,
        calibrator_weight: float = 0.6,
    ) -> None:
        super().__init__(
            schema,
            embed_dim=embed_dim,
            step_weights=step_weights,
            tower_hidden=layer_sizes("tower_hidden", tower_hidden, nonempty=True),
            dropout=dropout_rate("dropout", dropout),
            calibrator_weight=non_negative("calibrator_weight", calibrator_weight),
        )
        self.calibrator_weight = float(calibrator_weight)
        self.towers = nn.ModuleList(
            MLP(self.flat_dim, tower_hidden, dropout) for _ in range(self.num_steps)
        )
        dim = self.towers[0].out_dim
        self.transfers = nn.ModuleList(MLP(dim, [dim], dropout) for _ in range(self.num_steps - 1))
        self.ait = AdaptiveInformationTransfer(dim)
        self.heads = nn.ModuleList(nn.Linear(dim, 1) for _ in range(self.num_steps))

    def logits(self, ids: Tensor, dense: Tensor | None = None) -> Tensor:
        x = self.embed(ids, dense).flatten(1)
        z = self.towers[0](x)
        outputs = [self.heads[0](z)]
        for t in range(1, self.num_steps):
            z = self.ait(self.transfers[t - 1](z), self.towers[t](x))
            outputs.append(self.heads[t](z))
        return torch.cat(outputs, dim=1)

    def training_loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        logits = self.logits(batch.ids, batch.dense).float()
        total, parts = self.task_loss(logits, batch.labels)
        parts["calibrator"] = calibrator_loss(torch.sigmoid(logits))
        return total + self.calibrator_weight * parts["calibrator"], parts
