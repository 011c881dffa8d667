"""APEM's γ schedule: the width of the dynamic selector's smooth step over training.

The kernels take γ as an argument (``apem_kernels.smooth_step(u, gamma)``); how γ moves is the
model's business.
"""

from __future__ import annotations

import torch
from torch import Tensor

GAMMA_START = 10.0
GAMMA_DECAY = 2e-4
GAMMA_FLOOR = 1e-3


def gamma_schedule(
    step: int | Tensor,
    start: float = GAMMA_START,
    decay: float | Tensor = GAMMA_DECAY,
    floor: float = GAMMA_FLOOR,
) -> float | Tensor:
    """Width of the smooth step at a training step: ``max(start - decay * step, floor)``.

    A python ``step`` gives a float; a tensor ``step`` (a model's step buffer) gives a float64
    tensor on its device, equal to the float, so a compiled training step reads γ without a
    host sync and without recompiling as it changes. With the defaults f_D becomes a hard 0/1
    gate after 50,000 steps.
    """
    if isinstance(step, Tensor):
        return (start - decay * step.to(torch.float64)).clamp(min=floor)
    return max(start - decay * float(step), floor)
