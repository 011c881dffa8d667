"""ESCM2 baselines: ESMM with a counterfactual regulariser (IPS or DR)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor

from apem.data.batching import Batch
from apem.data.schema import Schema
from apem.models.esmm import ESMM
from apem.nn import Towers, chain_logits, dr_loss, ips_loss
from apem.nn.checks import non_negative


def _propensity_bounds(value: object) -> list[float]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"propensity_clip must be a pair (low, high), got {value!r}")
    low, high = (non_negative(f"propensity_clip[{i}]", v) for i, v in enumerate(value))
    if not 0 < low <= high <= 1:
        raise ValueError(f"propensity_clip must satisfy 0 < low <= high <= 1, got {value!r}")
    return [low, high]


class ESCM2(ESMM):
    """Entire Space Counterfactual Multi-task Model (Wang et al., SIGIR 2022), S steps.

    ESMM's structure and entire-space losses, plus ``regularizer_weight`` times a counterfactual
    regulariser on every conditional tower i >= 2, computed over the whole batch with the
    samples that reached step i-1 reweighted by the inverse propensity. The propensity of a
    sample is the model's own entire-space ``p_{i-1}``, detached (the regulariser trains the
    conditional tower only) and clipped to ``propensity_clip`` (default [0.01, 1]: weights at
    most 100). Default regulariser weight 0.1 (our choice; the paper tunes it per dataset).
    """

    def __init__(
        self,
        schema: Schema,
        *,
        embed_dim: int = 18,
        step_weights: Sequence[float] | None = None,
        tower_hidden: Sequence[int] = (360, 200, 80),
        dropout: float = 0.0,
        regularizer_weight: float = 0.1,
        propensity_clip: Sequence[float] = (0.01, 1.0),
    ) -> None:
        super().__init__(
            schema,
            embed_dim=embed_dim,
            step_weights=step_weights,
            tower_hidden=tower_hidden,
            dropout=dropout,
        )
        self.regularizer_weight = non_negative("regularizer_weight", regularizer_weight)
        self.propensity_clip = _propensity_bounds(propensity_clip)
        self.config.update(
            regularizer_weight=self.regularizer_weight, propensity_clip=self.propensity_clip
        )

    def propensity(self, logits: Tensor) -> Tensor:
        """Detached, clipped ``p_{i-1}`` for the conditional steps: logits (B, S) -> (B, S-1)."""
        low, high = self.propensity_clip
        return torch.sigmoid(logits[:, :-1].detach()).clamp(low, high)

    @abstractmethod
    def counterfactual(
        self, features: Tensor, conditional_logits: Tensor, labels: Tensor, propensity: Tensor
    ) -> dict[str, Tensor]:
        """The regulariser's named terms. features (B, flat), conditional logits (B, S-1) of
        steps 2..S, labels (B, S), propensity (B, S-1)."""

    def training_loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        features = self.features(batch.ids, batch.dense)
        conditional = self.towers(features).float()
        logits = chain_logits(conditional)
        total, parts = self.task_loss(logits, batch.labels)
        terms = self.counterfactual(
            features, conditional[:, 1:], batch.labels, self.propensity(logits)
        )
        parts.update(terms)
        return total + self.regularizer_weight * sum(terms.values()), parts


class ESCM2IPS(ESCM2):
    """ESCM2 with the inverse-propensity-score regulariser (``apem.nn.ips_loss``)."""

    name = "escm2_ips"

    def counterfactual(
        self, features: Tensor, conditional_logits: Tensor, labels: Tensor, propensity: Tensor
    ) -> dict[str, Tensor]:
        return {"counterfactual": ips_loss(conditional_logits, labels, propensity)}


class ESCM2DR(ESCM2):
    """ESCM2 with the doubly robust regulariser (``apem.nn.dr_loss``).

    An imputation tower per conditional step (same size as the conditional towers, on the same
    features) predicts the conditional BCE of every sample; it is trained by the imputation
    loss, which is weighted by ``regularizer_weight`` like the regulariser.
    """

    name = "escm2_dr"

    def __init__(self, schema: Schema, **hparams: object) -> None:
        super().__init__(schema, **hparams)
        self.imputation = Towers(
            self.flat_dim,
            self.num_steps - 1,
            self.config["tower_hidden"],
            self.config["dropout"],
        )

    def counterfactual(
        self, features: Tensor, conditional_logits: Tensor, labels: Tensor, propensity: Tensor
    ) -> dict[str, Tensor]:
        imputed = self.imputation(features).float()
        regulariser, imputation = dr_loss(conditional_logits, labels, propensity, imputed)
        return {"counterfactual": regulariser, "imputation": imputation}
