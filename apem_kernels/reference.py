"""Plain PyTorch references, written straight from the equations of DESIGN.md §2 and §4.1.

They are the truth for the tests and the implementation of the ``torch`` backend: any dtype,
any device, autograd through ordinary PyTorch ops.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F


def smooth_step(u: Tensor, gamma: float | Tensor) -> Tensor:
    """The cubic smooth step f_D(u; gamma) of the dynamic selector, elementwise, any shape.

    0 for ``u <= -gamma/2``, 1 for ``u >= gamma/2`` and ``-2/gamma^3 u^3 + 3/(2 gamma) u + 1/2``
    in between. ``gamma`` is a number or a one-element tensor on u's device. Computed in
    float32 (or float64) and returned in ``u.dtype``.
    """
    compute = torch.float64 if u.dtype == torch.float64 else torch.float32
    v = u.to(compute)
    half = gamma / 2
    cubic = -2.0 / gamma**3 * v**3 + 1.5 / gamma * v + 0.5
    out = torch.where(
        v <= -half, torch.zeros_like(v), torch.where(v >= half, torch.ones_like(v), cubic)
    )
    return out.to(u.dtype)


def attention_core(
    q: Tensor, k: Tensor, v: Tensor, num_heads: int, key_padding_mask: Tensor | None
) -> Tensor:
    """Multi-head attention core: q (B, K, d), k and v (B, N, d) -> heads concatenated (B, K, d).

    ``softmax(q_j k_jᵀ / sqrt(d_h)) v_j`` per head j, by ``F.scaled_dot_product_attention``
    (fused on the CPU as well). A row whose keys are all padded attends to nothing: zero output.
    """
    b, n_q, d = q.shape
    n_k = k.shape[1]
    d_h = d // num_heads
    q = q.reshape(b, n_q, num_heads, d_h).transpose(1, 2)  # (B, M, K, d_h)
    k = k.reshape(b, n_k, num_heads, d_h).transpose(1, 2)  # (B, M, N, d_h)
    v = v.reshape(b, n_k, num_heads, d_h).transpose(1, 2)
    if key_padding_mask is None:
        heads = F.scaled_dot_product_attention(q, k, v)
    else:
        all_padded = key_padding_mask.all(dim=1, keepdim=True)  # (B, 1)
        # SDPA's mask marks the keys that take part; an all-padded row lets every key take part
        # (finite softmax, no NaN in the backward) and its output is zeroed below.
        keep = ~key_padding_mask | all_padded
        heads = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :])
        heads = heads.masked_fill(all_padded[:, :, None, None], 0.0)
    return heads.transpose(1, 2).reshape(b, n_q, d)


def inducing_queries(inducing: Tensor, z: Tensor | None, batch: int) -> Tensor:
    """Masked inducing points ``Q̂ = I ⊙ z``: inducing (K, d), z (B, K) or None -> (B, K, d)."""
    if z is None:
        return inducing.unsqueeze(0).expand(batch, -1, -1)
    return inducing.unsqueeze(0) * z.unsqueeze(-1)


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
    """Masked inducing-point attention ``O`` (DESIGN.md §2, before residual and norm).

    Args:
        x: (B, N, d) keys/values input.
        inducing: (K, d) inducing points I.
        w_k, w_v, w_o: (d, d) in ``F.linear`` convention (``K = F.linear(x, w_k)``).
        num_heads: M; heads are consecutive blocks of ``d // M`` columns, scale ``1/sqrt(d/M)``.
        z: (B, K) per-sample row scale of the queries, or None for all ones.
        key_padding_mask: (B, N) bool, True marks a padded key that gets no weight.
        w_q: optional (d, d) query projection, no bias: the queries become
            ``F.linear(I ⊙ z, w_q)``.

    Returns:
        (B, K, d) ``concat_j softmax(Q̂_j K_jᵀ / sqrt(d_h)) V_j`` projected by ``w_o``.
    """
    q = inducing_queries(inducing, z, x.shape[0])
    if w_q is not None:
        q = F.linear(q, w_q)
    heads = attention_core(q, F.linear(x, w_k), F.linear(x, w_v), num_heads, key_padding_mask)
    return F.linear(heads, w_o)


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
    """``LayerNorm(Q̂ + O)`` with ``Q̂ = I ⊙ z`` (DESIGN.md §2, eq. 17): (B, N, d) -> (B, K, d)."""
    o = inducing_attention(x, inducing, w_k, w_v, w_o, num_heads, z, key_padding_mask, w_q)
    residual = inducing_queries(inducing, z, x.shape[0]) + o
    return F.layer_norm(residual, (x.shape[-1],), norm_weight, norm_bias, norm_eps)


def factored_inducing_attention(
    x: Tensor,
    a: Tensor,
    c: Tensor,
    z: Tensor | None = None,
    key_padding_mask: Tensor | None = None,
) -> Tensor:
    """Attention from batch-shared factors: ``O = Σ_j softmax_N(z ⊙ A_j xᵀ) x C_j``.

    Args:
        x: (B, N, d_in) keys/values input.
        a: (M, K, d_in) score factors, one per head (the queries times the key weights, scaled).
        c: (M, d_in, d_out) output factors, one per head (value weights times output weights).
        z: (B, K) per-sample row scale of the scores, or None for all ones.
        key_padding_mask: (B, N) bool, True marks a padded key; an all-padded row gives zeros.

    Returns:
        (B, K, d_out).
    """
    scores = torch.einsum("mke,bne->bmkn", a, x)  # (B, M, K, N)
    if z is not None:
        scores = scores * z[:, None, :, None]
    if key_padding_mask is not None:
        all_padded = key_padding_mask.all(dim=1)  # (B,)
        # An all-padded row softmaxes over every key (finite, no NaN) and is zeroed after.
        dropped = key_padding_mask & ~all_padded[:, None]
        scores = scores.masked_fill(dropped[:, None, None, :], float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    if key_padding_mask is not None:
        probs = probs.masked_fill(all_padded[:, None, None, None], 0.0)
    heads = torch.einsum("bmkn,bne->bmke", probs, x)  # (B, M, K, d_in)
    return torch.einsum("bmke,meo->bko", heads, c)


def attention_weights(
    x: Tensor,
    inducing: Tensor,
    w_k: Tensor,
    num_heads: int,
    z: Tensor | None = None,
    key_padding_mask: Tensor | None = None,
    w_q: Tensor | None = None,
) -> Tensor:
    """The softmax weights of :func:`inducing_attention`, per head: -> (B, M, K, N).

    ``softmax(Q̂_j K_jᵀ / sqrt(d_h))`` over the N keys; padded keys get weight 0 and a row whose
    keys are all padded is all zeros (it attends to nothing).
    """
    b, n, d = x.shape
    q = inducing_queries(inducing, z, b)
    if w_q is not None:
        q = F.linear(q, w_q)
    d_h = d // num_heads
    q = q.reshape(b, -1, num_heads, d_h).transpose(1, 2)  # (B, M, K, d_h)
    k = F.linear(x, w_k).reshape(b, n, num_heads, d_h).transpose(1, 2)  # (B, M, N, d_h)
    scores = q @ k.transpose(-1, -2) / d_h**0.5  # (B, M, K, N)
    if key_padding_mask is None:
        return scores.softmax(dim=-1)
    scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
    weights = scores.softmax(dim=-1)
    return weights.nan_to_num(0.0)
