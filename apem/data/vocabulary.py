"""Per-field vocabularies fitted on a training split: raw value -> id, id 0 = out of vocabulary."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from apem.data.bucketing import log_round
from apem.data.errors import DataError
from apem.data.reading import Chunk, categorical, numeric


class Vocabulary:
    """The fitted value -> id maps of every categorical field of a dataset.

    ``values[f][k]`` is the raw value (a string) that has id ``k + 1`` in field ``fields[f]``;
    ids run in order of decreasing training frequency (ties by value), and any other value
    maps to the field's out-of-vocabulary id 0. Fields listed in ``bucketed`` are numerical
    columns whose values are log-round buckets (``apem.data.bucketing.log_round``): ``encode``
    buckets them before the lookup.
    """

    def __init__(
        self,
        fields: Sequence[str],
        values: Sequence[Sequence[str]],
        bucketed: Sequence[str] = (),
    ) -> None:
        if len(fields) != len(values):
            raise ValueError(f"Vocabulary: {len(fields)} fields but {len(values)} value lists")
        self.fields = tuple(fields)
        self.values = [list(v) for v in values]
        self.bucketed = tuple(bucketed)
        self._index: list[pd.Index] | None = None

    @property
    def sizes(self) -> tuple[int, ...]:
        """Vocabulary size of each field, out-of-vocabulary id included."""
        return tuple(len(v) + 1 for v in self.values)

    def encode(self, frame: pd.DataFrame | pa.Table) -> np.ndarray:
        """Ids of the fields of ``frame`` (n rows holding at least every field as a column).

        Values outside the vocabulary map to 0, so the result always indexes the embedding
        tables safely. Returns (n, num_fields) int64.

        Raises:
            DataError: a field column is missing, or a cell is empty/NaN (non-numeric or not
                finite in a bucketed field).
        """
        table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame)
        missing = [f for f in self.fields if f not in table.column_names]
        if missing:
            raise DataError("missing column", column=missing[0])
        columns = {f: table.column(f).combine_chunks() for f in self.fields}
        return self.encode_chunk(Chunk("<frame>", 1, columns))

    def encode_chunk(self, chunk: Chunk) -> np.ndarray:
        """(m, num_fields) int64 ids of a chunk read from a file holding every field."""
        if self._index is None:
            self._index = [pd.Index(v, dtype=object) for v in self.values]
        ids = np.empty((len(chunk), len(self.fields)), np.int64)
        for f, name in enumerate(self.fields):
            if name in self.bucketed:
                raw = pa.array(log_round(numeric(chunk, name))).cast(pa.string())
            else:
                raw = categorical(chunk, name)
            ids[:, f] = self._index[f].get_indexer(raw.to_numpy(zero_copy_only=False)) + 1
        return ids

    def difference(self, other: Vocabulary) -> str | None:
        """How ``other`` maps values differently (None when both give every value the same id)."""
        if self.fields != other.fields:
            return f"fields {list(self.fields)} vs {list(other.fields)}"
        if self.bucketed != other.bucketed:
            return f"bucketed fields {list(self.bucketed)} vs {list(other.bucketed)}"
        for name, mine, theirs in zip(self.fields, self.values, other.values, strict=True):
            if mine != theirs:
                moved = sum(a != b for a, b in zip(mine, theirs, strict=False))
                moved += abs(len(mine) - len(theirs))
                return (
                    f"field {name!r}: {moved} of {max(len(mine), len(theirs))} values have "
                    f"other ids ({len(mine)} values vs {len(theirs)})"
                )
        return None

    def to_json(self) -> dict:
        return {"fields": list(self.fields), "values": self.values, "bucketed": list(self.bucketed)}

    @classmethod
    def from_json(cls, data: dict) -> Vocabulary:
        return cls(data["fields"], data["values"], data.get("bucketed", ()))

    def save(self, path: str) -> None:
        with open(path, "w") as handle:
            handle.write(
                json.dumps(self.to_json())
            )  # dumps takes json's C fast path, dump does not

    @classmethod
    def load(cls, path: str) -> Vocabulary:
        with open(path) as handle:
            return cls.from_json(json.load(handle))


def fit_vocabulary(
    fields: Sequence[str],
    uniques: Sequence[pa.Array],
    counts: Sequence[np.ndarray],
    min_count: int,
    bucketed: Sequence[str] = (),
) -> tuple[Vocabulary, list[np.ndarray]]:
    """Keep the values seen ``min_count`` times or more in training.

    Args:
        uniques: per field, the (u_f,) distinct raw values (strings) a code indexes.
        counts: per field, (u_f,) training occurrences of each code.

    Returns:
        The vocabulary, and per field the (u_f,) int32 map from code to id (0 for dropped).
    """
    values, remaps = [], []
    for field_values, field_counts in zip(uniques, counts, strict=True):
        value_rank = np.empty(len(field_values), np.int64)
        value_rank[pc.sort_indices(field_values).to_numpy()] = np.arange(len(field_values))
        kept = np.flatnonzero(field_counts >= min_count)
        kept = kept[np.lexsort((value_rank[kept], -field_counts[kept]))]
        remap = np.zeros(len(field_values), np.int32)
        remap[kept] = np.arange(1, kept.size + 1, dtype=np.int32)
        values.append(field_values.take(pa.array(kept)).to_pylist())
        remaps.append(remap)
    return Vocabulary(fields, values, bucketed), remaps
