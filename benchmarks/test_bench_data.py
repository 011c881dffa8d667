"""Data-layer throughput on the CPU: rows/s of the generator, the CSV converter, the cache
reload and ``BatchLoader``.

- ``make_funnel``: 10^6 rows, 16 fields, 2 steps;
- ``convert``: a 10^6-row CSV in the 20-column Ali-CCP/AITM shape (2 labels, 18 skewed id
  fields, written once per session) through ``load_table`` into a fresh cache entry;
- ``reload``: the same call once the entry exists (memory-mapped), plus reading every id;
- ``batches``: one shuffled epoch of ``BatchLoader`` at batch 65,536 over 10^6 rows.

Results land in ``extra_info["samples_per_s"]`` (rows/s).
"""

from __future__ import annotations

import itertools
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from apem.data import BatchLoader, load_table, make_funnel
from benchmarks import harness

ROWS = 1_000_000
BATCH = 65_536
FIELDS = ("101", "121", "122", "124", "125", "126", "127", "128", "129", "205", "206", "207",
          "216", "508", "509", "702", "853", "301")  # fmt: skip
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def aitm_csv(tmp_path_factory) -> str:
    """A 10^6-row CSV: click 4 %, purchase 0.5 %, ids Zipf-distributed up to 10^5."""
    rng = np.random.default_rng(0)
    click = rng.random(ROWS) < 0.04
    frame = pd.DataFrame(
        {
            "click": click.astype(np.int8),
            "purchase": (click & (rng.random(ROWS) < 0.125)).astype(np.int8),
        }
    )
    for name in FIELDS:
        frame[name] = np.minimum(rng.zipf(1.3, ROWS), 100_000)
    path = str(tmp_path_factory.mktemp("bench_data") / "aitm.csv")
    frame.to_csv(path, index=False)
    return path


def test_make_funnel(benchmark):
    harness.measure(
        benchmark, lambda: make_funnel(ROWS, seed=0), device=CPU, samples=ROWS, op="make_funnel"
    )


def test_convert_csv(benchmark, aitm_csv, tmp_path):
    fresh = itertools.count()

    def convert() -> object:
        cache = tmp_path / f"cache{next(fresh)}"
        splits = load_table(aitm_csv, ["click", "purchase"], cache_dir=str(cache))
        shutil.rmtree(cache)
        return splits

    harness.measure(benchmark, convert, device=CPU, samples=ROWS, op="convert_csv")


def test_reload_from_cache(benchmark, aitm_csv, tmp_path):
    load_table(aitm_csv, ["click", "purchase"], cache_dir=str(tmp_path))

    def reload() -> int:
        splits = load_table(aitm_csv, ["click", "purchase"], cache_dir=str(tmp_path))
        return sum(
            int(np.asarray(part.ids).sum()) for part in (splits.train, splits.valid, splits.test)
        )

    harness.measure(benchmark, reload, device=CPU, samples=ROWS, op="reload_cache")


def test_batch_loader_epoch(benchmark):
    loader = BatchLoader(make_funnel(ROWS, seed=0), BATCH, shuffle=True)

    def epoch() -> int:
        return sum(len(batch) for batch in loader)

    harness.measure(benchmark, epoch, device=CPU, samples=ROWS, op="batch_loader", batch=BATCH)
