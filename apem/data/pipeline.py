"""From files to cached splits: the conversion every file loader shares.

A loader names its files, how to read them into ``Chunk``s, how to turn a chunk into labels and
feature columns (``parse``), and how to split the rows; ``build_splits`` does the rest: encodes
the categorical columns with one ``CategoricalEncoder``, fits the vocabularies on the training
rows, writes the splits into the cache and memory-maps them back.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from apem.data import cache
from apem.data.bucketing import log_round
from apem.data.encoding import CategoricalEncoder, count_codes
from apem.data.reading import (
    Chunk,
    binary,
    categorical,
    check_funnel,
    float32_column,
    funnel_violations,
    numeric,
)
from apem.data.schema import FunnelSplits, Schema
from apem.data.spool import Spool
from apem.data.vocabulary import fit_vocabulary

WRITE_BLOCK_ROWS = 1 << 20


@dataclass(frozen=True)
class Layout:
    """Which columns of a table are labels and features.

    Attributes:
        steps: label columns in funnel order.
        fields: categorical feature columns (output column order of the id matrix), including
            the ``bucketed`` ones.
        bucketed: numerical columns turned into categorical fields by log-round.
        dense: numerical columns kept as raw float32 features.
        sequential: whether the labels form a funnel.
    """

    steps: tuple[str, ...]
    fields: tuple[str, ...]
    bucketed: tuple[str, ...] = ()
    dense: tuple[str, ...] = ()
    sequential: bool = True

    @property
    def columns(self) -> tuple[str, ...]:
        return self.steps + self.fields + self.dense

    def schema(self, vocab_sizes: Sequence[int]) -> Schema:
        return Schema(self.fields, tuple(vocab_sizes), self.steps, self.dense, self.sequential)


@dataclass
class Parsed:
    """A chunk turned into model inputs.

    Attributes:
        labels: (m, num_steps) uint8.
        fields: one (m,) string array per categorical field.
        dense: (m, num_dense) float32.
        dropped: rows of the chunk left out (funnel violations dropped on request).
    """

    labels: np.ndarray
    fields: list[pa.Array]
    dense: np.ndarray
    dropped: int = 0


def keep_rows(parsed: Parsed, keep: np.ndarray) -> Parsed:
    """``parsed`` restricted to the rows where ``keep`` (m,) is True."""
    mask = pa.array(keep)
    return Parsed(
        parsed.labels[keep],
        [column.filter(mask) for column in parsed.fields],
        parsed.dense[keep],
        parsed.dropped + int((~keep).sum()),
    )


def parse_columns(chunk: Chunk, layout: Layout, drop_inconsistent: bool = False) -> Parsed:
    """The parse of a table whose columns are the layout's: labels, fields, dense columns."""
    labels = np.stack([binary(chunk, step) for step in layout.steps], axis=1)
    fields = [
        pa.array(log_round(numeric(chunk, name))).cast(pa.string())
        if name in layout.bucketed
        else categorical(chunk, name)
        for name in layout.fields
    ]
    dense = np.empty((len(chunk), len(layout.dense)), np.float32)
    for d, name in enumerate(layout.dense):
        dense[:, d] = float32_column(chunk, name)
    parsed = Parsed(labels, fields, dense)
    if layout.sequential:
        if not drop_inconsistent:
            check_funnel(chunk, labels, layout.steps)
        else:
            parsed = keep_rows(parsed, ~funnel_violations(labels))
    return parsed


Splitter = Callable[[Sequence[int]], tuple[np.ndarray, np.ndarray, np.ndarray]]


