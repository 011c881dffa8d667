"""Several models x several seeds on one dataset, summarised as the paper reports them."""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apem.data.schema import FunnelSplits
from apem.models import FunnelModel, build_model
from apem.train.metrics import FunnelMetrics
from apem.train.stats import paired_t_test
from apem.train.trainer import FitResult, TrainConfig, fit, seed_everything

REFERENCE_MODEL = "single_task"


def _number(value: float | None) -> float:
    """A JSON value back to a float: None (an undefined metric) is NaN."""
    return math.nan if value is None else float(value)


@dataclass
class ModelSummary:
    """One model across seeds. Per-step dicts are keyed by step name.

    Attributes:
        auc_mean, auc_std: mean and sample standard deviation of the test AUC over seeds.
        gain_pct: relative AUC gain over Single-Task, ``(AUC_m - AUC_st) / AUC_st`` in %, of
            the means (None when Single-Task was not run).
        p_value: two-sided paired t-test (pairs: seeds) against the best other model of the
            step (NaN with one seed).
        best_other: name of that model per step.
    """

    auc_mean: dict[str, float]
    auc_std: dict[str, float]
    gain_pct: dict[str, float] | None
    p_value: dict[str, float]
    best_other: dict[str, str]
    violation_rate_mean: float | None
    samples_per_s_mean: float


@dataclass
class RunRecord:
    """What a comparison keeps of a finished run (a ``FitResult`` serves as well)."""

    test: FunnelMetrics
    samples_per_s: float
    best_epoch: float


@dataclass
class Comparison:
    """Runs of ``models`` x ``seeds``: ``runs[model][i]`` was trained with ``seeds[i]``."""

    steps: tuple[str, ...]
    seeds: tuple[int, ...]
    runs: dict[str, list[FitResult | RunRecord]]

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Comparison:
        """The comparison that ``to_dict`` wrote (runs as ``RunRecord``), e.g. to add models."""
        steps = tuple(payload["steps"])
        runs = {}
        for entry in payload["models"]:
            runs[entry["model"]] = [
                RunRecord(
                    test=FunnelMetrics(
                        steps=steps,
                        auc={s: _number(entry["auc"][s][i]) for s in steps},
                        conditional_auc={
                            s: _number(v[i]) for s, v in entry["conditional_auc"].items()
                        },
                        logloss={s: _number(entry["logloss"][s][i]) for s in steps},
                        violation_rate=entry["violation_rate"][i],
                    ),
                    samples_per_s=entry["samples_per_s"][i],
                    best_epoch=entry["best_epoch"][i],
                )
                for i in range(len(entry["seeds"]))
            ]
        return cls(steps=steps, seeds=tuple(payload["seeds"]), runs=runs)

    def test_auc(self, model: str, step: str) -> list[float]:
        return [run.test.auc[step] for run in self.runs[model]]

    def summary(self, model: str) -> ModelSummary:
        runs = self.runs[model]
        means = {s: statistics.fmean(self.test_auc(model, s)) for s in self.steps}
        stds = {
            s: statistics.stdev(self.test_auc(model, s)) if len(runs) > 1 else 0.0
            for s in self.steps
        }
        gain = None
        if REFERENCE_MODEL in self.runs:
            reference = {s: statistics.fmean(self.test_auc(REFERENCE_MODEL, s)) for s in self.steps}
            gain = {s: 100.0 * (means[s] - reference[s]) / reference[s] for s in self.steps}
        best_other, p_value = {}, {}
        others = [m for m in self.runs if m != model]
        for s in self.steps:
            if not others:
                best_other[s], p_value[s] = "", math.nan
                continue
            rival = max(others, key=lambda m: statistics.fmean(self.test_auc(m, s)))
            best_other[s] = rival
            p_value[s] = paired_t_test(self.test_auc(model, s), self.test_auc(rival, s))[1]
        violations = [run.test.violation_rate for run in runs]
        return ModelSummary(
            auc_mean=means,
            auc_std=stds,
            gain_pct=gain,
            p_value=p_value,
            best_other=best_other,
            violation_rate_mean=None if None in violations else statistics.fmean(violations),
            samples_per_s_mean=statistics.fmean(run.samples_per_s for run in runs),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: one entry per model with per-seed lists and the summary."""

        def finite(value: float | None) -> float | None:
            return None if value is None or math.isnan(value) else value

        entries = []
        for model, runs in self.runs.items():
            summary = dataclasses.asdict(self.summary(model))
            summary["p_value"] = {k: finite(v) for k, v in summary["p_value"].items()}
            tests = [run.test.to_dict() for run in runs]
            entries.append(
                {
                    "model": model,
                    "seeds": list(self.seeds),
                    "auc": {s: [t["auc"][s] for t in tests] for s in self.steps},
                    "conditional_auc": {
                        s: [t["conditional_auc"][s] for t in tests] for s in self.steps[1:]
                    }
                    if tests[0]["conditional_auc"]
                    else {},
                    "logloss": {s: [t["logloss"][s] for t in tests] for s in self.steps},
                    "violation_rate": [t["violation_rate"] for t in tests],
                    "samples_per_s": [run.samples_per_s for run in runs],
                    "best_epoch": [run.best_epoch for run in runs],
                    **summary,
                }
            )
        return {"steps": list(self.steps), "seeds": list(self.seeds), "models": entries}


def fit_seed(
    name: str,
    hparams: dict[str, Any],
    splits: FunnelSplits,
    config: TrainConfig,
    seed: int,
    *,
    progress: bool = False,
) -> tuple[FunnelModel, FitResult]:
    """Seed every generator, build ``name`` with ``hparams`` and fit it with ``config`` under
    ``seed``; return the model (its best validation weights) and the result. Every line the
    run reports starts with ``"<name> seed <seed>: "`` (``progress``: as in ``fit``)."""
    seed_everything(seed)
    model = build_model(name, splits.schema, **hparams)
    config = dataclasses.replace(config, seed=seed)
    return model, fit(model, splits, config, progress=progress, label=f"{name} seed {seed}")


def run_directory(root: str | Path, name: str, seed: int) -> Path:
    """Where ``compare`` keeps the checkpoints of model ``name`` with ``seed``."""
    return Path(root) / f"{name}-seed{seed}"


def compare(
    models: Sequence[str],
    seeds: Sequence[int],
    splits: FunnelSplits,
    config: TrainConfig,
    hparams: dict[str, dict[str, Any]],
    *,
    checkpoint_root: str | Path | None = None,
    progress: bool = False,
) -> Comparison:
    """Train every model with every seed on the same splits and test each at its best epoch.

    Args:
        hparams: model name -> keyword arguments of ``build_model`` (missing: defaults).
        checkpoint_root: if set, run (m, s) keeps its checkpoints in ``root/m-seed{s}``.
        progress: as in ``fit``; every line names its model and seed.
    """
    runs: dict[str, list[FitResult]] = {}
    for name in models:
        runs[name] = []
        for seed in seeds:
            directory = None
            if checkpoint_root is not None:
                directory = str(run_directory(checkpoint_root, name, seed))
            run_config = dataclasses.replace(config, checkpoint_dir=directory)
            _, result = fit_seed(
                name, hparams.get(name, {}), splits, run_config, seed, progress=progress
            )
            runs[name].append(result)
    return Comparison(steps=splits.schema.steps, seeds=tuple(seeds), runs=runs)
