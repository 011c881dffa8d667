"""Table 3 (model comparison) and Table 4 (APEM ablations): variants run by the shared runner."""

from __future__ import annotations

from typing import Any

from apem.train import Comparison, TrainConfig, oracle_metrics
from experiments.datasets import DESCRIPTIONS, load_dataset
from experiments.presets import ROWS, Preset
from experiments.runner import Variant, run_variants

ABLATIONS: dict[str, dict[str, Any]] = {
    "apem": {},
    "apem w/o dynamic selector": {"dynamic_selector": False},
    "apem w/o task indicators": {"task_indicators": False},
    "apem w/o dependence loss": {"dependence_weight": 0.0},
}


# The default's departures from the paper, each reverted on its own, and the paper variant
# (all of them reverted): the measured gain of each departure.
DEPARTURES: dict[str, dict[str, Any]] = {
    "apem": {},
    "apem w/o input norm": {"input_norm": False},
    "apem w/o score scale": {"score_scale": False},
    "apem w/ xavier init": {"init": "xavier"},
    "apem w/ towers on T only": {"tower_input": "task"},
    "apem w/ towers of 64": {"tower_hidden": [64]},
    "apem w/o output prior": {"output_prior": False},
    "apem w/ task gain 1": {"task_gain": 1.0},
    "apem_paper": {"variant": "paper"},
}
SWITCHES = {"ablations": ABLATIONS, "departures": DEPARTURES}


def model_variants(preset: Preset) -> list[Variant]:
    """Table 3's rows: every row of the preset, each with its registry model's grid."""
    variants = []
    for label in preset.models:
        model, fixed = ROWS[label]
        fixed = {**(preset.apem if model == "apem" else {}), **fixed}
        variants.append(Variant(label, model, fixed, preset.grid[model]))
    return variants


def ablation_variants(preset: Preset, switches: dict[str, dict[str, Any]]) -> list[Variant]:
    """APEM with each of ``switches`` (Table 4's ablations, or the default's departures from
    the paper), all searched over APEM's grid."""
    return [
        Variant(label, "apem", {**preset.apem, **switch}, preset.grid["apem"])
        for label, switch in switches.items()
    ]


def train_config(preset: Preset) -> TrainConfig:
    """The preset's training settings (device: CUDA when there is one)."""
    return TrainConfig(**preset.train, device="auto", progress=False)


def run_comparison(experiment: str, dataset: str, preset: Preset) -> dict[str, Any]:
    """Run ``experiment`` ("models", "ablations" or "departures") on ``dataset``; a JSON-ready
    payload."""
    if experiment == "models":
        variants = model_variants(preset)
    else:
        variants = ablation_variants(preset, SWITCHES[experiment])
    rows = preset.census_rows if dataset == "census" else preset.rows.get(dataset)
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


def merge_comparisons(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``old`` (a payload of ``run_comparison`` and its provenance) with the rows of ``new``
    added or replaced, every summary (best other model, p-value, gain) recomputed over all
    rows; ``new``'s provenance, then that of the runs merged into ``new``, is listed under
    ``"merged"``, each with the rows it made. Both must share the dataset, the
    split sizes and the seeds (the t-tests pair runs by seed)."""
    for key in ("experiment", "dataset"):
        if old[key] != new[key]:
            raise ValueError(f"cannot merge: {key} {old[key]!r} != {new[key]!r}")
    if old["scale"]["rows"] != new["scale"]["rows"]:
        raise ValueError(f"cannot merge: rows {old['scale']['rows']} != {new['scale']['rows']}")
    if old["scale"]["train"] != new["scale"]["train"]:
        trains = old["scale"]["train"], new["scale"]["train"]
        raise ValueError(f"cannot merge: training {trains[0]} != {trains[1]}")
    if old["comparison"]["seeds"] != new["comparison"]["seeds"]:
        seeds = old["comparison"]["seeds"], new["comparison"]["seeds"]
        raise ValueError(f"cannot merge: seeds {seeds[0]} != {seeds[1]}")
    comparison = Comparison.from_dict(old["comparison"])
    comparison.runs.update(Comparison.from_dict(new["comparison"]).runs)
    provenance = ("preset", "command", "machine", "torch_threads", "load_average_at_start")
    added = {k: new[k] for k in (*provenance, "date", "wall_s")}
    # rows that ``new`` had merged in itself keep the provenance of the run that made them
    later = new.get("merged", [])
    merged_later = {row for entry in later for row in entry["rows"]}
    rows = [entry["model"] for entry in new["comparison"]["models"]]
    added["rows"] = [row for row in rows if row not in merged_later]
    merged = {**old, "comparison": comparison.to_dict()}
    for key in ("grid", "fixed", "selection", "fit_seconds"):
        merged[key] = {**old[key], **new[key]}
    merged["merged"] = [*old.get("merged", []), added, *later]
    return merged
