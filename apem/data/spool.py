"""Append-only on-disk row matrices: stream blocks in, memory-map the whole afterwards."""

from __future__ import annotations

import os

import numpy as np


class Spool:
    """Rows of a fixed width and dtype appended block by block to a raw file.

    Lets a converter hold a 40M-row column set on disk instead of in memory; ``array()``
    memory-maps what was written as an (n, width) matrix.
    """

    def __init__(self, path: str, dtype: np.dtype | type, width: int) -> None:
        self.path = path
        self.dtype = np.dtype(dtype)
        self.width = width
        self.rows = 0
        self._file = open(path, "wb")  # noqa: SIM115 - closed by array()

    def append(self, block: np.ndarray) -> None:
        """Append ``block`` (m, width); it is converted to the spool's dtype."""
        block = np.ascontiguousarray(block, dtype=self.dtype).reshape(len(block), self.width)
        block.tofile(self._file)
        self.rows += block.shape[0]

    def array(self, mode: str = "r") -> np.ndarray:
        """Close the file and memory-map it as (rows, width) (``mode='r+'`` to edit in place)."""
        self._file.close()
        if self.rows == 0 or self.width == 0:
            return np.zeros((self.rows, self.width), self.dtype)
        return np.memmap(self.path, dtype=self.dtype, mode=mode, shape=(self.rows, self.width))

    def remove(self) -> None:
        """Delete the backing file."""
        self._file.close()
        if os.path.exists(self.path):
            os.remove(self.path)
