"""A tiny synthetic funnel and a small real model, shared by the trainer tests."""

import pytest

from apem.data.sources.synthetic import synthetic_splits
from apem.models import build_model

# Frequent steps and few ids per field, so that a few hundred rows are enough to learn from.
TINY_FUNNEL = {"base_rates": (0.3, 0.12), "vocab_size": 20, "signal": 2.0}


@pytest.fixture(scope="session")
def tiny_splits():
    """800 rows (640 / 80 / 80), 6 fields, steps click > conversion."""
    return synthetic_splits(800, num_fields=6, num_steps=2, seed=0, **TINY_FUNNEL)


@pytest.fixture
def make_model(tiny_splits):
    """Builds a small Shared-Bottom with dropout (so that training draws random numbers)."""

    def make(name: str = "shared_bottom", **overrides):
        hparams = {"embed_dim": 4, "tower_hidden": [8], "dropout": 0.2}
        if name == "shared_bottom":
            hparams["bottom_hidden"] = [16]
        return build_model(name, tiny_splits.schema, **{**hparams, **overrides})

    return make
