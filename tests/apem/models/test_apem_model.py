"""APEM: the step counter and γ, the ablation switches, the loss and the two backends."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from apem.models import APEM, build_model
from apem_kernels import gamma_schedule

SMALL = {"num_layers": 2, "num_inducing": 4, "embed_dim": 4, "backend": "torch"}


def small_apem(schema, **hparams) -> APEM:
    return build_model("apem", schema, **{**SMALL, **hparams})


def test_step_counts_training_losses_in_train_mode_only(make_schema, make_batch):
    schema = make_schema(2)
    model, batch = small_apem(schema), make_batch(schema, 8, seed=0)
    assert model.step.item() == 0 and model.gamma == gamma_schedule(0)
    for _ in range(3):
        model.training_loss(batch)
    assert model.step.item() == 3 and model.gamma == gamma_schedule(3)
    model.eval()
    model.training_loss(batch)
    model(batch.ids)
    assert model.step.item() == 3


def test_step_is_saved_and_drives_gamma_at_inference(make_schema, make_batch):
    schema = make_schema(2)
    model, batch = small_apem(schema), make_batch(schema, 16, seed=0)
    model.set_step(40_000)
    state = model.state_dict()
    assert state["step"].item() == 40_000
    restored = small_apem(schema)
    restored.load_state_dict(state)
    restored.eval()
    assert restored.gamma == gamma_schedule(40_000) == pytest.approx(2.0)
    late = restored(batch.ids)
    restored.set_step(0)
    assert not torch.allclose(restored(batch.ids), late)


def test_selector_output_reaches_the_attention_as_u_with_gamma(make_schema, make_batch):
    schema = make_schema(2)
    model, batch = small_apem(schema), make_batch(schema, 4, seed=0)
    model.set_step(10)
    seen = []
    for layer in model.asrg:
        layer.attention.register_forward_hook(
            lambda module, args, kwargs, out: seen.append(kwargs), with_kwargs=True
        )
    model(batch.ids)
    assert [set(kwargs) for kwargs in seen] == [{"u", "gamma"}] * 2
    assert all(kwargs["gamma"] == gamma_schedule(10) for kwargs in seen)
    assert seen[0]["u"].shape == (4, SMALL["num_inducing"])


def test_without_dynamic_selector_the_step_does_not_matter(make_schema, make_batch):
    schema = make_schema(2)
    model, batch = small_apem(schema, dynamic_selector=False), make_batch(schema, 8, seed=0)
    assert all(layer.selector is None for layer in model.asrg)
    early = model(batch.ids)
    model.set_step(30_000)
    assert torch.equal(model(batch.ids), early)


def test_without_task_indicators_towers_read_the_pooled_representation(make_schema, make_batch):
    schema = make_schema(3)
    model, batch = small_apem(schema, task_indicators=False), make_batch(schema, 8, seed=0)
    assert model.pattern_selectors is None and model.task_norms is None
    y = model.embed(batch.ids, None)
    for layer in model.asrg:
        y = layer(y, model.gamma)
    assert torch.allclose(model.logits(batch.ids), model.towers(y.mean(dim=1)))


def test_task_indicators_chain_through_layer_norms(make_schema, make_batch):
    schema = make_schema(3)
    model, batch = small_apem(schema), make_batch(schema, 8, seed=0)
    y = model.embed(batch.ids, None)
    y = model.asrg[0](y, model.gamma)
    tasks = model.pattern_selectors[0](y)
    y = model.asrg[1](y, model.gamma)
    tasks = model.task_norms[0](tasks + model.pattern_selectors[1](y))
    assert tasks.shape == (8, 3, SMALL["embed_dim"])
    assert torch.allclose(model.logits(batch.ids), model.towers(tasks))


def test_loss_adds_the_weighted_dependence_term(make_schema, make_batch):
    schema = make_schema(3)
    batch = make_batch(schema, 32, seed=0)
    torch.manual_seed(0)
    model = small_apem(schema, dependence_weight=2.5)
    total, parts = model.training_loss(batch)
    bce = sum(parts[f"bce/s{i}"] for i in range(3))
    assert total.item() == pytest.approx((bce + 2.5 * parts["dependence"]).item(), rel=1e-6)
    torch.manual_seed(0)
    plain = small_apem(schema, dependence_weight=0)
    total, parts = plain.training_loss(batch)
    assert "dependence" not in parts and total.item() == pytest.approx(bce.item(), rel=1e-6)


def test_dependence_weight_defaults_follow_the_schema(make_schema):
    assert small_apem(make_schema(2)).config["dependence_weight"] == 1.0
    assert small_apem(make_schema(2, sequential=False)).config["dependence_weight"] == 0.0
    with pytest.raises(ValueError, match="dependence_weight must be 0 for a schema with indep"):
        small_apem(make_schema(2, sequential=False), dependence_weight=1.0)


def test_backend_reaches_every_attention_block(make_schema):
    model = small_apem(make_schema(2), backend="triton")
    blocks = [layer.attention for layer in model.asrg] + list(model.pattern_selectors)
    assert len(blocks) == 4 and all(block.backend.value == "triton" for block in blocks)


def test_triton_and_torch_backends_agree_on_outputs_and_gradients(
    make_schema, make_batch, kernel_device
):
    """Tiny shape on kernel_device: interpreted kernels on the CPU, or compiled ones on CUDA."""
    schema = make_schema(2)
    batch = make_batch(schema, 3, seed=0)
    batch = dataclasses.replace(
        batch, ids=batch.ids.to(kernel_device), labels=batch.labels.to(kernel_device)
    )
    torch.manual_seed(0)
    reference = small_apem(schema, backend="torch").to(kernel_device)
    reference.set_step(49_000)  # γ = 0.2: selector outputs fall on and off the ramp
    fused = small_apem(schema, backend="triton").to(kernel_device)
    fused.load_state_dict(reference.state_dict())
    torch.testing.assert_close(fused(batch.ids), reference(batch.ids), rtol=1e-5, atol=1e-6)
    losses = [model.training_loss(batch)[0] for model in (reference, fused)]
    for loss in losses:
        loss.backward()
    assert losses[1].item() == pytest.approx(losses[0].item(), rel=1e-5, abs=1e-6)
    for (name, expected), got in zip(reference.named_parameters(), fused.parameters(), strict=True):
        torch.testing.assert_close(got.grad, expected.grad, rtol=1e-4, atol=1e-5, msg=name)
