"""The hyper-parameter grids, searched the same way for every model.

Every model gets the same dropout values crossed, in the full grid, with two values of its
own main capacity knob (the knob of the default first). The paper names no grid (it cites
grid search and fixes Adam, lr 1e-3, batch 1024, embedding 18): this is our choice. The
search trains each grid point with the first seed and keeps the point with the best mean
step AUC on the validation split; the test split is never looked at.
"""

from __future__ import annotations

from typing import Any

DROPOUT = [0.0, 0.1]

CAPACITY: dict[str, dict[str, list[Any]]] = {
    "single_task": {"tower_hidden": [[256, 128, 64], [128, 64]]},
    "shared_bottom": {"bottom_hidden": [[256, 128], [512, 256]]},
    "mmoe": {"num_experts": [8, 4]},
    "ple": {"num_levels": [2, 1]},
    "aitm": {"calibrator_weight": [0.6, 1.0]},
    "esmm": {"tower_hidden": [[360, 200, 80], [128, 64]]},
    "escm2_ips": {"regularizer_weight": [0.1, 1.0]},
    "escm2_dr": {"regularizer_weight": [0.1, 1.0]},
    "apem": {"num_inducing": [64, 32]},
}

FULL_GRID: dict[str, dict[str, list[Any]]] = {
    model: {"dropout": DROPOUT, **knob} for model, knob in CAPACITY.items()
}
SMALL_GRID: dict[str, dict[str, list[Any]]] = {model: {"dropout": DROPOUT} for model in CAPACITY}
