"""Single-Task baseline."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from apem.data.schema import Schema
from apem.models.base import FunnelModel
from apem.nn import Towers
from apem.nn.checks import dropout_rate, layer_sizes


class SingleTask(FunnelModel):
    """One independent MLP per step on the concatenated field embeddings.

    APEM paper §4.1.2: "a three-layer MLP network with hidden layer size of [256, 128, 64]",
    ReLU. The embedding table is shared by the steps (DESIGN.md §3: every model shares the
    embedding layer); nothing above it is.
    """

    name = "single_task"

    def __init__(
        self,
        schema: Schema,
        *,
        embed_dim: int = 18,
        step_weights: Sequence[float] | None = None,
        tower_hidden: Sequence[int] = (256, 128, 64),
        dropout: float = 0.0,
    ) -> None:
        super().__init__(
            schema,
            embed_dim=embed_dim,
            step_weights=step_weights,
            tower_hidden=layer_sizes("tower_hidden", tower_hidden),
            dropout=dropout_rate("dropout", dropout),
        )
        self.towers = Towers(self.flat_dim, self.num_steps, tower_hidden, dropout)

    def logits(self, ids: Tensor, dense: Tensor | None = None) -> Tensor:
        return self.towers(self.embed(ids, dense).flatten(1))
