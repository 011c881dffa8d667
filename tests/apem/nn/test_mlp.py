"""MLPs and towers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from apem.nn import MLP, Tower, Towers


def test_mlp_layers_and_out_dim():
    mlp = MLP(6, [8, 4], dropout=0.1, activation="gelu")
    assert mlp.out_dim == 4
    assert [type(m) for m in mlp] == [nn.Linear, nn.GELU, nn.Dropout] * 2
    assert mlp(torch.randn(3, 6)).shape == (3, 4)


def test_empty_mlp_is_the_identity():
    mlp = MLP(6, [])
    x = torch.randn(3, 6)
    assert mlp.out_dim == 6 and torch.equal(mlp(x), x)


def test_tower_gives_one_logit_per_row():
    assert Tower(6, [4])(torch.randn(5, 6)).shape == (5,)


def test_towers_on_a_shared_or_a_per_task_input():
    towers = Towers(6, 3, [4])
    shared = torch.randn(5, 6)
    assert towers(shared).shape == (5, 3)
    per_task = torch.randn(5, 3, 6)
    out = towers(per_task)
    assert torch.allclose(out[:, 2], towers[2](per_task[:, 2]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hidden": [4, 0]}, r"hidden\[1\] must be an integer >= 1"),
        ({"hidden": "64"}, "hidden must be a list of integers"),
        ({"hidden": [4], "dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"hidden": [4], "activation": "swish"}, "activation must be one of"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MLP(6, **kwargs)
