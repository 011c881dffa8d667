"""APEM: the step counter and γ, the ablation switches, the loss and the two backends."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.nn import functional as F

from apem.data.schema import FunnelData
from apem.models import APEM, build_model
from apem.models.apem import TOWER_INPUTS, VARIANTS
from apem.models.gamma import gamma_schedule
from apem.nn.embedding import EMBEDDING_INIT_STD

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
    model = small_apem(schema, task_indicators=False, tower_input="task", task_gain=0.05)
    batch = make_batch(schema, 8, seed=0)
    assert model.pattern_selectors is None and model.task_norms is None
    # the stand-in for T^L starts at T^L's gain, so both ablation arms feed the towers alike
    assert torch.equal(model.pool_norm.weight, torch.full((SMALL["embed_dim"],), 0.05))
    y = model.embed(batch.ids, None)
    for layer in model.asrg:
        y = layer(y, model.gamma)
    pooled = F.layer_norm(y.mean(dim=1), (SMALL["embed_dim"],)) * 0.05
    assert torch.allclose(model.logits(batch.ids), model.towers(pooled), atol=1e-6)


def test_task_indicators_chain_through_layer_norms(make_schema, make_batch):
    schema = make_schema(3)
    model, batch = small_apem(schema, tower_input="task"), make_batch(schema, 8, seed=0)
    y = model.embed(batch.ids, None)
    y = model.asrg[0](y, model.gamma)
    tasks = model.task_norms[0](model.pattern_selectors[0](y))
    y = model.asrg[1](y, model.gamma)
    tasks = model.task_norms[1](tasks + model.pattern_selectors[1](y))
    assert tasks.shape == (8, 3, SMALL["embed_dim"])
    assert torch.allclose(model.logits(batch.ids), model.towers(tasks))


def test_variants_fix_the_options_and_an_explicit_option_wins(make_schema):
    schema = make_schema(2)
    for variant, options in VARIANTS.items():
        model = small_apem(schema, variant=variant)
        assert {k: model.config[k] for k in options} == options
        assert model.config["variant"] == variant
    model = small_apem(schema, variant="paper", tower_input="task+final", init="unit")
    assert model.config["tower_input"] == "task+final" and model.config["init"] == "unit"
    assert model.config["residual"] == VARIANTS["paper"]["residual"]
    with pytest.raises(ValueError, match="variant must be one of"):
        small_apem(schema, variant="best")
    with pytest.raises(ValueError, match="tower_input must be one of"):
        small_apem(schema, tower_input="everything")


@pytest.mark.parametrize("adapters", [True, False])
@pytest.mark.parametrize("residual", [True, False])
def test_pattern_selector_adapters_and_residual(make_schema, adapters, residual):
    schema = make_schema(3)
    model = small_apem(schema, task_adapters=adapters, selector_residual=residual)
    selector = model.pattern_selectors[0]
    assert len(selector.adapters) == (3 if adapters else 1)
    assert [a.num_inducing for a in selector.adapters] == ([1] * 3 if adapters else [3])
    assert all((a.norm is not None) == residual for a in selector.adapters)  # no unused weights
    y = torch.randn(5, SMALL["num_inducing"], SMALL["embed_dim"])
    run = (lambda a: a(y)) if residual else (lambda a: a.attend(y))
    expected = torch.cat([run(a) for a in selector.adapters], dim=1)
    torch.testing.assert_close(selector(y), expected)
    assert selector.attention_weights(y).shape == (5, 2, 3, SMALL["num_inducing"])


def test_input_residual_adds_the_layer_input_where_the_shapes_allow(make_schema, make_batch):
    schema = make_schema(2)
    model = small_apem(schema, residual="input", input_norm=False, num_inducing=5)
    batch = make_batch(schema, 6, seed=0)
    first, second = model.asrg
    h = model.embed(batch.ids, None)
    gamma = model.gamma
    u = first.selector(h.flatten(1))
    y = first.attention.norm(first.attention.attend(h, u=u, gamma=gamma))
    torch.testing.assert_close(first(h, gamma), y)
    u = second.selector(y.flatten(1))
    expected = second.attention.norm(second.attention.attend(y, u=u, gamma=gamma) + y)
    torch.testing.assert_close(second(y, gamma), expected)


@pytest.mark.parametrize("tower_input", TOWER_INPUTS)
def test_tower_inputs(make_schema, make_batch, tower_input):
    schema = make_schema(3)
    model = small_apem(schema, tower_input=tower_input)
    batch = make_batch(schema, 7, seed=0)
    h = model.embed(batch.ids, None)
    y, tasks = h, []
    for layer, asrg in enumerate(model.asrg):
        y = asrg(y, model.gamma)
        found = model.pattern_selectors[layer](y)
        tasks.append(model.task_norms[layer](found if not tasks else tasks[-1] + found))
    shared = {"task+final": y.flatten(1), "task+embeddings": h.flatten(1)}.get(tower_input)
    if tower_input == "task+layers":
        expected = model.towers(torch.cat(tasks, dim=-1))
    elif shared is None:
        expected = model.towers(tasks[-1])
    else:
        expected = model.towers(torch.cat([tasks[-1], shared[:, None].expand(-1, 3, -1)], -1))
    torch.testing.assert_close(model.logits(batch.ids), expected)


@pytest.mark.parametrize("tower_input", TOWER_INPUTS)
def test_task_gain_starts_the_norms_the_towers_read(make_schema, make_batch, tower_input):
    schema = make_schema(3)
    model = small_apem(schema, num_layers=3, tower_input=tower_input, task_gain=0.25)
    read = range(3) if tower_input == "task+layers" else [2]
    for layer, norm in enumerate(model.task_norms):
        gain = 0.25 if layer in read else 1.0
        torch.testing.assert_close(norm.weight, torch.full_like(norm.weight, gain))
    tasks = model.trace(make_batch(schema, 16, seed=0).ids)[-1].tasks
    # A LayerNorm's output has std 1 per row at gain 1 (bias 0): T^L's is the gain.
    std = tasks.std(dim=-1, unbiased=False)
    torch.testing.assert_close(std, torch.full_like(std, 0.25), atol=1e-3, rtol=0)
    assert small_apem(schema).config["task_gain"] == EMBEDDING_INIT_STD
    with pytest.raises(ValueError, match="task_gain must be a finite number >= 0"):
        small_apem(schema, task_gain=-1.0)


def test_unit_init_gives_scores_of_unit_variance(make_schema):
    torch.manual_seed(0)
    d = 16
    model = small_apem(make_schema(2), init="unit", embed_dim=d, num_inducing=64, num_heads=2)
    attention = model.asrg[1].attention
    x = torch.randn(256, 64, d)
    d_h = d // 2
    q = attention.inducing.reshape(64, 2, d_h)
    k = (x @ attention.key_weight().T).reshape(256, 64, 2, d_h)
    scores = torch.einsum("qhc,bnhc->bhqn", q, k) / d_h**0.5
    # The temperature starts at 1/f_D(0) = 2: unit scores for the selector's initial z = 1/2.
    assert 0.8 < 0.5 * scores.std().item() < 1.25
    xavier = small_apem(make_schema(2), init="xavier", embed_dim=d, num_inducing=64)
    k = (x @ xavier.asrg[1].attention.key_weight().T).reshape(256, 64, 2, d_h)
    q = xavier.asrg[1].attention.inducing.reshape(64, 2, d_h)
    assert torch.einsum("qhc,bnhc->bhqn", q, k).std().item() / d_h**0.5 < 0.2


def test_run_schedule_reaches_the_floor_at_the_planned_step(make_schema, make_batch):
    schema = make_schema(2)
    model = small_apem(schema, gamma_schedule="run")
    assert model.gamma == gamma_schedule(0)  # unplanned: the paper's schedule
    model.plan_steps(100)
    model.set_step(50)
    assert model.gamma == pytest.approx((10 + 1e-3) / 2)
    model.set_step(100)
    assert model.gamma == pytest.approx(1e-3)
    restored = small_apem(schema, gamma_schedule="run")
    restored.load_state_dict(model.state_dict())
    assert restored.gamma == pytest.approx(1e-3)
    paper = small_apem(schema, gamma_schedule="paper")
    paper.plan_steps(100)
    paper.set_step(100)
    assert paper.gamma == gamma_schedule(100)


def test_trace_matches_the_forward_pass(make_schema, make_batch):
    schema = make_schema(3)
    model = small_apem(schema)
    model.set_step(45_000)  # γ = 1: some of z is exactly 0 or 1
    batch = make_batch(schema, 9, seed=0)
    traces = model.trace(batch.ids)
    assert len(traces) == 2
    y = model.embed(batch.ids, None)
    for layer, trace in zip(model.asrg, traces, strict=True):
        y = layer(y, model.gamma)
        torch.testing.assert_close(trace.output, y)
        n = trace.inputs.shape[1]
        assert trace.weights.shape == (9, 2, SMALL["num_inducing"], n)
        torch.testing.assert_close(trace.weights.sum(-1), torch.ones(9, 2, SMALL["num_inducing"]))
        assert trace.z.shape == trace.u.shape == (9, SMALL["num_inducing"])
        assert trace.tasks.shape == (9, 3, SMALL["embed_dim"])
    logits = model.towers(
        torch.cat(
            [traces[-1].tasks, model.embed(batch.ids, None).flatten(1)[:, None].expand(-1, 3, -1)],
            -1,
        )
    )
    torch.testing.assert_close(model.logits(batch.ids), logits)


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
    blocks = [layer.attention for layer in model.asrg]
    blocks += [a for selector in model.pattern_selectors for a in selector.adapters]
    assert len(blocks) == 6 and all(block.backend.value == "triton" for block in blocks)


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


def test_prepare_fit_starts_the_towers_at_the_training_rates(make_schema, make_batch):
    schema = make_schema(3)
    batch = make_batch(schema, 64, seed=0)
    train = FunnelData(schema, batch.ids.numpy(), batch.labels.numpy().astype("uint8"))
    model = small_apem(schema, output_prior=True, gamma_schedule="run")
    model.prepare_fit(train, total_steps=30)
    rates = batch.labels.mean(0).double().clamp(1e-6, 1 - 1e-6)
    biases = torch.tensor([tower.head.bias.item() for tower in model.towers], dtype=torch.float64)
    torch.testing.assert_close(biases, (rates / (1 - rates)).log(), rtol=1e-6, atol=1e-6)
    assert model.planned_steps.item() == 30
    untouched = small_apem(schema, output_prior=False)
    before = [tower.head.bias.clone() for tower in untouched.towers]
    untouched.prepare_fit(train, total_steps=30)
    assert all(torch.equal(b, t.head.bias) for b, t in zip(before, untouched.towers, strict=True))
