"""AITM: the information transfer and the calibrator term."""

from __future__ import annotations

import pytest
import torch

from apem.models import build_model
from apem.nn import calibrator_loss


def test_ait_is_an_attention_over_the_two_inputs_with_shared_bias_free_projections(make_schema):
    model = build_model("aitm", make_schema(4), tower_hidden=[8, 6], embed_dim=4)
    ait = model.ait
    assert all(proj.bias is None for proj in (ait.query, ait.key, ait.value))
    assert len(model.transfers) == 3 and len(model.heads) == 4
    q = torch.randn(5, 6)
    torch.testing.assert_close(ait(q, q), ait.value(q))
    p = torch.randn(5, 6)
    inputs = torch.stack([p, q], dim=1)
    scores = (ait.query(inputs) * ait.key(inputs)).sum(-1) / 6**0.5
    expected = torch.einsum("bu,buh->bh", torch.softmax(scores, dim=1), ait.value(inputs))
    torch.testing.assert_close(ait(p, q), expected)


def test_loss_adds_the_weighted_calibrator(make_schema, make_batch):
    schema = make_schema(3)
    model = build_model("aitm", schema, tower_hidden=[8], embed_dim=4, calibrator_weight=2.0)
    batch = make_batch(schema, 64, seed=0)
    total, parts = model.training_loss(batch)
    assert parts["calibrator"].item() == pytest.approx(
        calibrator_loss(model(batch.ids)).item(), rel=1e-6
    )
    bce = sum(parts[f"bce/s{i}"] for i in range(3))
    assert total.item() == pytest.approx((bce + 2.0 * parts["calibrator"]).item(), rel=1e-6)
