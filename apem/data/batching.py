"""Mini-batches by whole-tensor indexing of the id matrices (no per-row Python Dataset)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from apem.data.schema import FunnelData


@dataclass
class Batch:
    """One mini-batch on its device.

    Attributes:
        ids: (B, num_fields) int64 field ids.
        labels: (B, num_steps) float32 funnel labels.
        dense: (B, num_dense) float32 or None.
        oracle: (B, num_steps) float32 true probabilities or None.
    """

    ids: Tensor
    labels: Tensor
    dense: Tensor | None = None
    oracle: Tensor | None = None

    def __len__(self) -> int:
        return int(self.ids.shape[0])


_NUMPY_DTYPES = {torch.int64: np.int64, torch.float32: np.float32}


def _as_tensor(array: np.ndarray | None, dtype: torch.dtype) -> Tensor | None:
    """A CPU tensor of ``array``; read-only (memory-mapped) arrays are copied into memory."""
    if array is None:
        return None
    values = np.asarray(array, dtype=_NUMPY_DTYPES[dtype])
    if not values.flags.writeable:
        values = values.copy()
    return torch.from_numpy(values)


class BatchLoader:
    """Iterates over a split in mini-batches of up to ``batch_size`` rows.

    The split's arrays are turned into tensors once; each batch is one ``index_select`` per
    array, optionally pinned, then moved to ``device`` with one copy per array. With
    ``resident=True`` the whole split lives on ``device`` and batches are sliced there.
    Shuffling draws one permutation per epoch from ``(seed, epoch)``, so an epoch's order is
    reproducible (and a resumed run sees the same batches).

    ``shard=(rank, world)`` (data-parallel training) keeps, of each batch of ``batch_size``
    rows, this rank's part of ``world`` near-equal contiguous parts; every rank sees the same
    number of batches, and a last batch with fewer rows than ``world`` is dropped.
    """

    def __init__(
        self,
        data: FunnelData,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        device: torch.device | str = "cpu",
        pin_memory: bool = False,
        resident: bool = False,
        drop_last: bool = False,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        rank, world = shard
        if not 0 <= rank < world:
            raise ValueError(f"shard must be (rank, world) with 0 <= rank < world, got {shard}")
        self.data = data
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.device = torch.device(device)
        self.drop_last = drop_last
        self.shard = shard
        self.epoch = 0
        home = self.device if resident else torch.device("cpu")
        self._pin = pin_memory and not resident and self.device.type == "cuda"
        self._arrays = {
            "ids": _as_tensor(data.ids, torch.int64).to(home),
            "labels": _as_tensor(data.labels, torch.float32).to(home),
            "dense": None if data.dense is None else _as_tensor(data.dense, torch.float32).to(home),
            "oracle": None
            if data.oracle is None
            else _as_tensor(data.oracle, torch.float32).to(home),
        }

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose permutation the next iteration uses."""
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self._stop() // self.batch_size)

    def _stop(self) -> int:
        """End of the rows that are batched: the last short batch may be dropped."""
        n = len(self.data)
        tail = n % self.batch_size
        return n - tail if self.drop_last or tail < self.shard[1] else n

    def _order(self) -> Tensor | None:
        if not self.shuffle:
            return None
        rng = np.random.default_rng([self.seed, self.epoch])
        return torch.from_numpy(rng.permutation(len(self.data)))

    def __iter__(self) -> Iterator[Batch]:
        return self.batches()

    def batches(self, first: int = 0) -> Iterator[Batch]:
        """The epoch's batches from batch index ``first`` on (a resumed epoch skips the rest
        without gathering them)."""
        order = self._order()
        if order is not None:
            order = order.to(self._arrays["ids"].device)  # once per epoch, not per batch
        stop = self._stop()
        rank, world = self.shard
        for first_row in range(first * self.batch_size, stop, self.batch_size):
            rows_in_batch = min(self.batch_size, stop - first_row)
            start = first_row + rows_in_batch * rank // world
            end = first_row + rows_in_batch * (rank + 1) // world
            if order is None:
                parts = {k: None if v is None else v[start:end] for k, v in self._arrays.items()}
            else:
                rows = order[start:end]
                parts = {
                    k: None if v is None else v.index_select(0, rows)
                    for k, v in self._arrays.items()
                }
            yield Batch(**{k: self._to_device(v) for k, v in parts.items()})

    def _to_device(self, t: Tensor | None) -> Tensor | None:
        if t is None or t.device == self.device:
            return t
        if self._pin:
            t = t.pin_memory()
        return t.to(self.device, non_blocking=self._pin)
