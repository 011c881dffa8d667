"""A tiny synthetic funnel with a strong signal, for the model tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from apem.data.batching import Batch
from apem.data.schema import Schema

NUM_FIELDS = 4
VOCAB = 10


def tiny_schema(num_steps: int = 2, *, sequential: bool = True, num_dense: int = 0) -> Schema:
    return Schema(
        fields=tuple(f"f{i}" for i in range(NUM_FIELDS)),
        vocab_sizes=(VOCAB,) * NUM_FIELDS,
        steps=tuple(f"s{i}" for i in range(num_steps)),
        dense=tuple(f"d{i}" for i in range(num_dense)),
        sequential=sequential,
    )


def tiny_batch(schema: Schema, n: int, seed: int) -> Batch:
    """n rows whose step probabilities depend on every field (same rule for every seed).

    Funnel: ``P(step 1) = sigmoid(s_1)``, ``P(step i | step i-1) = sigmoid(s_i + 0.5)`` with
    ``s_i`` a sum of per-(field, id) effects (and the dense values for step 1); independent
    tasks: ``P(task i) = sigmoid(s_i)``.
    """
    effects = np.random.default_rng(1234).normal(
        0.0, 1.5, (schema.num_fields, VOCAB, schema.num_steps)
    )
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, VOCAB, (n, schema.num_fields))
    scores = effects[np.arange(schema.num_fields), ids].sum(axis=1) / np.sqrt(schema.num_fields)
    dense = rng.normal(0.0, 1.0, (n, schema.num_dense)) if schema.num_dense else None
    if dense is not None:
        scores[:, 0] += dense.sum(axis=1)
    if schema.sequential:
        scores[:, 1:] += 0.5
    draws = rng.random((n, schema.num_steps)) < 1.0 / (1.0 + np.exp(-scores))
    labels = np.cumprod(draws, axis=1) if schema.sequential else draws
    return Batch(
        ids=torch.from_numpy(ids),
        labels=torch.from_numpy(labels.astype(np.float32)),
        dense=None if dense is None else torch.from_numpy(dense.astype(np.float32)),
    )


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread (and do not fight other jobs for the cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def make_schema():
    """``make_schema(num_steps=2, *, sequential=True, num_dense=0)`` -> a 4-field Schema."""
    return tiny_schema


@pytest.fixture
def make_batch():
    """``make_batch(schema, n, seed)`` -> a Batch of n rows of the tiny funnel."""
    return tiny_batch
