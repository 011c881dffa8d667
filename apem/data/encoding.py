"""The one chunked encoder: streamed string columns -> an on-disk matrix of per-field codes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from apem.data.spool import Spool


class CategoricalEncoder:
    """Dictionary-encodes blocks of ``num_fields`` string columns into integer codes.

    Each block is encoded on its own (fast, in C); ``finish`` merges the blocks' dictionaries
    once and rewrites the spooled codes so that code ``c`` of field ``f`` means
    ``uniques[f][c]`` in every row. Memory holds only the distinct values, never the rows.
    """

    def __init__(self, num_fields: int, path: str) -> None:
        self.num_fields = num_fields
        self._spool = Spool(path, np.int32, num_fields)
        self._dictionaries: list[list[pa.Array]] = [[] for _ in range(num_fields)]
        self._block_rows: list[int] = []

    def append(self, columns: Sequence[pa.Array]) -> None:
        """Add a block: ``num_fields`` string arrays of equal length m."""
        rows = len(columns[0]) if columns else 0
        codes = np.empty((rows, self.num_fields), np.int32)
        for f, column in enumerate(columns):
            encoded = pc.dictionary_encode(column)
            codes[:, f] = encoded.indices.to_numpy(zero_copy_only=False)
            self._dictionaries[f].append(encoded.dictionary)
        self._spool.append(codes)
        self._block_rows.append(rows)

    def finish(self) -> tuple[np.ndarray, list[pa.Array]]:
        """Merge the dictionaries.

        Returns:
            codes: (n, num_fields) int32, memory-mapped from the spool file.
            uniques: per field, the (u_f,) distinct string values that codes index.
        """
        codes = self._spool.array("r+")
        bounds = np.r_[0, np.cumsum(self._block_rows)]
        uniques = []
        for f in range(self.num_fields):
            blocks = self._dictionaries[f]
            merged = pc.dictionary_encode(
                pa.concat_arrays(blocks) if blocks else pa.array([], pa.string())
            )
            global_codes = merged.indices.to_numpy(zero_copy_only=False).astype(np.int32)
            offset = 0
            for b, dictionary in enumerate(blocks):
                rows = slice(bounds[b], bounds[b + 1])
                codes[rows, f] = global_codes[offset:][codes[rows, f]]
                offset += len(dictionary)
            uniques.append(merged.dictionary)
        return codes, uniques

    def remove(self) -> None:
        """Delete the spool file."""
        self._spool.remove()


def count_codes(
    codes: np.ndarray, rows: np.ndarray, sizes: Sequence[int], block_rows: int = 1 << 20
) -> list[np.ndarray]:
    """Occurrences of each code of each field among ``rows`` of ``codes`` (n, F).

    Returns per field a (sizes[f],) int64 count vector.
    """
    counts = [np.zeros(size, np.int64) for size in sizes]
    rows = np.sort(rows)
    for start in range(0, rows.size, block_rows):
        block = np.asarray(codes[rows[start : start + block_rows]])
        for f, size in enumerate(sizes):
            counts[f] += np.bincount(block[:, f], minlength=size)
    return counts
