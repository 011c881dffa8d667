"""Shared-Bottom baseline."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from apem.data.schema import Schema
from apem.models.base import FunnelModel
from apem.nn import MLP, Towers
from apem.nn.checks import dropout_rate, layer_sizes


class SharedBottom(FunnelModel):
    """A bottom MLP shared by all steps, then one tower per step (Caruana, 1997).

    Default sizes keep Single-Task's depth: a shared 256-128 bottom and a 64-unit tower per step.
    """

    name = "shared_bottom"

    def __init__(
        self,
        schema: Schema,
        *,
        embed_dim: int = 18,
        step_weights: Sequence[float] | None = None,
        bottom_hidden: Sequence[int] = (256, 128),
        tower_hidden: Sequence[int] = (64,),
        dropout: float = 0.0,
    ) -> None:
        super().__init__(
            schema,
            embed_dim=embed_dim,
            step_weights=step_weights,
            bottom_hidden=layer_sizes("bottom_hidden", bottom_hidden, nonempty=True),
            tower_hidden=layer_sizes("tower_hidden", tower_hidden),
            dropout=dropout_rate("dropout", dropout),
        )
        self.bottom = MLP(self.flat_dim, bottom_hidden, dropout)
        self.towers = Towers(self.bottom.out_dim, self.num_steps, tower_hidden, dropout)

    def logits(self, ids: Tensor, dense: Tensor | None = None) -> Tensor:
        return self.towers(self.bottom(self.embed(ids, dense).flatten(1)))
