"""The census-income funnel and MMoE's census pair, split exactly as ../shared/data/README.md says.

The file (UCI census-income test split, 99,762 lines of 42 comma+space separated fields, no
header) is read as columns ``c0`` ... ``c41``; every feature is the categorical value of its
trimmed string, and values seen fewer than 3 times in the training split map to the OOV id.
The split is ``permutation_split(n, seed=2026)`` (80/10/10) over the rows kept, in file order.
"""

from __future__ import annotations

import os
from functools import partial

import numpy as np

from apem.data.errors import DataError
from apem.data.pipeline import Layout, Parsed, build_splits, keep_rows
from apem.data.reading import Chunk, categorical, funnel_violations, numeric, read_chunks
from apem.data.schema import FunnelSplits
from apem.data.splitting import permutation_split

NUM_COLUMNS = 42
COLUMNS = tuple(f"c{i}" for i in range(NUM_COLUMNS))
WEIGHT, MARITAL, EMPLOYER_SIZE, WEEKS_WORKED, INCOME = "c24", "c7", "c30", "c39", "c41"
INCOME_VALUES = ("- 50000.", "50000+.")
SPLIT_SEED = 2026
MIN_COUNT = 3

FUNNEL = Layout(
    steps=("work", "income"),
    fields=tuple(c for c in COLUMNS if c not in (WEIGHT, EMPLOYER_SIZE, WEEKS_WORKED, INCOME)),
)
PAIR = Layout(
    steps=("income", "never_married"),
    fields=tuple(c for c in COLUMNS if c not in (WEIGHT, MARITAL, INCOME)),
    sequential=False,
)


def _income(chunk: Chunk) -> np.ndarray:
    values = categorical(chunk, INCOME).to_numpy(zero_copy_only=False)
    rich = values == INCOME_VALUES[1]
    bad = np.flatnonzero(~rich & (values != INCOME_VALUES[0]))
    if bad.size:
        raise chunk.error(
            f"income must be one of {INCOME_VALUES}, got {values[bad[0]]!r}", bad[0], INCOME
        )
    return rich.astype(np.uint8)


def _parse(chunk: Chunk, layout: Layout) -> Parsed:
    if layout is FUNNEL:
        labels = np.stack([numeric(chunk, WEEKS_WORKED) > 0, _income(chunk)], axis=1)
    else:
        marital = categorical(chunk, MARITAL).to_numpy(zero_copy_only=False)
        labels = np.stack([_income(chunk), marital == "Never married"], axis=1)
    fields = [categorical(chunk, name) for name in layout.fields]
    parsed = Parsed(labels.astype(np.uint8), fields, np.empty((len(chunk), 0), np.float32))
    if layout.sequential:
        parsed = keep_rows(parsed, ~funnel_violations(parsed.labels))
    return parsed


def _load(path: str, name: str, layout: Layout, cache_dir: str | None) -> FunnelSplits:
    path = os.fspath(path)
    if os.path.isdir(path):
        raise DataError(
            "expected the census-income file (e.g. census-income.test.gz), got a directory",
            file=path,
        )
    return build_splits(
        name,
        [path],
        layout,
        read=partial(read_chunks, names=COLUMNS),
        parse=partial(_parse, layout=layout),
        split=lambda rows: permutation_split(sum(rows), SPLIT_SEED),
        min_count=MIN_COUNT,
        options={"layout": layout.__dict__},
        cache_dir=cache_dir,
    )


def load_census_funnel(path: str, *, cache_dir: str | None = None) -> FunnelSplits:
    """The census funnel: steps ("work", "income").

    ``work`` = weeks worked in year (``c39``) > 0, ``income`` = income (``c41``) is 50000+.
    The 310 rows with income but no work are dropped (``metadata["dropped_inconsistent"]``).
    Features: the 38 columns other than ``c24`` (instance weight), ``c30`` (employer size,
    which leaks ``work``), ``c39`` and ``c41``. Splits: 79,561 / 9,945 / 9,946 rows.
    """
    return _load(path, "census-funnel", FUNNEL, cache_dir)


def load_census_pair(path: str, *, cache_dir: str | None = None) -> FunnelSplits:
    """MMoE's census pair: tasks ("income", "never_married"), independent (``sequential=False``).

    ``income`` = ``c41`` is 50000+, ``never_married`` = marital status (``c7``) is
    "Never married". No row is dropped (99,762 rows: 79,809 / 9,976 / 9,977). Features: the 39
    columns other than ``c24`` (instance weight), ``c7`` and ``c41`` (they define the labels);
    ``c30`` and ``c39`` stay, as no label depends on them here.
    """
    return _load(path, "census-pair", PAIR, cache_dir)
