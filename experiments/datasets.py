"""The datasets of the model comparison, built at a preset's scale: the synthetic funnels of
``apem.data``, the census funnel, and the user-style CSV tables of ``experiments.tables``."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from apem.data import FunnelData, FunnelSplits, load_census_funnel, synthetic_splits
from experiments.tables import TABLE_STEPS, table_splits

CENSUS_PATH = os.environ.get(
    "APEM_CENSUS",
    str(Path(__file__).resolve().parents[2] / "shared/data/census-income/census-income.test.gz"),
)
FUNNEL_4_STEPS = ("click", "authorize", "conversion")
PAPER_DATASETS = ("synthetic2", "synthetic4", "census")  # the paper's experiments' stand-ins
DATASETS = (*PAPER_DATASETS, *TABLE_STEPS)
DESCRIPTIONS = {
    "synthetic2": "synthetic 2-step funnel (click 20 % -> conversion 5 %; 16 fields, seed 0, "
    "oracle known)",
    "synthetic4": "synthetic 4-stage funnel (impression -> click -> authorize -> conversion, the "
    "paper's Figure 1: every row is an impression, 3 predicted steps at 20 %, 10 %, 5 %; "
    "16 fields, seed 0, oracle known)",
    "census": "census funnel (work -> income 50000+), ../shared/data/README.md split",
    "table-shop": "CSV table of a shop (click 25 % -> cart 10 % -> order 6 %; 9 categorical "
    "columns), our own generator, read as `apem train --data PATH.csv --labels click,cart,order`",
    "table-delivery": "CSV table of food delivery (click 20 % -> order 7 %; 5 categorical and 4 "
    "numerical columns), our own generator, read with `--dense price,distance,rating,past_orders`",
    "table-census3": "CSV table of the census file as a 3-step funnel (work 52 % -> income 50000+ "
    "6 % -> dividends 2.5 %; 37 columns by position, `--data-option drop_inconsistent=true`)",
}
STEPS = {"synthetic2": 2, "synthetic4": 3}
# Denser than Ali-CCP's 4 % / 0.5 % so that a reduced-row run still has hundreds of positive
# test labels in the last step; the same rates at every scale.
RATES = {"synthetic2": (0.2, 0.05), "synthetic4": (0.2, 0.1, 0.05)}


def _head(data: FunnelData, rows: int) -> FunnelData:
    oracle = None if data.oracle is None else data.oracle[:rows]
    dense = None if data.dense is None else data.dense[:rows]
    return FunnelData(data.schema, data.ids[:rows], data.labels[:rows], dense=dense, oracle=oracle)


def _renamed(splits: FunnelSplits, steps: tuple[str, ...]) -> FunnelSplits:
    schema = dataclasses.replace(splits.schema, steps=steps)
    parts = (
        dataclasses.replace(s, schema=schema) for s in (splits.train, splits.valid, splits.test)
    )
    return FunnelSplits(*parts, metadata=splits.metadata)


def load_dataset(name: str, rows: int | None) -> FunnelSplits:
    """Splits of dataset ``name`` (one of ``DATASETS``).

    Synthetic: ``rows`` rows generated with seed 0 and cut 80/10/10. Census: the fixed split
    of ../shared/data/README.md, each split cut to its first ``rows`` rows when ``rows`` is
    set (smoke runs only). Tables: written as CSV and read back (``table_splits``).
    """
    if name in STEPS:
        if rows is None:
            raise ValueError(f"{name} needs a row count")
        splits = synthetic_splits(
            rows, num_fields=16, num_steps=STEPS[name], seed=0, base_rates=RATES[name]
        )
        return _renamed(splits, FUNNEL_4_STEPS) if name == "synthetic4" else splits
    if name in TABLE_STEPS:
        return table_splits(name, rows, CENSUS_PATH)
    if name == "census":
        splits = load_census_funnel(CENSUS_PATH)
        if rows is None:
            return splits
        parts = (_head(s, rows) for s in (splits.train, splits.valid, splits.test))
        return FunnelSplits(*parts, metadata=splits.metadata)
    raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
