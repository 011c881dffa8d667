"""The ``torch`` backend: the reference's math (``reference.py``), arranged to run fast on a CPU.

Two rearrangements, both exact up to rounding (tests compare them with the reference):

- few queries (K · M < N, e.g. APEM's Pattern Selectors, 2 queries over 64 rows): the factorised
  form ``O = Σ_j softmax(z ⊙ A_j xᵀ) x C_j`` with batch-shared ``A_j``, ``C_j`` skips the
  per-sample key and value projections of all N rows;
- otherwise ``F.scaled_dot_product_attention`` with each head's width zero-padded to a multiple
  of 8 (9 → 16 at APEM's d = 18, 2 heads), which its CPU kernel runs faster; the padding is put
  into the weights (zero rows of w_k, w_v, w_q, zero columns of w_o), and the queries are rescaled
  so that the softmax keeps the scale ``1/sqrt(d_h)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

from apem_kernels import reference

_HEAD_MULTIPLE = 8


def attention_factors(
    inducing: Tensor, w_k: Tensor, w_v: Tensor, w_o: Tensor, num_heads: int, w_q: Tensor | None
) -> tuple[Tensor, Tensor]:
    """A (M, K, d) = ``I'_j w_k_j / sqrt(d_h)`` and C (M, d, d) = ``w_v_jᵀ w_o_jᵀ`` per head j
    (``I' = I`` or ``F.linear(I, w_q)``), in the weights' dtype, differentiable."""
    k, d = inducing.shape
    d_h = d // num_heads
    queries = inducing if w_q is None else F.linear(inducing, w_q)
    a = torch.einsum(
        "kmh,mhe->mke", queries.reshape(k, num_heads, d_h), w_k.reshape(num_heads, d_h, d)
    )
    c = torch.einsum("mha,bmh->mab", w_v.reshape(num_heads, d_h, d), w_o.reshape(d, num_heads, d_h))
    return a / math.sqrt(d_h), c


def _pad_heads(t: Tensor, num_heads: int, width: int, dim: int) -> Tensor:
    """``t`` with its ``dim`` axis (M · d_h heads' columns) zero-padded to M · width per head;
    applied to the weights (and the inducing points), so no batch tensor is ever copied."""
    shape = list(t.shape)
    d_h = shape[dim] // num_heads
    split = shape[:dim] + [num_heads, d_h] + shape[dim + 1 :]
    pad = [0, 0] * (len(split) - dim - 2) + [0, width - d_h]
    shape[dim] = num_heads * width
    return F.pad(t.reshape(split), pad).reshape(shape)


def inducing_attention(
    x: Tensor,
    inducing: Tensor,
    w_k: Tensor,
    w_v: Tensor,
    w_o: Tensor,
    num_heads: int,
    z: Tensor | None = None,
    key_padding_mask: Tensor | None = None,
    w_q: Tensor | None = None,
) -> Tensor:
    """``reference.inducing_attention`` (same arguments, same result up to rounding)."""
    batch, keys, d = x.shape
    if inducing.shape[0] * num_heads < keys:
        a, c = attention_factors(inducing, w_k, w_v, w_o, num_heads, w_q)
        return reference.factored_inducing_attention(x, a, c, z, key_padding_mask)
    d_h = d // num_heads
    width = -(-d_h // _HEAD_MULTIPLE) * _HEAD_MULTIPLE
    if width == d_h:
        q = reference.inducing_queries(inducing, z, batch)
        if w_q is not None:
            q = F.linear(q, w_q)
        heads = reference.attention_core(
            q, F.linear(x, w_k), F.linear(x, w_v), num_heads, key_padding_mask
        )
        return F.linear(heads, w_o)
    # Each head zero-padded to `width` columns through the weights: SDPA scales by
    # 1/sqrt(width), the queries' factor restores 1/sqrt(d_h).
    scale = math.sqrt(width / d_h)
    if w_q is None:
        q = reference.inducing_queries(_pad_heads(inducing * scale, num_heads, width, 1), z, batch)
    else:
        q = F.linear(
            reference.inducing_queries(inducing, z, batch),
            _pad_heads(w_q * scale, num_heads, width, 0),
        )
    k = F.linear(x, _pad_heads(w_k, num_heads, width, 0))
    v = F.linear(x, _pad_heads(w_v, num_heads, width, 0))
    heads = reference.attention_core(q, k, v, num_heads, key_padding_mask)
    return F.linear(heads, _pad_heads(w_o, num_heads, width, 1))


def inducing_attention_block(
    x: Tensor,
    inducing: Tensor,
    w_k: Tensor,
    w_v: Tensor,
    w_o: Tensor,
    num_heads: int,
    norm_weight: Tensor,
    norm_bias: Tensor,
    z: Tensor | None = None,
    key_padding_mask: Tensor | None = None,
    w_q: Tensor | None = None,
    norm_eps: float = 1e-5,
) -> Tensor:
    """``reference.inducing_attention_block`` through :func:`inducing_attention`."""
    o = inducing_attention(x, inducing, w_k, w_v, w_o, num_heads, z, key_padding_mask, w_q)
    residual = reference.inducing_queries(inducing, z, x.shape[0]) + o
    return F.layer_norm(residual, (x.shape[-1],), norm_weight, norm_bias, norm_eps)
