"""The one runner every experiment shares: grid search on validation, then every seed.

A *variant* is a table row: a registry model with fixed hyper-parameters and a grid. A grid
key that names a ``TrainConfig`` field (``lr``, ``weight_decay``, ...) sets that run's training;
every other key is a model hyper-parameter. For each variant, every grid point is trained with
the first seed and scored on the validation split (mean step AUC); the best point is then
trained with the remaining seeds, and the first seed's run is reused. The test split only
scores the runs, it never chooses anything.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from apem.data import FunnelSplits
from apem.models import FunnelModel
from apem.train import Comparison, FitResult, TrainConfig, fit_seed

log = logging.getLogger("experiments")

TRAINING_KEYS = frozenset(f.name for f in dataclasses.fields(TrainConfig))


@dataclass(frozen=True)
class Variant:
    """One row of a results table.

    Attributes:
        label: the row's name (a registry name for plain models).
        model: the ``apem.models`` registry name.
        fixed: hyper-parameters every run of the row gets.
        grid: hyper-parameter -> values searched (their product) on the validation split; a
            ``TrainConfig`` field (``lr``) is searched the same way.
    """

    label: str
    model: str
    fixed: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list[Any]] = field(default_factory=dict)

    def points(self) -> list[dict[str, Any]]:
        """Every grid point, merged over ``fixed``, in the grid's order."""
        names = list(self.grid)
        return [
            {**self.fixed, **dict(zip(names, values, strict=True))}
            for values in itertools.product(*(self.grid[n] for n in names))
        ]


@dataclass
class Outcome:
    """What ``run_variants`` measured.

    Attributes:
        comparison: the selected point of every variant, one run per seed.
        selection: label -> {"hparams": chosen, "trials": [{"hparams", "valid_mean_auc"}]}.
        fit_seconds: label -> wall seconds of each seed's run (the first seed's: its trial).
    """

    comparison: Comparison
    selection: dict[str, dict[str, Any]]
    fit_seconds: dict[str, list[float]]


def train_once(
    model_name: str, point: dict[str, Any], splits: FunnelSplits, train: TrainConfig, seed: int
) -> tuple[FunnelModel, FitResult, float]:
    """``apem.train.fit_seed`` at a grid point (its ``TrainConfig`` fields replace ``train``'s,
    the rest build the model) and the wall seconds it took."""
    training = {k: v for k, v in point.items() if k in TRAINING_KEYS}
    hparams = {k: v for k, v in point.items() if k not in TRAINING_KEYS}
    started = time.perf_counter()
    model, result = fit_seed(
        model_name, hparams, splits, dataclasses.replace(train, **training), seed
    )
    return model, result, time.perf_counter() - started


def run_variants(
    variants: Sequence[Variant], splits: FunnelSplits, seeds: Sequence[int], train: TrainConfig
) -> Outcome:
    """Grid-search each variant on the validation split with ``seeds[0]``, then run the other
    seeds at the chosen point (see the module docstring)."""
    runs: dict[str, list[FitResult]] = {}
    selection: dict[str, dict[str, Any]] = {}
    seconds: dict[str, list[float]] = {}
    for variant in variants:
        trials = []
        for point in variant.points():
            _, result, wall = train_once(variant.model, point, splits, train, seeds[0])
            trials.append((point, result, wall))
            log.info(
                "%s %s seed %d: valid %.4f test %s (%.0f s)",
                variant.label, point, seeds[0], result.valid.mean_auc,
                _aucs(result), wall,
            )  # fmt: skip
        # An undefined validation AUC (NaN) never wins, whatever the grid order.
        chosen, first, first_wall = max(trials, key=lambda t: _score(t[1].valid.mean_auc))
        runs[variant.label], seconds[variant.label] = [first], [first_wall]
        for seed in seeds[1:]:
            _, result, wall = train_once(variant.model, chosen, splits, train, seed)
            runs[variant.label].append(result)
            seconds[variant.label].append(wall)
            log.info("%s seed %d: test %s (%.0f s)", variant.label, seed, _aucs(result), wall)
        selection[variant.label] = {
            "hparams": chosen,
            "trials": [{"hparams": h, "valid_mean_auc": r.valid.mean_auc} for h, r, _ in trials],
        }
    comparison = Comparison(steps=splits.schema.steps, seeds=tuple(seeds), runs=runs)
    return Outcome(comparison, selection, seconds)


def _aucs(result: FitResult) -> str:
    return " ".join(f"{k} {v:.4f}" for k, v in result.test.auc.items())


def _score(value: float) -> float:
    """A validation score for selection: NaN ranks below every number."""
    return -math.inf if math.isnan(value) else value