def by_file(assignment: Sequence[int]) -> Splitter:
    """Split by file: file ``i``'s rows go to split ``assignment[i]`` (0 train, 1 valid, 2 test)."""

    def split(rows_per_file: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        bounds = np.r_[0, np.cumsum(rows_per_file)]
        parts = [[], [], []]
        for i, target in enumerate(assignment):
            parts[target].append(np.arange(bounds[i], bounds[i + 1]))
        return tuple(np.concatenate(p) if p else np.zeros(0, np.int64) for p in parts)

    return split


def build_splits(
    name: str,
    files: Sequence[str],
    layout: Layout,
    read: Callable[[str], Iterable[Chunk]],
    parse: Callable[[Chunk], Parsed],
    split: Splitter,
    *,
    min_count: int,
    options: dict,
    cache_dir: str | None,
) -> FunnelSplits:
    """Convert ``files`` (or reuse their cache entry) into memory-mapped splits.

    ``options`` must hold every argument that changes the result: it keys the cache entry.
    """
    files = [os.fspath(f) for f in files]
    path = cache.entry_path(name, files, {**options, "min_count": min_count}, cache_dir)
    if not os.path.isdir(path):
        cache.make_root(os.path.dirname(path))
        with cache.building(path) as scratch:
            _convert(scratch, name, files, layout, read, parse, split, min_count, options)
    splits = cache.load_splits(path)
    dropped = splits.metadata.get("dropped_inconsistent", 0)
    if dropped and options.get("drop_inconsistent"):
        warnings.warn(
            f"{name}: dropped {dropped} rows with a later step 1 after an earlier step 0",
            stacklevel=3,
        )
    return splits


def _convert(scratch, name, files, layout, read, parse, split, min_count, options) -> None:
    encoder = CategoricalEncoder(len(layout.fields), os.path.join(scratch, "codes.bin"))
    labels = Spool(os.path.join(scratch, "labels.bin"), np.uint8, len(layout.steps))
    dense = Spool(os.path.join(scratch, "dense.bin"), np.float32, len(layout.dense))
    rows_per_file, dropped = [], 0
    try:
        for file in files:
            before = labels.rows
            for chunk in read(file):
                parsed = parse(chunk)
                encoder.append(parsed.fields)
                labels.append(parsed.labels)
                dense.append(parsed.dense)
                dropped += parsed.dropped
            rows_per_file.append(labels.rows - before)
    except BaseException:
        for spool in (encoder, labels, dense):
            spool.remove()
        raise
    codes, uniques = encoder.finish()
    label_rows, dense_rows = labels.array(), dense.array()
    parts = dict(zip(cache.SPLITS, split(rows_per_file), strict=True))
    counts = count_codes(codes, parts["train"], [len(u) for u in uniques])
    vocab, remaps = fit_vocabulary(layout.fields, uniques, counts, min_count, layout.bucketed)
    for split_name, rows in parts.items():
        _write_split(scratch, split_name, rows, codes, remaps, label_rows, dense_rows, layout)
    meta = {
        "source": name,
        "files": [os.path.abspath(f) for f in files],
        "rows_per_file": rows_per_file,
        "dropped_inconsistent": dropped,
        "min_count": min_count,
        "options": options,
    }
    cache.write_schema(scratch, layout.schema(vocab.sizes), vocab, meta)
    del codes, label_rows, dense_rows
    for spool in (encoder, labels, dense):
        spool.remove()


def _write_split(scratch, split_name, rows, codes, remaps, labels, dense, layout) -> None:
    ids_out = cache.open_array(scratch, split_name, "ids", np.int32, (rows.size, len(remaps)))
    labels_out = cache.open_array(
        scratch, split_name, "labels", np.uint8, (rows.size, labels.shape[1])
    )
    dense_out = None
    if layout.dense:
        dense_out = cache.open_array(
            scratch, split_name, "dense", np.float32, (rows.size, dense.shape[1])
        )
    for start in range(0, rows.size, WRITE_BLOCK_ROWS):
        block = rows[start : start + WRITE_BLOCK_ROWS]
        stop = start + block.size
        raw = np.asarray(codes[block])
        for f, remap in enumerate(remaps):
            ids_out[start:stop, f] = remap[raw[:, f]]
        labels_out[start:stop] = labels[block]
        if dense_out is not None:
            dense_out[start:stop] = dense[block]
    for array in (ids_out, labels_out, dense_out):
        if array is not None:
            array.flush()
