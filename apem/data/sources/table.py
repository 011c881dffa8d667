"""Generic CSV / Parquet funnel tables: the user names the label columns in funnel order."""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import partial

from apem.data.errors import DataError
from apem.data.pipeline import Layout, build_splits, parse_columns
from apem.data.reading import read_chunks
from apem.data.schema import FunnelSplits
from apem.data.splitting import permutation_split


def table_columns(path: str) -> list[str]:
    """Column names of a CSV (header line) or Parquet file."""
    chunk = next(iter(read_chunks(path, block_bytes=1 << 16)))
    return list(chunk.columns)


def _check_names(labels, dense, features) -> None:
    """ValueError for a column named twice, or both a label and a feature."""
    for what, names in (("labels (--labels)", labels), ("dense (--dense)", dense)):
        twice = sorted({n for n in names if list(names).count(n) > 1})
        if twice:
            raise ValueError(f"{what} name {twice} more than once")
    both = [n for n in (*dense, *(features or ())) if n in labels]
    if both:
        raise ValueError(f"{both} cannot be both a label (--labels) and a feature")


def load_table(
    path: str,
    labels: Sequence[str],
    *,
    features: Sequence[str] | None = None,
    dense: Sequence[str] = (),
    dense_mode: str = "bucket",
    sequential: bool = True,
    seed: int = 0,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    drop_inconsistent: bool = False,
    min_count: int = 1,
    cache_dir: str | None = None,
) -> FunnelSplits:
    """Load a CSV (header line, optionally ``.gz``) or Parquet table of one row per sample.

    Args:
        labels: the label columns in funnel order (values 0/1).
        features: feature columns (default: every column that is not a label); each is
            categorical (its trimmed string is the value) unless it is in ``dense``.
        dense: numerical feature columns; ``dense_mode="bucket"`` turns each into a categorical
            field by log-round (DESIGN.md §2), ``"raw"`` keeps it as a float32 column of
            ``FunnelData.dense``.
        sequential: the labels form a funnel (checked on every row); False for independent tasks.
        seed, valid_fraction, test_fraction: the permutation split (``permutation_split``).
        drop_inconsistent: drop rows with a step 1 after a step 0 instead of raising; the
            count is warned about and kept in ``metadata["dropped_inconsistent"]``.
        min_count: values seen fewer times in the training split map to the OOV id 0.
        cache_dir: root of the cache (``apem.data.cache``).

    Raises:
        DataError: for any bad input, naming file, line and column.
    """
    path = os.fspath(path)
    header = table_columns(path)
    labels, dense = tuple(labels), tuple(dense)
    _check_names(labels, dense, features)
    if features is None:
        features = tuple(c for c in header if c not in labels)
    for column in (*labels, *features):
        if column not in header:
            raise DataError("missing column", file=path, row=1, column=column)
    if dense_mode not in ("bucket", "raw"):
        raise ValueError(f"dense_mode must be 'bucket' or 'raw', got {dense_mode!r}")
    unknown = [c for c in dense if c not in features]
    if unknown:
        raise ValueError(f"dense columns {unknown} are not feature columns")
    raw = dense if dense_mode == "raw" else ()
    layout = Layout(
        steps=labels,
        fields=tuple(c for c in features if c not in raw),
        bucketed=dense if dense_mode == "bucket" else (),
        dense=raw,
        sequential=sequential,
    )
    options = {
        "layout": layout.__dict__,
        "seed": seed,
        "valid_fraction": valid_fraction,
        "test_fraction": test_fraction,
        "drop_inconsistent": drop_inconsistent,
    }
    return build_splits(
        "table-" + os.path.basename(path).split(".")[0],
        [path],
        layout,
        read=partial(read_chunks, expected=None),
        parse=partial(parse_columns, layout=layout, drop_inconsistent=drop_inconsistent),
        split=lambda rows: permutation_split(sum(rows), seed, valid_fraction, test_fraction),
        min_count=min_count,
        options=options,
        cache_dir=cache_dir,
    )
