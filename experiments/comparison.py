"""Table 3 (model comparison) and Table 4 (APEM ablations): variants run by the shared runner."""

from __future__ import annotations

from typing import Any

from apem.train import TrainConfig, oracle_metrics
from experiments.datasets import DESCRIPTIONS, load_dataset
from experiments.presets import Preset
from experiments.runner import Variant, run_variants

ABLATIONS: dict[str, dict[str, Any]] = {
    "apem": {},
    "apem w/o dynamic selector": {"dynamic_selector": False},
    "apem w/o task indicators": {"task_indicators": False},
    "apem w/o dependence loss": {"dependence_weight": 0.0},
}


def model_variants(preset: Preset) -> list[Variant]:
    """Table 3's rows: every model of the preset, each with its grid."""
    return [
        Variant(m, m, preset.apem if m == "apem" else {}, preset.grid[m]) for m in preset.models
    ]


def ablation_variants(preset: Preset) -> list[Variant]:
    """Table 4's rows: APEM and its three ablations, all searched over APEM's grid."""
    return [
        Variant(label, "apem", {**preset.apem, **switch}, preset.grid["apem"])
        for label, switch in ABLATIONS.items()
    ]


def train_config(preset: Preset) -> TrainConfig:
    """The preset's training settings (device: CUDA when there is one)."""
    return TrainConfig(**preset.train, device="auto", progress=False)


def run_comparison(experiment: str, dataset: str, preset: Preset) -> dict[str, Any]:
    """Run ``experiment`` ("models" or "ablations") on ``dataset``; a JSON-ready payload."""
    variants = model_variants(preset) if experiment == "models" else ablation_variants(preset)
    rows = preset.census_rows if dataset == "census" else preset.rows[dataset]
    splits = load_dataset(dataset, rows)
    train = train_config(preset)
    outcome = run_variants(variants, splits, preset.seeds, train)
    oracle = oracle_metrics(splits.test)
    return {
        "dataset": dataset,
        "description": DESCRIPTIONS[dataset],
        "scale": {
            "rows": {s: len(getattr(splits, s)) for s in ("train", "valid", "test")},
            "rates_test": {
                step: float(splits.test.labels[:, i].mean())
                for i, step in enumerate(splits.schema.steps)
            },
            "seeds": list(preset.seeds),
            "train": {k: getattr(train, k) for k in ("lr", "batch_size", "epochs", "patience")},
        },
        "grid": {v.label: v.grid for v in variants},
        "fixed": {v.label: v.fixed for v in variants if v.fixed},
        "selection": outcome.selection,
        "fit_seconds": outcome.fit_seconds,
        "oracle": None if oracle is None else oracle.to_dict(),
        "comparison": outcome.comparison.to_dict(),
    }
