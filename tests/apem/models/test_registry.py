"""The registry and what every model shares: shapes, steps, schemas, config, bad input."""

from __future__ import annotations

import json

import pytest
import torch

from apem.data.batching import Batch
from apem.data.schema import Schema
from apem.models import MODEL_NAMES, FunnelModel, build_model, hparam_names

FUNNEL_ONLY = {"aitm", "esmm", "escm2_ips", "escm2_dr"}
# Smaller than the defaults, to keep construction cheap; the defaults are built in one test.
SMALL = {
    "single_task": {"tower_hidden": [16]},
    "shared_bottom": {"bottom_hidden": [16], "tower_hidden": [8]},
    "mmoe": {"num_experts": 2, "expert_hidden": [16], "tower_hidden": [8]},
    "ple": {"expert_hidden": [16], "tower_hidden": [8], "num_levels": 3},
    "aitm": {"tower_hidden": [16, 8]},
    "esmm": {"tower_hidden": [16]},
    "escm2_ips": {"tower_hidden": [16]},
    "escm2_dr": {"tower_hidden": [16]},
    "apem": {"num_layers": 2, "num_inducing": 4, "embed_dim": 4, "backend": "torch"},
}


def test_model_names():
    assert MODEL_NAMES == [
        "single_task",
        "shared_bottom",
        "mmoe",
        "ple",
        "aitm",
        "esmm",
        "escm2_ips",
        "escm2_dr",
        "apem",
    ]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_defaults_build_and_accept_the_common_hparams(name, make_schema):
    assert {"embed_dim", "step_weights"} <= set(hparam_names(name))
    model = build_model(name, make_schema(2))
    assert isinstance(model, FunnelModel) and model.name == name
    assert model.config["embed_dim"] == 18 and model.config["step_weights"] == [1.0, 1.0]


@pytest.mark.parametrize("num_steps", [2, 3, 4])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_any_number_of_steps(name, num_steps, make_schema, make_batch):
    schema = make_schema(num_steps, num_dense=1)
    batch = make_batch(schema, 32, seed=0)
    model = build_model(name, schema, **SMALL[name])
    probs = model(batch.ids, batch.dense)
    assert probs.shape == (32, num_steps) and probs.dtype == torch.float32
    assert ((probs > 0) & (probs < 1)).all()
    loss, parts = model.training_loss(batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert [f"bce/s{i}" for i in range(num_steps)] == list(parts)[:num_steps]
    loss.backward()
    assert model.embedding.table.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_probabilities_and_loss_stay_float32_under_autocast(name, make_schema, make_batch):
    schema = make_schema(2, num_dense=1)
    batch = make_batch(schema, 8, seed=0)
    model = build_model(name, schema, **SMALL[name])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        probs = model(batch.ids, batch.dense)
        loss, parts = model.training_loss(batch)
    assert probs.dtype == loss.dtype == torch.float32
    assert all(part.dtype == torch.float32 for part in parts.values())


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_independent_tasks(name, make_schema, make_batch):
    schema = make_schema(3, sequential=False)
    if name in FUNNEL_ONLY:
        with pytest.raises(ValueError, match="models a funnel"):
            build_model(name, schema, **SMALL[name])
        return
    model = build_model(name, schema, **SMALL[name])
    loss, _ = model.training_loss(make_batch(schema, 16, seed=0))
    assert torch.isfinite(loss)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_config_rebuilds_the_model(name, make_schema, make_batch):
    schema = make_schema(3)
    model = build_model(name, schema, **SMALL[name], step_weights=[1, 2, 0.5])
    config = json.loads(json.dumps(model.config))
    twin = build_model(name, schema, **config)
    twin.load_state_dict(model.state_dict())
    batch = make_batch(schema, 8, seed=0)
    assert torch.equal(twin(batch.ids), model(batch.ids))
    assert twin.config == config


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_step_weights_weight_the_bce_terms(name, make_schema, make_batch):
    schema = make_schema(2)
    batch = make_batch(schema, 32, seed=0)
    torch.manual_seed(0)
    even = build_model(name, schema, **SMALL[name])
    torch.manual_seed(0)
    weighted = build_model(name, schema, **SMALL[name], step_weights=[3.0, 0.0])
    loss_even, parts = even.training_loss(batch)
    loss_weighted, _ = weighted.training_loss(batch)
    bce = parts["bce/s0"] + parts["bce/s1"]
    shift = 3.0 * parts["bce/s0"] - bce
    assert loss_weighted.item() == pytest.approx(loss_even.item() + shift.item(), rel=1e-5)


def test_unknown_model_lists_the_valid_ones(make_schema):
    with pytest.raises(ValueError, match=r"unknown model 'apm'.*'single_task'.*'apem'"):
        build_model("apm", make_schema())


def test_unknown_hparam_lists_the_valid_ones(make_schema):
    with pytest.raises(ValueError, match=r"unknown hyper-parameter\(s\) \['hiden'\].*tower_hidden"):
        build_model("single_task", make_schema(), hiden=[4])
    with pytest.raises(ValueError, match=r"\['imputation'\] for model 'escm2_dr'.*propensity_clip"):
        build_model("escm2_dr", make_schema(), imputation=True)


@pytest.mark.parametrize(
    ("name", "hparams", "message"),
    [
        ("single_task", {"embed_dim": 0}, "embed_dim must be an integer >= 1"),
        ("single_task", {"step_weights": [1.0]}, r"one weight per step \(2\)"),
        ("single_task", {"step_weights": [1.0, -1.0]}, r"step_weights\[1\] must be a finite"),
        ("shared_bottom", {"bottom_hidden": []}, "bottom_hidden must list at least one"),
        ("mmoe", {"num_experts": 0}, "num_experts must be an integer >= 1"),
        ("ple", {"num_levels": 1.5}, "num_levels must be an integer >= 1"),
        ("aitm", {"calibrator_weight": -0.1}, "calibrator_weight must be a finite number >= 0"),
        ("esmm", {"dropout": 1.5}, r"dropout must be in \[0, 1\)"),
        ("escm2_ips", {"propensity_clip": [0.0, 1.0]}, "0 < low <= high <= 1"),
        ("escm2_dr", {"propensity_clip": 0.1}, r"propensity_clip must be a pair"),
        ("escm2_dr", {"regularizer_weight": float("nan")}, "regularizer_weight must be a finite"),
        ("apem", {"num_heads": 4}, r"embed_dim \(18\) must be divisible by num_heads \(4\)"),
        ("apem", {"backend": "cuda"}, "backend must be one of"),
        ("apem", {"task_indicators": 1}, "task_indicators must be True or False"),
    ],
)
def test_bad_hparams(name, hparams, message, make_schema):
    with pytest.raises(ValueError, match=message):
        build_model(name, make_schema(), **hparams)


def test_schema_must_be_a_schema():
    with pytest.raises(TypeError, match="schema must be an apem.data.Schema"):
        build_model("single_task", {"steps": ["a", "b"]})


def test_a_single_task_schema_is_refused():
    schema = Schema(fields=("f",), vocab_sizes=(3,), steps=("only",), sequential=False)
    with pytest.raises(ValueError, match="needs 2 or more steps"):
        build_model("mmoe", schema)


def test_labels_must_match_the_output(make_schema, make_batch):
    schema = make_schema(2)
    model = build_model("single_task", schema, **SMALL["single_task"])
    batch = make_batch(schema, 8, seed=0)
    with pytest.raises(ValueError, match=r"labels must have shape \(8, 2\)"):
        model.training_loss(Batch(ids=batch.ids, labels=batch.labels[:, :1]))
