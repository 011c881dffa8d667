"""The interface every funnel model shares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from apem.data.batching import Batch
from apem.data.schema import FunnelData, Schema
from apem.nn import FieldEmbedding, check_labels, step_bce
from apem.nn.checks import positive_int
from apem.nn.checks import step_weights as check_step_weights


class FunnelModel(nn.Module, ABC):
    """A multi-step conversion model over a schema's fields, predicting every step.

    Subclasses implement ``logits`` (entire-space logits, (B, S)) and may extend
    ``training_loss`` with their own terms.

    Attributes:
        name: the registry key (``apem.models.build_model``).
        needs_funnel: True when the model only makes sense for ``schema.sequential``.
        schema: the dataset schema the model was built for.
        step_weights: w_i, the weight of step i's BCE in the loss.
        config: every hyper-parameter needed to rebuild the model (JSON-serialisable):
            ``build_model(model.name, model.schema, **model.config)``.
        added_options: hyper-parameters added after checkpoints of the model were first
            written, each with the value that applied before it existed; a checkpoint's
            config that lacks one is read with that value.
    """

    name: ClassVar[str]
    needs_funnel: ClassVar[bool] = False
    added_options: ClassVar[dict[str, Any]] = {}

    def __init__(
        self,
        schema: Schema,
        *,
        embed_dim: int,
        step_weights: Sequence[float] | None,
        **hparams: Any,
    ) -> None:
        super().__init__()
        if not isinstance(schema, Schema):
            raise TypeError(f"schema must be an apem.data.Schema, got {type(schema).__name__}")
        if schema.num_steps < 2:
            raise ValueError(f"{self.name} needs 2 or more steps, got {list(schema.steps)}")
        if self.needs_funnel and not schema.sequential:
            raise ValueError(
                f"{self.name} models a funnel (each step conditional on the previous one); "
                "the schema has independent tasks (sequential=False)"
            )
        self.schema = schema
        self.embedding = FieldEmbedding(
            schema.vocab_sizes, positive_int("embed_dim", embed_dim), schema.num_dense
        )
        self.step_weights = check_step_weights(step_weights, schema.num_steps)
        # The same weights as a tensor that follows the model's device (no copy per step).
        self.register_buffer(
            "_step_weights", torch.tensor(self.step_weights, dtype=torch.float32), persistent=False
        )
        self.config: dict[str, Any] = {
            "embed_dim": embed_dim,
            "step_weights": self.step_weights,
            **hparams,
        }

    @property
    def num_steps(self) -> int:
        return self.schema.num_steps

    @property
    def flat_dim(self) -> int:
        """Width of the concatenated embeddings: (F + num_dense) * embed_dim."""
        return self.embedding.num_rows * self.embedding.dim

    def embed(self, ids: Tensor, dense: Tensor | None) -> Tensor:
        """ids (B, F), dense (B, num_dense) or None -> field embeddings (B, F + num_dense, d)."""
        return self.embedding(ids, dense)

    def prepare_fit(self, train: FunnelData, total_steps: int) -> None:
        """Called by ``apem.train.fit`` before a run's first step, with the training split and
        the run's planned optimiser steps: data-dependent initialisation and schedules that
        follow the run's length go here (a resumed run then restores the checkpoint's state).
        Nothing by default."""

    @abstractmethod
    def logits(self, ids: Tensor, dense: Tensor | None = None) -> Tensor:
        """Entire-space logits of every step: ids (B, F), dense (B, num_dense) -> (B, S)."""

    def forward(self, ids: Tensor, dense: Tensor | None = None) -> Tensor:
        """Entire-space probabilities ``p_i = P(T_i = 1 | x)``, float32: -> (B, S)."""
        return torch.sigmoid(self.logits(ids, dense).float())

    def training_loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Scalar loss of a batch and its named parts (``"bce/<step>"`` per step)."""
        return self.task_loss(self.logits(batch.ids, batch.dense).float(), batch.labels)

    def task_loss(self, logits: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """``sum_i w_i BCE(p_i, o_i)`` on the entire space: logits, labels (B, S)."""
        check_labels(labels, logits)
        per_step = step_bce(logits, labels)
        parts = {f"bce/{step}": per_step[i] for i, step in enumerate(self.schema.steps)}
        total = (per_step * self._step_weights).sum()
        return total, parts
