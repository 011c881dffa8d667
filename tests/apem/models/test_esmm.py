"""ESMM: entire-space probabilities are products of the conditional towers."""

from __future__ import annotations

import torch

from apem.models import build_model


def test_probabilities_are_products_of_the_conditional_steps(make_schema, make_batch):
    schema = make_schema(4)
    model = build_model("esmm", schema, tower_hidden=[8], embed_dim=4)
    batch = make_batch(schema, 32, seed=0)
    conditional = torch.sigmoid(model.towers(model.features(batch.ids, None)))
    probs = model(batch.ids)
    torch.testing.assert_close(probs, conditional.cumprod(dim=1))
    assert (probs[:, 1:] <= probs[:, :-1]).all()


def test_loss_is_the_entire_space_bce(make_schema, make_batch):
    schema = make_schema(2)
    model = build_model("esmm", schema, tower_hidden=[8], embed_dim=4)
    batch = make_batch(schema, 32, seed=0)
    total, parts = model.training_loss(batch)
    expected = torch.nn.functional.binary_cross_entropy(model(batch.ids), batch.labels)
    torch.testing.assert_close(total / 2, expected)
    assert set(parts) == {"bce/s0", "bce/s1"}
