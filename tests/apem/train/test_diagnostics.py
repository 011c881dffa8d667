"""Diagnostics on hand-built cases with known values, then on a real APEM."""

import math

import numpy as np
import pytest
import torch

from apem.models import build_model
from apem.train.diagnostics import (
    between_sample_share,
    diagnose,
    diagnostics_table,
    normalised_entropy,
    tower_reliance,
    tower_reliance_table,
)
from apem.train.metrics import roc_auc


def test_entropy_of_uniform_and_one_hot_rows():
    assert normalised_entropy(torch.full((3, 2, 5, 7), 1 / 7)) == pytest.approx(1.0)
    assert normalised_entropy(torch.eye(6).expand(4, 6, 6)) == pytest.approx(0.0)


def test_entropy_of_a_two_point_row():
    # Half the mass on each of 2 of N = 4 keys: entropy log 2 / log 4 = 0.5.
    row = torch.tensor([0.5, 0.5, 0.0, 0.0])
    assert normalised_entropy(row.expand(3, 4)) == pytest.approx(0.5)
    # Rows average: one uniform row (1) and one one-hot row (0) give 0.5.
    mixed = torch.stack([torch.full((4,), 0.25), torch.tensor([1.0, 0, 0, 0])])
    assert normalised_entropy(mixed) == pytest.approx(0.5)
    p = torch.tensor([0.7, 0.2, 0.1])
    expected = -(p * p.log()).sum().item() / math.log(3)
    assert normalised_entropy(p) == pytest.approx(expected)


def test_entropy_of_a_single_key_counts_as_uniform():
    assert normalised_entropy(torch.ones(5, 1)) == 1.0


def test_between_sample_share_of_constant_and_sample_only_variation():
    fixed = torch.randn(1, 6, 3).expand(50, 6, 3)
    assert between_sample_share(fixed) == pytest.approx(0.0, abs=1e-12)
    # Every element the same function of the sample: all variance is between samples.
    per_sample = torch.randn(50, 1, 1).expand(50, 6, 3)
    assert between_sample_share(per_sample) == pytest.approx(1.0)
    assert between_sample_share(torch.zeros(4, 3)) == 0.0


def test_between_sample_share_of_a_known_mixture():
    # Element means ±1 (within-sample structure, variance 1) plus sample noise of variance 1/4:
    # between / total = 0.25 / 1.25.
    g = torch.Generator().manual_seed(0)
    structure = torch.tensor([1.0, -1.0]).repeat(50)  # (100,)
    noise = 0.5 * torch.randn(20_000, 100, generator=g)
    assert between_sample_share(structure + noise) == pytest.approx(0.2, abs=0.005)


def test_diagnose_reports_every_layer_of_apem(tiny_splits):
    torch.manual_seed(0)
    model = build_model("apem", tiny_splits.schema, num_layers=3, num_inducing=8, embed_dim=8)
    model.train()
    layers = diagnose(model, tiny_splits.valid, rows=200, batch_size=64)
    assert model.training  # the caller's mode is restored
    assert [d.layer for d in layers] == [1, 2, 3]
    first = layers[0]
    assert first.uniform_weight == pytest.approx(1 / model.embedding.num_rows)
    assert layers[1].uniform_weight == pytest.approx(1 / 8)
    for d in layers:
        assert 0 <= d.entropy <= 1 and d.uniform_weight <= d.max_weight <= 1
        assert 0 <= d.hard_rate <= 1 and d.z_std >= 0
        assert 0 <= d.y_between <= 1 and 0 <= d.t_between <= 1
    table = diagnostics_table(layers)
    assert table.splitlines()[0].split()[:2] == ["layer", "entropy"]
    assert len(table.splitlines()) == 4


def test_diagnose_matches_the_weights_of_a_forced_uniform_attention(tiny_splits):
    # Zero key projections make every score 0: exactly uniform attention in every layer.
    torch.manual_seed(0)
    model = build_model("apem", tiny_splits.schema, num_layers=2, num_inducing=4, embed_dim=8)
    with torch.no_grad():
        for layer in model.asrg:
            layer.attention.w_k.zero_()
    layers = diagnose(model, tiny_splits.valid, rows=100)
    assert [d.entropy for d in layers] == pytest.approx([1.0, 1.0])
    assert [d.max_weight for d in layers] == pytest.approx([d.uniform_weight for d in layers])


def test_ablations_report_none_for_missing_parts(tiny_splits):
    model = build_model(
        "apem",
        tiny_splits.schema,
        num_layers=2,
        num_inducing=4,
        embed_dim=8,
        dynamic_selector=False,
        task_indicators=False,
    )
    layers = diagnose(model, tiny_splits.valid, rows=50)
    assert layers[0].z_std is None and layers[0].hard_rate is None
    assert layers[0].task_entropy is None and layers[0].t_between is None
    assert "-" in diagnostics_table(layers)


def test_diagnose_refuses_models_without_attention(tiny_splits):
    model = build_model("single_task", tiny_splits.schema)
    with pytest.raises(TypeError, match="no attention"):
        diagnose(model, tiny_splits.valid)


@pytest.mark.parametrize("tower_input", ["task", "task+embeddings", "task+final", "task+layers"])
def test_tower_reliance_holds_each_part_of_the_towers_input(tiny_splits, tower_input):
    torch.manual_seed(0)
    small = {"num_layers": 2, "num_inducing": 4, "embed_dim": 4, "backend": "torch"}
    model = build_model("apem", tiny_splits.schema, tower_input=tower_input, **small)
    steps = tower_reliance(model, tiny_splits.valid, rows=60)
    assert [r.step for r in steps] == list(tiny_splits.schema.steps)
    shared = tower_input in ("task+embeddings", "task+final")
    assert all((r.shared_at_mean is None) != shared for r in steps)
    # With the whole input the AUC is the model's own on those rows.
    rows = np.sort(np.random.default_rng(0).choice(len(tiny_splits.valid), 60, replace=False))
    model.eval()
    with torch.no_grad():
        logits = model.logits(torch.as_tensor(tiny_splits.valid.ids[rows], dtype=torch.long))
    labels = torch.as_tensor(tiny_splits.valid.labels[rows])
    for s, r in enumerate(steps):
        assert r.auc == pytest.approx(float(roc_auc(logits[:, s], labels[:, s])))
    assert "T at mean" in tower_reliance_table(steps)


def test_tower_reliance_is_chance_when_the_towers_read_only_a_held_part(tiny_splits):
    # Towers on T alone: T at its mean gives every sample the same score, AUC 1/2.
    small = {"num_layers": 2, "num_inducing": 4, "embed_dim": 4, "backend": "torch"}
    model = build_model("apem", tiny_splits.schema, tower_input="task", **small)
    for r in tower_reliance(model, tiny_splits.valid, rows=80):
        assert r.tasks_at_mean == pytest.approx(0.5)
