"""Byte floors (DESIGN.md §4.2): the fewest bytes one call can move through device memory.

Each batch-shaped tensor is read or written exactly once; batch-shared tensors (inducing points,
weights and their gradients) are a few kilobytes and are not counted. Any implementation moves at
least this much, so ``floor / time`` is a lower bound on its achieved bandwidth and
``(floor / copy bandwidth) / time`` is how close it comes to the memory roofline.

Attention, per sample, in elements of the input dtype (x: N×d, z: K, output: K×d):

- forward: read x and z, write the output                    -> N·d + K + K·d
- forward+backward: that, plus read dY, write dx and dz      -> 2·(N·d + K + K·d)

Smooth step, per sample (u: K): forward reads u and writes f(u) (2·K); forward+backward also
reads dY and writes du (4·K).
"""

from __future__ import annotations

import torch


def _element_bytes(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def attention_floor_bytes(
    batch: int, n: int, d: int, k: int, dtype: torch.dtype, *, backward: bool
) -> int:
    """Byte floor of one inducing-attention call on ``batch`` samples (x: N×d, z: K, out: K×d)."""
    per_sample = n * d + k + k * d
    passes = 2 if backward else 1
    return passes * batch * per_sample * _element_bytes(dtype)


def smooth_step_floor_bytes(batch: int, k: int, dtype: torch.dtype, *, backward: bool) -> int:
    """Byte floor of one smooth-step call on a (batch, K) tensor."""
    tensors = 4 if backward else 2
    return tensors * batch * k * _element_bytes(dtype)
