"""Experiment scales: ``smoke`` (seconds, CI), ``small`` (minutes on a 2-core CPU), ``medium``
(the issue's data and seeds on a 2-core CPU: 10^6 synthetic rows, 5 seeds, a short training
budget), ``full`` (the issue's whole protocol: the whole grid, up to 20 epochs; meant for a
bigger machine), ``user`` (what `apem train` does with a user's table: every model at its
defaults, ``TrainConfig``'s schedule, no search)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apem.models import MODEL_NAMES
from experiments.grid import FULL_GRID, SMALL_GRID

# A table row -> (the registry model, its fixed hyper-parameters): every registry model, and
# APEM's most literal reading of the paper beside its default.
ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    **{name: (name, {}) for name in MODEL_NAMES},
    "apem_paper": ("apem", {"variant": "paper"}),
}
MODELS = tuple(ROWS)  # the Table 3 rows


@dataclass(frozen=True)
class Preset:
    """Everything that changes between scales.

    Attributes:
        name: its key in ``PRESETS``.
        seeds: training seeds (one run per model and seed at the selected hyper-parameters).
        rows: synthetic dataset or generated table -> rows generated (cut 80/10/10).
        census_rows: keep only the first rows of each census split (None: all of them).
        grid: model -> hyper-parameter name -> values searched (product), on the first seed.
        train: keyword arguments of ``apem.train.TrainConfig``.
        models: the Table 3 models.
        apem: fixed APEM hyper-parameters (on top of the grid point).
        efficiency_rows: synthetic rows (2 steps) of the efficiency measurement.
    """

    name: str
    seeds: tuple[int, ...]
    rows: dict[str, int]
    census_rows: int | None
    grid: dict[str, dict[str, list[Any]]]
    train: dict[str, Any]
    models: tuple[str, ...] = MODELS
    apem: dict[str, Any] = field(default_factory=dict)
    efficiency_rows: int = 100_000


def first_points(grid: dict[str, dict[str, list[Any]]]) -> dict[str, dict[str, list[Any]]]:
    """The grid's first value of every hyper-parameter (one run per model)."""
    return {m: {k: values[:1] for k, values in g.items()} for m, g in grid.items()}


PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        name="smoke",
        seeds=(0, 1),
        rows={"synthetic2": 3_000, "synthetic4": 3_000},
        census_rows=3_000,
        grid=first_points(SMALL_GRID),
        train={"epochs": 1, "batch_size": 512, "patience": 1},
        models=("single_task", "esmm", "apem"),
        apem={"num_layers": 2, "num_inducing": 16},
        efficiency_rows=2_000,
    ),
    # Measured on the shared 2-core CPU, one torch thread: an APEM epoch on the census funnel
    # takes about 2 min, a baseline's 5-20 s; 3 seeds, 2 grid points, <= 3 epochs fit an hour.
    "small": Preset(
        name="small",
        seeds=(0, 1, 2),
        rows={"synthetic2": 40_000, "synthetic4": 40_000},
        census_rows=None,
        grid=SMALL_GRID,
        train={"epochs": 3, "batch_size": 1024, "patience": 1},
        efficiency_rows=20_000,
    ),
    # Measured on the quiet 2-core CPU, two torch threads: one epoch of all nine models on the
    # 800,000 training rows of synthetic2 takes about 7 min (APEM about 4 of them); the whole
    # `models --dataset synthetic2` run took 131 min.
    "medium": Preset(
        name="medium",
        seeds=(0, 1, 2, 3, 4),
        rows={"synthetic2": 1_000_000, "synthetic4": 200_000},
        census_rows=None,
        grid=SMALL_GRID,
        train={"epochs": 3, "batch_size": 1024, "patience": 1},
        efficiency_rows=100_000,
    ),
    "full": Preset(
        name="full",
        seeds=(0, 1, 2, 3, 4),
        rows={"synthetic2": 1_000_000, "synthetic4": 1_000_000},
        census_rows=None,
        grid=FULL_GRID,
        train={"epochs": 20, "batch_size": 1024, "patience": 2},
        efficiency_rows=1_000_000,
    ),
    "user": Preset(
        name="user",
        seeds=(0, 1, 2),
        rows={"table-shop": 60_000, "table-delivery": 60_000},
        census_rows=None,
        grid={model: {} for model in SMALL_GRID},
        train={"epochs": 10, "batch_size": 1024, "patience": 2},
        models=tuple(m for m in MODELS if m != "apem_paper"),
    ),
}
