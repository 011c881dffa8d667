"""New tables encoded with a fitted vocabulary: what ``predict`` and ``eval --input`` score.

The file goes through the reader training uses (``read_chunks``: cells as typed text, no
type guessing, so ``07`` stays ``07`` and ``NA`` is a category), and every cell is checked as
in training; values outside the vocabulary get the OOV id 0.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from apem.data.errors import DataError
from apem.data.reading import binary, check_funnel, float32_column, read_chunks
from apem.data.schema import FunnelData, Schema
from apem.data.vocabulary import Vocabulary


@dataclass
class EncodedTable:
    """A table encoded for a model.

    Attributes:
        data: the rows as ``FunnelData`` (labels all 0 when the table has none).
        has_labels: whether the labels came from the table.
        oov_rate: per field, the share of its cells outside the vocabulary.
        kept: the columns asked for by ``keep``, as read (strings for CSV), in that order.
    """

    data: FunnelData
    has_labels: bool
    oov_rate: dict[str, float]
    kept: dict[str, pa.ChunkedArray] = field(default_factory=dict)


def encode_table(
    path: str,
    vocab: Vocabulary,
    schema: Schema,
    *,
    labels: bool | None = None,
    keep: Sequence[str] = (),
) -> EncodedTable:
    """Read the CSV/Parquet table ``path`` and encode it with ``vocab`` for ``schema``.

    Args:
        labels: True: the step columns must be there; False: they are ignored; None: read
            them when the table has every one of them.
        keep: further columns to return as they are (e.g. keys to join the scores back on).

    Raises:
        DataError: a missing column, or any bad cell (naming file, line and column).
    """
    path = os.fspath(path)
    ids, dense, label_rows = [], [], []
    kept: dict[str, list[pa.Array]] = {}
    for chunk in read_chunks(path):
        if not ids:
            header = list(chunk.columns)
            if labels is None:
                labels = all(step in header for step in schema.steps)
            needed = [*vocab.fields, *schema.dense, *(schema.steps if labels else ())]
            missing = [c for c in needed if c not in header]
            if missing:
                raise DataError(
                    f"missing column (the checkpoint's model reads {needed})",
                    file=path,
                    row=1,
                    column=missing[0],
                )
            absent = [c for c in keep if c not in header]
            if absent:
                raise DataError(
                    "missing column (asked to keep it)", file=path, row=1, column=absent[0]
                )
        for name in keep:
            kept.setdefault(name, []).append(chunk.columns[name])
        ids.append(vocab.encode_chunk(chunk))
        values = np.empty((len(chunk), schema.num_dense), np.float32)
        for d, name in enumerate(schema.dense):
            values[:, d] = float32_column(chunk, name)
        dense.append(values)
        if labels:
            rows = np.stack([binary(chunk, step) for step in schema.steps], axis=1)
            if schema.sequential:
                check_funnel(chunk, rows, schema.steps)
            label_rows.append(rows)
    all_ids = np.concatenate(ids)
    if labels:
        all_labels = np.concatenate(label_rows)
    else:
        all_labels = np.zeros((len(all_ids), schema.num_steps), np.uint8)
    data = FunnelData(schema, all_ids, all_labels, np.concatenate(dense) if schema.dense else None)
    oov = {name: float((all_ids[:, f] == 0).mean()) for f, name in enumerate(vocab.fields)}
    columns = {name: pa.chunked_array(kept[name]) for name in keep}
    return EncodedTable(data, bool(labels), oov, columns)
