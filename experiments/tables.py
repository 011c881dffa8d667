"""Funnels as a user brings them: CSV files of named columns, read by ``apem train --data
PATH.csv --labels ...`` with its default settings. Two are drawn by generators of our own (not
``apem.data``'s), one is cut from the census file.

- ``table-shop``: impressions of a shop, click -> cart -> order; 9 categorical columns of
  4-400 values; each step's conditional logit adds per-value effects (a part shared by the
  steps, a part of its own) and two products of per-value factors (segment × category,
  hour × device), so the later steps weigh other columns than the first.
- ``table-delivery``: a food-delivery funnel, click -> order; 5 categorical and 4 numerical
  columns (price, distance, rating, past orders) passed as ``--dense`` (log-round buckets); the
  order logit peaks at a price per cuisine and falls off past a distance that depends on the
  hour, effects an additive model of the raw numbers cannot express.
- ``table-census3``: the census funnel with a third step, work -> income 50000+ -> dividends
  (income 50000+ and dividends from stocks > 0); the 38 feature columns of
  ../shared/data/README.md by position name (``c0`` ...), every one categorical, and the rows
  with income but no work dropped by the loader (``drop_inconsistent``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from apem.data import FunnelSplits, load_source
from apem.data.sources.census import (
    COLUMNS,
    EMPLOYER_SIZE,
    INCOME,
    INCOME_VALUES,
    WEEKS_WORKED,
    WEIGHT,
)

TABLE_STEPS = {
    "table-shop": ("click", "cart", "order"),
    "table-delivery": ("click", "order"),
    "table-census3": ("work", "income", "dividends"),
}
TABLE_DENSE = {"table-delivery": ("price", "distance", "rating", "past_orders")}
TABLE_OPTIONS = {"table-census3": {"drop_inconsistent": True}}
GENERATED_ROWS = 60_000  # the generated tables' default size
# The shop's columns each step weighs more (1.2 instead of 0.5): click leans on category, hour
# and channel, cart on price and promo, order on brand and promo.
SHOP_LEANS = (("category", "hour", "channel"), ("price_band", "promo"), ("brand", "promo"))
DIVIDENDS = "c18"  # census: dividends from stocks


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _calibrated(logit: np.ndarray, rate: float) -> np.ndarray:
    """``logit`` shifted (bisection) so that its mean sigmoid is ``rate``."""
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _sigmoid(logit + mid).mean() < rate else (lo, mid)
    return logit + (lo + hi) / 2


def _funnel(rng: np.random.Generator, logits: list[np.ndarray], rates: list[float]) -> np.ndarray:
    """(n, steps) 0/1 labels: step i happens with probability sigmoid(logit_i) given step i-1,
    each logit shifted so that sigmoid(logit_i) averages ``rates[i]`` over all rows (over the
    rows that reach step i-1 it is higher where the steps' logits are correlated)."""
    n = logits[0].shape[0]
    labels = np.zeros((n, len(logits)), dtype=np.int64)
    alive = np.ones(n, dtype=bool)
    for i, (logit, rate) in enumerate(zip(logits, rates, strict=True)):
        alive &= rng.random(n) < _sigmoid(_calibrated(logit, rate))
        labels[:, i] = alive
    return labels


def _categorical(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``n`` draws of ``size`` values with a Zipf-like popularity."""
    weights = 1.0 / np.arange(1, size + 1) ** 1.05
    return rng.choice(size, size=n, p=weights / weights.sum())


def shop_table(rows: int, seed: int = 0) -> pd.DataFrame:
    """The ``table-shop`` funnel: (rows, 9 features + 3 labels)."""
    rng = np.random.default_rng(seed)
    sizes = {
        "segment": 40, "category": 120, "brand": 400, "price_band": 8, "hour": 24,
        "device": 4, "region": 30, "channel": 6, "promo": 3,
    }  # fmt: skip
    values = {name: _categorical(rng, rows, size) for name, size in sizes.items()}
    logits = []
    shared = {name: rng.normal(0, 0.5, size) for name, size in sizes.items()}
    for leans in SHOP_LEANS:
        weight = {name: 1.2 if name in leans else 0.5 for name in sizes}
        logit = np.zeros(rows)
        for name, size in sizes.items():
            own = rng.normal(0, 0.5, size)
            logit += weight[name] * (shared[name] + own)[values[name]]
        for a, b in (("segment", "category"), ("hour", "device")):
            fa, fb = rng.normal(0, 0.7, (sizes[a], 3)), rng.normal(0, 0.7, (sizes[b], 3))
            logit += (fa[values[a]] * fb[values[b]]).sum(axis=1)
        logits.append(logit)
    labels = _funnel(rng, logits, [0.25, 0.35, 0.5])
    table = pd.DataFrame({name: [f"{name[:3]}{v}" for v in col] for name, col in values.items()})
    for step, name in enumerate(TABLE_STEPS["table-shop"]):
        table[name] = labels[:, step]
    return table


def delivery_table(rows: int, seed: int = 0) -> pd.DataFrame:
    """The ``table-delivery`` funnel: (rows, 5 categorical + 4 numerical features + 2 labels)."""
    rng = np.random.default_rng(seed + 1)
    cuisine = _categorical(rng, rows, 25)
    city = _categorical(rng, rows, 12)
    hour = rng.integers(0, 24, rows)
    weekday = rng.integers(0, 7, rows)
    user_tier = _categorical(rng, rows, 5)
    price = np.round(rng.lognormal(2.8, 0.5, rows), 2)
    distance = np.round(rng.exponential(3.0, rows), 2)
    rating = np.round(np.clip(rng.normal(4.2, 0.4, rows), 1.0, 5.0), 1)
    past_orders = rng.poisson(3.0 * (user_tier + 1) / 3, rows)
    effect = {size: rng.normal(0, 0.6, size) for size in (25, 12, 24, 7, 5)}
    base = (
        effect[25][cuisine] + effect[12][city] + effect[24][hour] + effect[7][weekday]
        + effect[5][user_tier]
    )  # fmt: skip
    click = base + 1.5 * (rating - 4.2) + 0.3 * np.log1p(past_orders)
    ideal = np.exp(rng.normal(2.8, 0.3, 25))[cuisine]  # the price each cuisine sells best at
    reach = np.where((hour >= 18) & (hour <= 22), 6.0, 3.0)  # farther in the evening
    order = (
        0.6 * base - 2.0 * np.log(price / ideal) ** 2 - 1.5 * np.maximum(distance - reach, 0)
        + 0.8 * np.log1p(past_orders)
    )  # fmt: skip
    labels = _funnel(rng, [click, order], [0.2, 0.3])
    table = pd.DataFrame(
        {
            "cuisine": [f"cu{v}" for v in cuisine], "city": [f"city{v}" for v in city],
            "hour": hour, "weekday": weekday, "user_tier": [f"tier{v}" for v in user_tier],
            "price": price, "distance": distance, "rating": rating, "past_orders": past_orders,
        }
    )  # fmt: skip
    table["click"], table["order"] = labels[:, 0], labels[:, 1]
    return table


def census3_table(path: str) -> pd.DataFrame:
    """The ``table-census3`` funnel from the census file at ``path``: 99,762 rows, the columns
    named as ``apem.data``'s census loader names them."""
    raw = pd.read_csv(
        path, header=None, names=COLUMNS, skipinitialspace=True, dtype=str, keep_default_na=False
    )
    work = pd.to_numeric(raw[WEEKS_WORKED]) > 0
    income = raw[INCOME] == INCOME_VALUES[1]
    dividends = income & (pd.to_numeric(raw[DIVIDENDS]) > 0)
    # Dropped: the instance weight, the columns that define (or leak) a step, and the labels.
    table = raw.drop(columns=[WEIGHT, WEEKS_WORKED, EMPLOYER_SIZE, INCOME, DIVIDENDS])
    return table.assign(work=work.astype(int), income=income.astype(int),
                        dividends=dividends.astype(int))  # fmt: skip


def table_splits(
    name: str, rows: int | None, census_path: str, cache_dir: str | None = None
) -> FunnelSplits:
    """Write table ``name`` as a CSV and read it back as ``apem train --data PATH.csv
    --labels ... [--dense ...]`` does, with the loader's defaults (split seed 0, 80/10/10);
    ``rows``: the generated tables' size (default ``GENERATED_ROWS``; the census table has its
    own)."""
    if name == "table-census3":
        table = census3_table(census_path)
    else:
        make = {"table-shop": shop_table, "table-delivery": delivery_table}[name]
        table = make(rows or GENERATED_ROWS)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{name}.csv"
        table.to_csv(path, index=False)
        return load_source(
            str(path),
            labels=TABLE_STEPS[name],
            dense=TABLE_DENSE.get(name, ()),
            cache_dir=cache_dir,
            **TABLE_OPTIONS.get(name, {}),
        )
