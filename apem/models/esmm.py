"""ESMM baseline."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from apem.data.schema import Schema
from apem.models.base import FunnelModel
from apem.nn import Towers, chain_logits
from apem.nn.checks import dropout_rate, layer_sizes


class ESMM(FunnelModel):
    """Entire Space Multi-task Model (Ma et al., SIGIR 2018), generalised to S steps.

    One tower per step on the shared concatenated embeddings: tower 1 predicts step 1, tower i
    (i >= 2) the conditional ``P(step i | step i-1)``; the entire-space ``p_i`` is the product
    ``prod_{j<=i} p_{j|j-1}`` (for two steps: pCTCVR = pCTR * pCVR). The loss is the BCE of every
    entire-space p_i (CTR and CTCVR), so no conditional label is ever needed. Default towers
    360-200-80 (the ESMM paper's 360-200-80-2).
    """

    name = "esmm"
    needs_funnel = True

    def __init__(
        self,
        schema: Schema,
        *,
        embed_dim: int = 18,
        step_weights: Sequence[float] | None = None,
        tower_hidden: Sequence[int] = (360, 200, 80),
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

    def features(self, ids: Tensor, dense: Tensor | None) -> Tensor:
        """Concatenated field embeddings, the towers' input: -> (B, (F + num_dense) * d)."""
        return self.embed(ids, dense).flatten(1)

    def logits(self, ids: Tensor, dense: Tensor | None = None) -> Tensor:
        return chain_logits(self.towers(self.features(ids, dense)))
