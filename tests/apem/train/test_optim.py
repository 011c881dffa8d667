"""Optimiser choice, the warm-up + cosine schedule and gradient clipping in the trainer."""

from __future__ import annotations

import math

import pytest
import torch

from apem.train import TrainConfig, fit, seed_everything
from apem.train.optim import build_optimizer, lr_factor


def test_warmup_then_cosine():
    factors = [lr_factor(step, "cosine", 4, 12) for step in range(12)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == 1.0 and factors[8] == pytest.approx(0.5)
    assert factors[11] == pytest.approx(0.5 * (1 + math.cos(math.pi * 7 / 8)))
    assert all(a > b for a, b in zip(factors[4:], factors[5:], strict=False))
    assert [lr_factor(step, "constant", 2, 12) for step in (0, 1, 2, 11)] == [0.5, 1, 1, 1]


def test_adamw_decouples_weight_decay():
    for name, expected in (("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)):
        optimizer = build_optimizer(torch.nn.Linear(2, 1), name, 1e-3, 0.1)
        assert type(optimizer) is expected and optimizer.param_groups[0]["weight_decay"] == 0.1
    with pytest.raises(ValueError, match="optimizer must be one of"):
        build_optimizer(torch.nn.Linear(2, 1), "sgd", 1e-3, 0.0)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("lr_schedule", "step", "lr_schedule must be one of"),
        ("warmup_steps", -1, "warmup_steps must be an integer >= 0"),
        ("grad_clip", 0.0, "grad_clip must be a number > 0"),
        ("weight_decay", -0.1, "weight_decay must be a number >= 0"),
    ],
)
def test_bad_settings_are_named(tiny_splits, make_model, field, value, message):
    config = TrainConfig(device="cpu", epochs=1, progress=False, **{field: value})
    with pytest.raises(ValueError, match=message):
        fit(make_model(), tiny_splits, config)


def test_fit_follows_the_schedule_and_clips(tiny_splits, make_model, monkeypatch):
    norms = []
    clip = torch.nn.utils.clip_grad_norm_

    def recording_clip(parameters, max_norm):
        norms.append(max_norm)
        return clip(parameters, max_norm)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording_clip)
    seed_everything(0)
    config = TrainConfig(
        batch_size=64, epochs=2, device="cpu", progress=False, optimizer="adamw",
        weight_decay=0.01, lr=1e-2, lr_schedule="cosine", warmup_steps=5, grad_clip=0.5,
    )  # fmt: skip
    result = fit(make_model(), tiny_splits, config)
    assert result.steps == 20 and norms == [0.5] * 20
    # the lr of the last step of each epoch: steps 9 and 19 of 20, 5 of them warm-up
    expected = [1e-2 * lr_factor(step, "cosine", 5, 20) for step in (9, 19)]
    assert [h["lr"] for h in result.history] == pytest.approx(expected)
