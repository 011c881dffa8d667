"""New tables encoded with a fitted vocabulary: what ``predict`` and ``eval --input`` score.

The file goes through the reader training uses (``read_chunks``: cells as typed text, no
type guessing, so ``07`` stays ``07`` and ``NA`` is a category), and every cell is checked as
in training; values outside the vocabulary get the OOV id 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

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
    """

    data: FunnelData
    has_labels: bool
    oov_rate: dict[str, float]


def encode_table(
    path: str, vocab: Vocabulary, schema: Schema, *, labels: bool | None = None
) -> EncodedTable:
    """Read the CSV/Parquet table ``path`` and encode it with ``vocab`` for ``schema``.

    Args:
        labels: True: the step columns must be there; False: they are ignored; None: read
            them when the table has every one of them.

    Raises:
        DataError: a missing column, or any bad cell (naming file, line and column).
    """
    path = os.fspath(path)
    ids, dense, label_rows = [], [], []
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
    return EncodedTable(data, bool(labels), oov)
