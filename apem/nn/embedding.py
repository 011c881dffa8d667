"""The embedding layer every model shares."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from apem.nn.checks import positive_int
from apem_kernels.ops.utils import tracing

EMBEDDING_INIT_STD = 0.05


class FieldEmbedding(nn.Module):
    """One ``dim``-vector per categorical field id, one learned vector per dense field.

    All categorical fields share one table (rows offset per field). A dense field's row is its
    learned vector scaled by the field's value.

    Shapes: ids (B, F) integer, dense (B, num_dense) float -> (B, F + num_dense, dim).
    """

    def __init__(self, vocab_sizes: Sequence[int], dim: int, num_dense: int = 0) -> None:
        super().__init__()
        sizes = [positive_int(f"vocab_sizes[{i}]", v) for i, v in enumerate(vocab_sizes)]
        self.dim = positive_int("dim", dim)
        if isinstance(num_dense, bool) or not isinstance(num_dense, int) or num_dense < 0:
            raise ValueError(f"num_dense must be an integer >= 0, got {num_dense!r}")
        if not sizes and not num_dense:
            raise ValueError("FieldEmbedding needs at least one categorical or dense field")
        self.num_fields = len(sizes)
        self.num_dense = num_dense
        self.register_buffer("vocab_sizes", torch.tensor(sizes, dtype=torch.long), persistent=False)
        starts = [0, *itertools.accumulate(sizes)][: len(sizes)]
        self.register_buffer("offsets", torch.tensor(starts, dtype=torch.long), persistent=False)
        self.table = nn.Embedding(sum(sizes), dim) if sizes else None
        self.dense_vectors = nn.Parameter(torch.empty(num_dense, dim)) if num_dense else None
        self.reset_parameters()

    @property
    def num_rows(self) -> int:
        """Rows of the output per sample: F + num_dense."""
        return self.num_fields + self.num_dense

    def reset_parameters(self) -> None:
        if self.table is not None:
            nn.init.normal_(self.table.weight, std=EMBEDDING_INIT_STD)
        if self.dense_vectors is not None:
            nn.init.normal_(self.dense_vectors, std=EMBEDDING_INIT_STD)

    def forward(self, ids: Tensor, dense: Tensor | None = None) -> Tensor:
        """ids (B, F), dense (B, num_dense) or None if there are none -> (B, F + num_dense, dim)."""
        self._check_inputs(ids, dense)
        rows = []
        if self.table is not None:
            rows.append(self.table(ids + self.offsets))
        if self.dense_vectors is not None:
            rows.append(dense.unsqueeze(-1).to(self.dense_vectors.dtype) * self.dense_vectors)
        return torch.cat(rows, dim=1) if len(rows) > 1 else rows[0]

    def _check_inputs(self, ids: Tensor, dense: Tensor | None) -> None:
        if not isinstance(ids, Tensor) or ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise TypeError(f"ids must be an integer tensor, got {_describe(ids)}")
        if ids.dim() != 2 or ids.shape[1] != self.num_fields:
            raise ValueError(f"ids must have shape (B, {self.num_fields}), got {tuple(ids.shape)}")
        # The range check reads the ids back to the host: on an accelerator that would stall every
        # step, and the data layer already maps unknown values to the OOV id 0 there. A traced
        # graph (torch.compile, torch.export, ONNX, jit.trace) leaves it out: it would split the
        # graph on a data-dependent branch.
        if not tracing() and self.num_fields and ids.numel() and ids.device.type == "cpu":
            bad = (ids < 0) | (ids >= self.vocab_sizes)
            if bad.any():
                field = int(bad.any(dim=0).nonzero()[0])
                raise ValueError(
                    f"ids[:, {field}] must lie in [0, {int(self.vocab_sizes[field])}), "
                    f"got values in [{int(ids[:, field].min())}, {int(ids[:, field].max())}]"
                )
        if self.num_dense == 0:
            if dense is not None and dense.numel():
                raise ValueError(
                    f"dense must be None: the schema has no dense fields, got {_describe(dense)}"
                )
            return
        if not isinstance(dense, Tensor) or not dense.dtype.is_floating_point:
            expected = f"a float tensor of shape (B, {self.num_dense})"
            raise TypeError(f"dense must be {expected}, got {_describe(dense)}")
        if tuple(dense.shape) != (ids.shape[0], self.num_dense):
            expected = (ids.shape[0], self.num_dense)
            raise ValueError(f"dense must have shape {expected}, got {tuple(dense.shape)}")


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"tensor of dtype {value.dtype} and shape {tuple(value.shape)}"
    return repr(value) if value is None else type(value).__name__
