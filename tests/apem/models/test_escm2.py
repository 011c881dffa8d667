"""ESCM2: the propensity is the detached, clipped previous step; the regulariser's reach."""

from __future__ import annotations

import pytest
import torch

from apem.models import build_model
from apem.nn import chain_logits, ips_loss

SMALL = {"tower_hidden": [8], "embed_dim": 4}


def untouched(loss, module) -> bool:
    """True when ``loss`` sends no gradient to ``module`` (no path, or only zeros)."""
    params = list(module.parameters())
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return all(g is None or not g.any() for g in grads)


@pytest.mark.parametrize("name", ["escm2_ips", "escm2_dr"])
def test_propensity_gradient_does_not_reach_the_previous_step_tower(name, make_schema, make_batch):
    schema = make_schema(2)
    model, batch = build_model(name, schema, **SMALL), make_batch(schema, 64, seed=0)
    _, parts = model.training_loss(batch)
    regulariser = parts["counterfactual"]
    assert untouched(regulariser, model.towers[0])
    assert not untouched(regulariser, model.towers[1])
    assert not untouched(regulariser, model.embedding)


@pytest.mark.parametrize(("bias", "expected"), [(-30.0, 0.05), (30.0, 0.9), (0.0, 0.5)])
def test_propensity_is_the_clipped_previous_step(bias, expected, make_schema, make_batch):
    schema = make_schema(2)
    model = build_model("escm2_ips", schema, **SMALL, propensity_clip=[0.05, 0.9])
    torch.nn.init.zeros_(model.towers[0].head.weight)
    torch.nn.init.constant_(model.towers[0].head.bias, bias)
    batch = make_batch(schema, 16, seed=0)
    conditional = model.towers(model.features(batch.ids, None))
    propensity = model.propensity(chain_logits(conditional))
    assert propensity.shape == (16, 1) and not propensity.requires_grad
    torch.testing.assert_close(propensity, torch.full((16, 1), expected))


def test_ips_part_is_the_ips_loss_with_that_propensity(make_schema, make_batch):
    schema = make_schema(3)
    model, batch = build_model("escm2_ips", schema, **SMALL), make_batch(schema, 64, seed=0)
    total, parts = model.training_loss(batch)
    conditional = model.towers(model.features(batch.ids, None))
    logits = chain_logits(conditional)
    expected = ips_loss(conditional[:, 1:], batch.labels, model.propensity(logits))
    assert parts["counterfactual"].item() == pytest.approx(expected.item(), rel=1e-6)
    bce = sum(parts[f"bce/s{i}"] for i in range(3))
    assert total.item() == pytest.approx((bce + 0.1 * expected).item(), rel=1e-6)


def test_dr_imputation_towers_learn_only_from_the_imputation_loss(make_schema, make_batch):
    schema = make_schema(3)
    model, batch = build_model("escm2_dr", schema, **SMALL), make_batch(schema, 64, seed=0)
    assert len(model.imputation) == 2
    _, parts = model.training_loss(batch)
    assert untouched(parts["counterfactual"], model.imputation)
    assert not untouched(parts["imputation"], model.imputation)
    assert untouched(parts["imputation"], model.towers)
