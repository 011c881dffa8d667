"""MMoE's and PLE's structure."""

from __future__ import annotations

import torch

from apem.models import build_model


def test_mmoe_has_one_gate_and_tower_per_step_over_shared_experts(make_schema, make_batch):
    schema = make_schema(3)
    model = build_model("mmoe", schema, num_experts=5, expert_hidden=[8], tower_hidden=[4])
    assert len(model.experts) == 5 and len(model.gates) == 3 and len(model.towers) == 3
    batch = make_batch(schema, 8, seed=0)
    x = model.embed(batch.ids, None).flatten(1)
    mixed = model.gates[2](x, model.experts(x))
    torch.testing.assert_close(model.logits(batch.ids)[:, 2], model.towers[2](mixed))


def test_ple_has_a_shared_gate_on_every_level_but_the_last(make_schema, make_batch):
    schema = make_schema(3)
    model = build_model(
        "ple", schema, num_levels=3, task_experts=2, shared_experts=1, expert_hidden=[8]
    )
    assert [level.shared_gate is not None for level in model.levels] == [True, True, False]
    first = model.levels[0]
    assert len(first.task_experts) == 3 and len(first.task_experts[0]) == 2
    assert first.task_gates[0].logits.out_features == 2 + 1
    assert first.shared_gate.logits.out_features == 3 * 2 + 1
    batch = make_batch(schema, 8, seed=0)
    assert model(batch.ids).shape == (8, 3)
