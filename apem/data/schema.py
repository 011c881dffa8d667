"""The typed description of a funnel dataset: its fields and its ordered steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from apem.data.vocabulary import Vocabulary


@dataclass(frozen=True)
class Schema:
    """Fields and funnel steps of a dataset.

    Attributes:
        fields: names of the categorical fields, in column order of ``FunnelData.ids``.
        vocab_sizes: ids of field f lie in ``[0, vocab_sizes[f])``; id 0 is the
            out-of-vocabulary id of every field.
        steps: names of the funnel steps in order (2 or more), columns of ``FunnelData.labels``.
        dense: names of numerical fields kept as raw floats (columns of ``FunnelData.dense``).
            Numerical fields bucketed by log-round are categorical fields, listed in ``fields``.
        sequential: True for a funnel (each step implies the previous one, labels non-increasing
            along a row); False for independent tasks such as MMoE's census pair.
    """

    fields: tuple[str, ...]
    vocab_sizes: tuple[int, ...]
    steps: tuple[str, ...]
    dense: tuple[str, ...] = ()
    sequential: bool = True

    def __post_init__(self) -> None:
        if len(self.fields) != len(self.vocab_sizes):
            raise ValueError(
                f"Schema: {len(self.fields)} fields but {len(self.vocab_sizes)} vocab_sizes"
            )
        if self.sequential and len(self.steps) < 2:
            raise ValueError(f"Schema: a funnel needs 2 or more steps, got {list(self.steps)}")
        bad = [f for f, v in zip(self.fields, self.vocab_sizes, strict=True) if v < 1]
        if bad:
            raise ValueError(f"Schema: vocab size must be >= 1 for fields {bad}")

    @property
    def num_fields(self) -> int:
        return len(self.fields)

    @property
    def num_steps(self) -> int:
        return len(self.steps)

    @property
    def num_dense(self) -> int:
        return len(self.dense)


@dataclass
class FunnelData:
    """One split of a funnel dataset, as arrays (possibly memory-mapped).

    Attributes:
        schema: the dataset's schema.
        ids: (n, num_fields) integer ids, ``0 <= ids[:, f] < schema.vocab_sizes[f]``.
        labels: (n, num_steps) uint8 in {0, 1}, non-increasing along each row when
            ``schema.sequential``.
        dense: (n, num_dense) float32 or None.
        oracle: (n, num_steps) float32 true entire-space probabilities ``P(T_i = 1 | x)``
            when known (synthetic data), else None.
    """

    schema: Schema
    ids: np.ndarray
    labels: np.ndarray
    dense: np.ndarray | None = None
    oracle: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.ids.shape[0])


@dataclass
class FunnelSplits:
    """Train / validation / test splits sharing one schema (vocabularies fitted on train).

    Attributes:
        vocab: the fitted raw value -> id maps, to encode new data at predict time (None for
            synthetic data, whose ids are the raw values).
        metadata: facts about the conversion, e.g. ``dropped_inconsistent`` (rows dropped for
            breaking the funnel order), ``source`` and ``cache`` (the cache entry's directory).
    """

    train: FunnelData
    valid: FunnelData
    test: FunnelData
    vocab: Vocabulary | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def schema(self) -> Schema:
        return self.train.schema
