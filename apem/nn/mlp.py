"""Fully connected stacks: the MLP, a task tower and a row of towers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from apem.nn.checks import dropout_rate, layer_sizes, one_of, positive_int

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}


class MLP(nn.Sequential):
    """``Linear -> activation -> dropout`` per hidden width: (..., in_dim) -> (..., out_dim).

    ``out_dim`` is the last hidden width, or ``in_dim`` when ``hidden`` is empty (identity).
    """

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int],
        dropout: float = 0.0,
        activation: str = "relu",
    ) -> None:
        widths = [positive_int("in_dim", in_dim), *layer_sizes("hidden", hidden)]
        rate = dropout_rate("dropout", dropout)
        act = ACTIVATIONS[one_of("activation", activation, list(ACTIVATIONS))]
        layers: list[nn.Module] = []
        for width_in, width_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(width_in, width_out), act()]
            if rate:
                layers.append(nn.Dropout(rate))
        super().__init__(*layers)
        self.out_dim = widths[-1]


class Tower(nn.Module):
    """A task tower: an MLP then one output unit. (..., in_dim) -> (...) logits."""

    def __init__(
        self,
        in_dim: int,
        hidden: Sequence[int],
        dropout: float = 0.0,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        self.body = MLP(in_dim, hidden, dropout, activation)
        self.head = nn.Linear(self.body.out_dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x)).squeeze(-1)


class Towers(nn.ModuleList):
    """One tower per task.

    ``forward`` takes one input shared by all towers, (B, in_dim), or one per task,
    (B, num_tasks, in_dim), and returns the logits (B, num_tasks).
    """

    def __init__(
        self,
        in_dim: int,
        num_tasks: int,
        hidden: Sequence[int],
        dropout: float = 0.0,
        activation: str = "relu",
    ) -> None:
        count = positive_int("num_tasks", num_tasks)
        super().__init__(Tower(in_dim, hidden, dropout, activation) for _ in range(count))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 3:
            return torch.stack([tower(x[:, i]) for i, tower in enumerate(self)], dim=1)
        return torch.stack([tower(x) for tower in self], dim=1)
