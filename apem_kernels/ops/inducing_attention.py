"""Fused masked inducing-point attention: Triton forward and backward (DESIGN.md §4.2).

Per head ``j`` (columns ``c_j`` of width ``d_h = d / M``) the batch-shared factors

    A_j = I'[:, c_j] @ w_k[c_j, :] / sqrt(d_h)   (K, d)     I' = I, or F.linear(I, w_q)
    C_j = w_v[c_j, :].T @ w_o[:, c_j].T          (d, d)

turn one sample's attention into ``R_j = A_j xᵀ``, ``P_j = masked_softmax(z ⊙ R_j)`` over the
N keys, ``T_j = P_j x`` and ``O = Σ_j T_j C_j``. The kernels never need ``d_h``: every tile is
(K, N or d) sized. A, C are plain differentiable torch (computed once per call), so autograd
chains their gradients to the inducing points and weights.

Forward: each program owns whole samples (persistent grid). Per K block and head it finds the
row logsumexp over N (saved, ``(B, M, K)``), then ``T_j`` in column chunks of width
``BLOCK_DC`` and ``O += T_j C_j``; an optional residual + LayerNorm epilogue; ``x`` and ``z`` are
read per sample from global memory (cache-resident), the output written once.

Backward: recomputes ``P`` from the saved logsumexp (and ``O`` when the norm is fused). Batch-shared
gradients (dA, dC, the residual's dI, LayerNorm weight and bias) go to per-program slots
(``(G, ...)`` buffers, read-modify-written only by their owner) summed afterwards in torch: no
atomics, so the backward is deterministic. ``dx`` accumulates in a float32 buffer the owner
program read-modify-writes across K blocks and heads.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from apem_kernels.ops.smooth_step import (
    smooth_step_coefficients,
    smooth_step_slope,
    smooth_step_value,
)
from apem_kernels.ops.utils import TRITON_DTYPES, KernelSpec, block_size, interpreting, new_output

# Bytes of the largest (rows, d) operand tile; K and N tiles shrink as d and the dtype grow.
_TILE_BYTES = 8192
_MAX_ROWS = 64
# Cap on the bytes of per-program gradient slots, which bounds the persistent grid.
_PARTIAL_BYTES = 512 * 2**20
_PROGRAMS_PER_SM = 4
_INTERPRETER_PROGRAMS = 2
# What compile_specs() covers: every padded width and every dtype the launcher takes (float64
# serves gradcheck and the float64 tests on a GPU).
_WIDTH_BUCKETS = (16, 32, 64, 128, 256)
_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)


@dataclass(frozen=True)
class TileConfig:
    """Tile sizes and warps for one launch. ``block_d`` covers all of d; ``block_dc`` divides it."""

    block_k: int
    block_n: int
    block_d: int
    block_dc: int
    num_warps: int


def tile_config(dim: int, dtype: torch.dtype) -> TileConfig:
    """Tiles for width d and the input dtype (used by the launchers and compile_specs()).

    d is one tile (the LayerNorm and the output rows need it whole). K and N tiles are the most
    rows (16..64) keeping a (rows, d) tile within ``_TILE_BYTES``; larger K and N loop over tiles.
    ``C_j`` (d, d) is consumed in (block_dc, d) chunks of the same budget.
    """
    block_d = block_size(dim)
    elements = _TILE_BYTES // torch.empty((), dtype=dtype).element_size()
    rows = max(16, min(_MAX_ROWS, elements // block_d))
    block_dc = max(16, min(block_d, elements // block_d))
    return TileConfig(rows, rows, block_d, block_dc, num_warps=8 if block_d >= 128 else 4)


# Triton 3.9's interpreter gets bfloat16 tl.dot wrong; there it multiplies float32 copies.
_BF16_DOT_IN_FLOAT32 = tl.constexpr(interpreting())


@triton.jit
def _mm(a, b):
    """a @ b accumulated in float32 (float64 for float64); float32 operands keep full precision
    through three tf32 products."""
    if _BF16_DOT_IN_FLOAT32 and a.dtype == tl.bfloat16:
        return tl.dot(a.to(tl.float32), b.to(tl.float32))
    if a.dtype == tl.float32:
        return tl.dot(a, b, input_precision="tf32x3")
    return tl.dot(a, b)


@triton.jit
def _gate(
    z_ptr, b, offs_k, k_mask, stride_zb, stride_zk, gamma,
    HAS_Z: tl.constexpr, Z_FROM_U: tl.constexpr, ACC: tl.constexpr,
):  # fmt: skip
    """Row scales z (BLOCK_K,) and dz/du (ones unless z = f_D(u; gamma) is computed here)."""
    ones = tl.full(offs_k.shape, 1.0, ACC)
    z = ones
    dzdu = ones
    if HAS_Z:
        z = tl.load(z_ptr + b * stride_zb + offs_k * stride_zk, mask=k_mask, other=0.0).to(ACC)
        if Z_FROM_U:
            half, cubic, linear = smooth_step_coefficients(gamma, ACC)
            dzdu = smooth_step_slope(z, half, cubic, linear)
            z = smooth_step_value(z, half, cubic, linear)
    return z, dzdu


@triton.jit
def _load_tile(ptr, offs_r, offs_c, n_rows, n_cols, stride_r, stride_c):
    """A (rows, cols) tile, zero outside ``n_rows`` x ``n_cols``."""
    mask = (offs_r[:, None] < n_rows) & (offs_c[None, :] < n_cols)
    return tl.load(
        ptr + offs_r[:, None] * stride_r + offs_c[None, :] * stride_c, mask=mask, other=0.0
    )


@triton.jit
def _score_tile(
    a_blk, z, x_base, mask_base, n0, N, D, stride_xn, stride_xd, stride_mn,
    HAS_MASK, BLOCK_N, BLOCK_D,
):  # fmt: skip
    """For keys n0..n0+BLOCK_N: x tile (BLOCK_N, BLOCK_D), R = A xᵀ and z ⊙ R (BLOCK_K, BLOCK_N),
    and which keys count (BLOCK_N,)."""
    offs_n = n0 + tl.arange(0, BLOCK_N)
    x = _load_tile(x_base, offs_n, tl.arange(0, BLOCK_D), N, D, stride_xn, stride_xd)
    r = _mm(a_blk, tl.trans(x)).to(z.dtype)
    valid = offs_n < N
    if HAS_MASK:
        padded = tl.load(mask_base + offs_n * stride_mn, mask=valid, other=1)
        valid = valid & (padded == 0)
    return x, r, z[:, None] * r, valid


@triton.jit
def _row_logsumexp(
    a_blk, z, x_base, mask_base, N, D, stride_xn, stride_xd, stride_mn,
    HAS_MASK, BLOCK_N, BLOCK_D,
):  # fmt: skip
    """Logsumexp over the unmasked keys of each row of z ⊙ R (BLOCK_K,); +inf for a row with none,
    so that exp(s - lse) is 0 there."""
    m = tl.full(z.shape, float("-inf"), z.dtype)
    total = tl.zeros(z.shape, z.dtype)
    for n0 in range(0, N, BLOCK_N):
        _, _, s, valid = _score_tile(
            a_blk, z, x_base, mask_base, n0, N, D, stride_xn, stride_xd, stride_mn,
            HAS_MASK, BLOCK_N, BLOCK_D,
        )  # fmt: skip
        s = tl.where(valid[None, :], s, float("-inf"))
        m_new = tl.maximum(m, tl.max(s, axis=1))
        shift = tl.where(m_new == float("-inf"), 0.0, m_new)
        total = total * tl.exp(m - shift) + tl.sum(tl.exp(s - shift[:, None]), axis=1)
        m = m_new
    return tl.where(total > 0, m + tl.log(tl.where(total > 0, total, 1.0)), float("inf"))


@triton.jit
def _probs(s, valid, lse):
    """Softmax probabilities (BLOCK_K, BLOCK_N) from scores and row logsumexp."""
    return tl.where(valid[None, :], tl.exp(s - lse[:, None]), 0.0)


@triton.jit
def _attend_chunk(
    a_blk, z, lse, c0, x_base, mask_base, N, D, stride_xn, stride_xd, stride_mn,
    HAS_MASK, BLOCK_N, BLOCK_D, BLOCK_DC,
):  # fmt: skip
    """Columns c0..c0+BLOCK_DC of T = P x: (BLOCK_K, BLOCK_DC) in the accumulator dtype."""
    t = tl.zeros((z.shape[0], BLOCK_DC), z.dtype)
    offs_c = c0 + tl.arange(0, BLOCK_DC)
    for n0 in range(0, N, BLOCK_N):
        x, _, s, valid = _score_tile(
            a_blk, z, x_base, mask_base, n0, N, D, stride_xn, stride_xd, stride_mn,
            HAS_MASK, BLOCK_N, BLOCK_D,
        )  # fmt: skip
        p = _probs(s, valid, lse)
        xc = _load_tile(x_base, n0 + tl.arange(0, BLOCK_N), offs_c, N, D, stride_xn, stride_xd)
        t += _mm(p.to(x.dtype), xc).to(z.dtype)
    return t


@triton.jit
def _block_output(
    x_base, mask_base, a_ptr, c_ptr, lse_base, z, offs_k, N, K, D, M,
    stride_xn, stride_xd, stride_mn,
    STORE_LSE, HAS_MASK, BLOCK_N, BLOCK_D, BLOCK_DC,
):  # fmt: skip
    """O rows offs_k of one sample (BLOCK_K, BLOCK_D): Σ_j T_j C_j. Stores each head's row
    logsumexp at lse_base (M, K) when STORE_LSE, else reads it from there."""
    k_mask = offs_k < K
    offs_d = tl.arange(0, BLOCK_D)
    out = tl.zeros((offs_k.shape[0], BLOCK_D), z.dtype)
    for j in range(M):
        a_blk = _load_tile(a_ptr + j * K * D, offs_k, offs_d, K, D, D, 1)
        a_blk = a_blk.to(x_base.dtype.element_ty)
        if STORE_LSE:
            lse = _row_logsumexp(
                a_blk, z, x_base, mask_base, N, D, stride_xn, stride_xd, stride_mn,
                HAS_MASK, BLOCK_N, BLOCK_D,
            )  # fmt: skip
            tl.store(lse_base + j * K + offs_k, lse, mask=k_mask)
        else:
            lse = tl.load(lse_base + j * K + offs_k, mask=k_mask, other=0.0).to(z.dtype)
        for c0 in range(0, D, BLOCK_DC):
            t = _attend_chunk(
                a_blk, z, lse, c0, x_base, mask_base, N, D, stride_xn, stride_xd, stride_mn,
                HAS_MASK, BLOCK_N, BLOCK_D, BLOCK_DC,
            )  # fmt: skip
            offs_c = c0 + tl.arange(0, BLOCK_DC)
            c_chunk = _load_tile(c_ptr + j * D * D, offs_c, offs_d, D, D, D, 1)
            out += _mm(
                t.to(x_base.dtype.element_ty), c_chunk.to(x_base.dtype.element_ty)
            ).to(z.dtype)  # fmt: skip
    return out


@triton.jit
def _normalized(h, col_mask, D, eps):
    """LayerNorm statistics of rows h (BLOCK_K, BLOCK_D): (h - mean) * rstd and rstd."""
    mean = tl.sum(h, axis=1) / D
    centred = tl.where(col_mask[None, :], h - mean[:, None], 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(centred * centred, axis=1) / D + eps)
    return centred * rstd[:, None], rstd


@triton.jit
def _accumulate(ptr, offs_r, offs_c, n_rows, n_cols, stride_r, value, first):
    """ptr tile += value (or = value when ``first``): a program's own slot or sample rows.

    Earlier updates of these addresses may have come from other threads of the program (tiles of
    another shape or layout), so a barrier orders this read after them.
    """
    tl.debug_barrier()
    mask = (offs_r[:, None] < n_rows) & (offs_c[None, :] < n_cols)
    ptrs = ptr + offs_r[:, None] * stride_r + offs_c[None, :]
    previous = tl.load(ptrs, mask=tl.where(first, False, mask), other=0.0)
    tl.store(ptrs, previous + value, mask=mask)


@triton.jit
def _forward_kernel(
    x_ptr, z_ptr, mask_ptr, a_ptr, c_ptr, inducing_ptr, norm_w_ptr, norm_b_ptr, out_ptr, lse_ptr,
    B, N, K, D, M,
    stride_xb, stride_xn, stride_xd, stride_zb, stride_zk, stride_mb, stride_mn,
    gamma: tl.float64, eps,
    HAS_Z: tl.constexpr, Z_FROM_U: tl.constexpr, HAS_MASK: tl.constexpr, HAS_NORM: tl.constexpr,
    ACC: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    BLOCK_DC: tl.constexpr,
):  # fmt: skip
    """out (B, K, D) = O or LayerNorm(I ⊙ z + O); lse (B, M, K) float32 row statistics."""
    offs_d = tl.arange(0, BLOCK_D)
    col_mask = offs_d < D
    for b in range(tl.program_id(0), B, tl.num_programs(0)):
        b64 = tl.cast(b, tl.int64)
        x_base = x_ptr + b64 * stride_xb
        mask_base = mask_ptr + b64 * stride_mb
        for k0 in range(0, K, BLOCK_K):
            offs_k = k0 + tl.arange(0, BLOCK_K)
            k_mask = offs_k < K
            z, _ = _gate(
                z_ptr, b64, offs_k, k_mask, stride_zb, stride_zk, gamma, HAS_Z, Z_FROM_U, ACC
            )
            out = _block_output(
                x_base, mask_base, a_ptr, c_ptr, lse_ptr + b64 * M * K, z, offs_k, N, K, D, M,
                stride_xn, stride_xd, stride_mn,
                True, HAS_MASK, BLOCK_N, BLOCK_D, BLOCK_DC,
            )  # fmt: skip
            if HAS_NORM:
                inducing = _load_tile(inducing_ptr, offs_k, offs_d, K, D, D, 1).to(ACC)
                xhat, _ = _normalized(inducing * z[:, None] + out, col_mask, D, eps)
                weight = tl.load(norm_w_ptr + offs_d, mask=col_mask, other=0.0).to(ACC)
                bias = tl.load(norm_b_ptr + offs_d, mask=col_mask, other=0.0).to(ACC)
                out = xhat * weight[None, :] + bias[None, :]
            out_ptrs = out_ptr + b64 * K * D + offs_k[:, None] * D + offs_d[None, :]
            tl.store(out_ptrs, out, mask=k_mask[:, None] & col_mask[None, :])


@triton.jit
def _backward_kernel(
    x_ptr, z_ptr, mask_ptr, a_ptr, c_ptr, inducing_ptr, norm_w_ptr, norm_b_ptr, lse_ptr, dy_ptr,
    dx_ptr, dz_ptr, da_ptr, dc_ptr, dres_ptr, dnorm_ptr,
    B, N, K, D, M,
    stride_xb, stride_xn, stride_xd, stride_zb, stride_zk, stride_mb, stride_mn,
    stride_dyb, stride_dyk, stride_dyd,
    gamma: tl.float64, eps,
    HAS_Z: tl.constexpr, Z_FROM_U: tl.constexpr, HAS_MASK: tl.constexpr, HAS_NORM: tl.constexpr,
    ACC: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    BLOCK_DC: tl.constexpr,
):  # fmt: skip
    """Gradients from dy (B, K, D). Per sample: dx (B, N, D) accumulator dtype, dz (B, K)
    (d/du when Z_FROM_U). Per program g, summed by the caller: da (G, M, K, D), dc (G, M, D, D),
    dres (G, K, D) = d(I) through the residual, dnorm (G, 2, D) = LayerNorm weight, bias."""
    pid = tl.program_id(0)
    offs_d = tl.arange(0, BLOCK_D)
    col_mask = offs_d < D
    dtype = x_ptr.dtype.element_ty
    g64 = tl.cast(pid, tl.int64)
    da_slot = da_ptr + g64 * M * K * D
    dc_slot = dc_ptr + g64 * M * D * D
    dnorm_weight = tl.zeros((BLOCK_D,), ACC)
    dnorm_bias = tl.zeros((BLOCK_D,), ACC)
    for b in range(pid, B, tl.num_programs(0)):
        b64 = tl.cast(b, tl.int64)
        first_sample = b == pid
        x_base = x_ptr + b64 * stride_xb
        mask_base = mask_ptr + b64 * stride_mb
        lse_base = lse_ptr + b64 * M * K
        dx_base = dx_ptr + b64 * N * D
        for k0 in range(0, K, BLOCK_K):
            offs_k = k0 + tl.arange(0, BLOCK_K)
            k_mask = offs_k < K
            z, dzdu = _gate(
                z_ptr, b64, offs_k, k_mask, stride_zb, stride_zk, gamma, HAS_Z, Z_FROM_U, ACC
            )
            dy = _load_tile(dy_ptr + b64 * stride_dyb, offs_k, offs_d, K, D, stride_dyk, stride_dyd)
            dy = dy.to(ACC)
            dz = tl.zeros((BLOCK_K,), ACC)
            if HAS_NORM:
                out = _block_output(
                    x_base, mask_base, a_ptr, c_ptr, lse_base, z, offs_k, N, K, D, M,
                    stride_xn, stride_xd, stride_mn,
                    False, HAS_MASK, BLOCK_N, BLOCK_D, BLOCK_DC,
                )  # fmt: skip
                inducing = _load_tile(inducing_ptr, offs_k, offs_d, K, D, D, 1).to(ACC)
                xhat, rstd = _normalized(inducing * z[:, None] + out, col_mask, D, eps)
                weight = tl.load(norm_w_ptr + offs_d, mask=col_mask, other=0.0).to(ACC)
                dnorm_weight += tl.sum(dy * xhat, axis=0)
                dnorm_bias += tl.sum(dy, axis=0)
                g = dy * weight[None, :]
                mean_g = tl.sum(g, axis=1) / D
                mean_gx = tl.sum(g * xhat, axis=1) / D
                dh = g - mean_g[:, None] - xhat * mean_gx[:, None]
                do = tl.where(col_mask[None, :], dh * rstd[:, None], 0.0)
                dz += tl.sum(do * inducing, axis=1)
                _accumulate(
                    dres_ptr + g64 * K * D, offs_k, offs_d, K, D, D, do * z[:, None], first_sample
                )
            else:
                do = dy
            do_in = do.to(dtype)
            for j in range(M):
                a_blk = _load_tile(a_ptr + j * K * D, offs_k, offs_d, K, D, D, 1).to(dtype)
                lse = tl.load(lse_base + j * K + offs_k, mask=k_mask, other=0.0).to(ACC)
                c_head = c_ptr + j * D * D
                # Pass A: T_j chunk by chunk gives delta = rowsum(dT_j ⊙ T_j) and dC_j += T_jᵀ dO.
                delta = tl.zeros((BLOCK_K,), ACC)
                for c0 in range(0, D, BLOCK_DC):
                    offs_c = c0 + tl.arange(0, BLOCK_DC)
                    t = _attend_chunk(
                        a_blk, z, lse, c0, x_base, mask_base, N, D, stride_xn, stride_xd,
                        stride_mn, HAS_MASK, BLOCK_N, BLOCK_D, BLOCK_DC,
                    )  # fmt: skip
                    c_chunk = _load_tile(c_head, offs_c, offs_d, D, D, D, 1).to(dtype)
                    dt = _mm(do_in, tl.trans(c_chunk)).to(ACC)
                    delta += tl.sum(dt * t, axis=1)
                    dc = _mm(tl.trans(t.to(dtype)), do_in).to(ACC)
                    _accumulate(
                        dc_slot + j * D * D, offs_c, offs_d, D, D, D, dc, first_sample & (k0 == 0)
                    )
                # Pass B: over key tiles, dP, dS, dz, dA and dx.
                da = tl.zeros((BLOCK_K, BLOCK_D), ACC)
                for n0 in range(0, N, BLOCK_N):
                    offs_n = n0 + tl.arange(0, BLOCK_N)
                    x, r, s, valid = _score_tile(
                        a_blk, z, x_base, mask_base, n0, N, D, stride_xn, stride_xd, stride_mn,
                        HAS_MASK, BLOCK_N, BLOCK_D,
                    )  # fmt: skip
                    p = _probs(s, valid, lse)
                    p_in = p.to(dtype)
                    dp = tl.zeros((BLOCK_K, BLOCK_N), ACC)
                    for c0 in range(0, D, BLOCK_DC):
                        offs_c = c0 + tl.arange(0, BLOCK_DC)
                        c_chunk = _load_tile(c_head, offs_c, offs_d, D, D, D, 1).to(dtype)
                        dt = _mm(do_in, tl.trans(c_chunk)).to(dtype)
                        xc = _load_tile(x_base, offs_n, offs_c, N, D, stride_xn, stride_xd)
                        dp += _mm(dt, tl.trans(xc)).to(ACC)
                        dx_values = _mm(tl.trans(p_in), dt).to(ACC)
                        _accumulate(
                            dx_base, offs_n, offs_c, N, D, D, dx_values, (k0 == 0) & (j == 0)
                        )
                    ds = p * (dp - delta[:, None])
                    dz += tl.sum(ds * r, axis=1)
                    dr = (z[:, None] * ds).to(dtype)
                    da += _mm(dr, x).to(ACC)
                    dx_values = _mm(tl.trans(dr), a_blk).to(ACC)
                    _accumulate(dx_base, offs_n, offs_d, N, D, D, dx_values, False)
                _accumulate(da_slot + j * K * D, offs_k, offs_d, K, D, D, da, first_sample)
            if HAS_Z:
                tl.store(dz_ptr + b64 * K + offs_k, dz * dzdu, mask=k_mask)
    if HAS_NORM:
        tl.store(dnorm_ptr + g64 * 2 * D + offs_d, dnorm_weight, mask=col_mask)
        tl.store(dnorm_ptr + g64 * 2 * D + D + offs_d, dnorm_bias, mask=col_mask)


def _accumulator_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _num_programs(batch: int, per_program_bytes: int, device: torch.device) -> int:
    """Persistent grid size: a few programs per SM, capped by the batch and the slot memory."""
    if interpreting() or device.type != "cuda":
        wanted = _INTERPRETER_PROGRAMS
    else:
        sms = torch.cuda.get_device_properties(device).multi_processor_count
        wanted = _PROGRAMS_PER_SM * sms
    return max(1, min(batch, wanted, _PARTIAL_BYTES // max(per_program_bytes, 1)))


def batch_shared_factors(
    inducing: Tensor, w_k: Tensor, w_v: Tensor, w_o: Tensor, num_heads: int, w_q: Tensor | None
) -> tuple[Tensor, Tensor]:
    """A (M, K, d) and C (M, d, d) of the module docstring, differentiable, in the accumulator
    dtype (float32, or float64 for float64 inputs), autocast or not."""
    dtype = _accumulator_dtype(inducing.dtype)
    k, d = inducing.shape
    d_h = d // num_heads
    with torch.autocast(inducing.device.type, enabled=False):
        queries = inducing.to(dtype)
        if w_q is not None:
            queries = torch.nn.functional.linear(queries, w_q.to(dtype))
        a = torch.einsum(
            "kmh,mhe->mke",
            queries.reshape(k, num_heads, d_h),
            w_k.to(dtype).reshape(num_heads, d_h, d),
        )
        c = torch.einsum(
            "mha,bmh->mab",
            w_v.to(dtype).reshape(num_heads, d_h, d),
            w_o.to(dtype).reshape(d, num_heads, d_h),
        )
    return (a / math.sqrt(d_h)).contiguous(), c.contiguous()


def _placeholder(device: torch.device, dtype: torch.dtype) -> Tensor:
    """A one-element tensor standing in for an absent pointer argument (never read)."""
    return torch.zeros(1, dtype=dtype, device=device)


def _flags(gate: Tensor | None, gate_is_u: bool, mask: Tensor | None, norm: bool) -> dict:
    return {
        "HAS_Z": gate is not None,
        "Z_FROM_U": gate is not None and gate_is_u,
        "HAS_MASK": mask is not None,
        "HAS_NORM": norm,
    }


def _tiles(cfg: TileConfig) -> dict:
    return {
        "BLOCK_K": cfg.block_k,
        "BLOCK_N": cfg.block_n,
        "BLOCK_D": cfg.block_d,
        "BLOCK_DC": cfg.block_dc,
    }


def _forward(
    x: Tensor,
    gate: Tensor | None,
    a: Tensor,
    c: Tensor,
    inducing: Tensor | None,
    norm_weight: Tensor | None,
    norm_bias: Tensor | None,
    mask: Tensor | None,
    gamma: float,
    eps: float,
    gate_is_u: bool,
) -> tuple[Tensor, Tensor]:
    """out = O or LayerNorm(I ⊙ z + O) (B, K, d) from x, z (or u), A, C and the optional norm
    parameters, and the row logsumexp (B, M, K) the backward recomputes P from."""
    batch, n, d = x.shape
    m, k, _ = a.shape
    acc = _accumulator_dtype(x.dtype)
    out = new_output((batch, k, d), x.dtype, x.device)
    lse = new_output((batch, m, k), acc, x.device)
    norm = norm_weight is not None
    if batch == 0:
        return out, lse
    cfg = tile_config(d, x.dtype)
    grid = (_num_programs(batch, 0, x.device),)
    args = _pointer_args(x, gate, mask, a, c, inducing, norm_weight, norm_bias)
    _forward_kernel[grid](
        *args, out, lse, batch, n, k, d, m, *x.stride(), *_strides_2d(gate),
        *_strides_2d(mask), float(gamma), float(eps),
        **_flags(gate, gate_is_u, mask, norm), ACC=TRITON_ACC[acc], **_tiles(cfg),
        num_warps=cfg.num_warps,
    )  # fmt: skip
    return out, lse


def _backward(
    dy: Tensor,
    x: Tensor,
    gate: Tensor | None,
    a: Tensor,
    c: Tensor,
    inducing: Tensor | None,
    norm_weight: Tensor | None,
    norm_bias: Tensor | None,
    mask: Tensor | None,
    lse: Tensor,
    gamma: float,
    eps: float,
    gate_is_u: bool,
) -> tuple[Tensor | None, ...]:
    """Gradients of ``_forward``'s out: dx, dgate, dA, dC, dI (the residual's), d norm_weight,
    d norm_bias; None for an absent input."""
    norm = norm_weight is not None
    batch, n, d = x.shape
    m, k, _ = a.shape
    acc = _accumulator_dtype(x.dtype)
    slot_elements = m * k * d + m * d * d + (k * d + 2 * d if norm else 0)
    slot_bytes = slot_elements * torch.empty((), dtype=acc).element_size()
    programs = _num_programs(batch, slot_bytes, x.device)
    dx = new_output((batch, n, d), acc, x.device)
    dgate = new_output((batch, k), gate.dtype, x.device) if gate is not None else None
    da = new_output((programs, m, k, d), acc, x.device)
    dc = new_output((programs, m, d, d), acc, x.device)
    dres = new_output((programs, k, d), acc, x.device) if norm else None
    dnorm = new_output((programs, 2, d), acc, x.device) if norm else None
    if batch > 0:
        cfg = tile_config(d, x.dtype)
        args = _pointer_args(x, gate, mask, a, c, inducing, norm_weight, norm_bias)
        absent = _placeholder(x.device, acc)
        _backward_kernel[(programs,)](
            *args, lse, dy, dx, dgate if gate is not None else absent, da, dc,
            dres if norm else absent, dnorm if norm else absent,
            batch, n, k, d, m, *x.stride(), *_strides_2d(gate), *_strides_2d(mask),
            *dy.stride(), float(gamma), float(eps),
            **_flags(gate, gate_is_u, mask, norm), ACC=TRITON_ACC[acc], **_tiles(cfg),
            num_warps=cfg.num_warps,
        )  # fmt: skip
        da, dc = da.sum(0), dc.sum(0)
        dres = dres.sum(0) if norm else None
        dnorm = dnorm.sum(0) if norm else None
    else:
        da, dc = torch.zeros_like(a), torch.zeros_like(c)
        dnorm = torch.zeros((2, d), dtype=acc, device=x.device) if norm else None
        dres = torch.zeros((k, d), dtype=acc, device=x.device) if norm else None
    return (
        dx.to(x.dtype),
        dgate,
        da,
        dc,
        dres.to(inducing.dtype) if norm else None,
        # Copies: the two rows of one buffer must not come back as views of each other.
        dnorm[0].to(norm_weight.dtype, copy=True) if norm else None,
        dnorm[1].to(norm_bias.dtype, copy=True) if norm else None,
    )


TRITON_ACC = {torch.float32: tl.float32, torch.float64: tl.float64}


def _pointer_args(x, gate, mask, a, c, inducing, norm_weight, norm_bias) -> tuple[Tensor, ...]:
    """x, z/u, mask (as uint8), A, C, I, LayerNorm weight, bias; placeholders where absent.

    x, z/u and the mask go by their strides; the small batch-shared ones are made contiguous."""
    absent = _placeholder(x.device, x.dtype)
    norm = norm_weight is not None
    return (
        x,
        gate if gate is not None else absent,
        mask.view(torch.uint8) if mask is not None else _placeholder(x.device, torch.uint8),
        a,
        c,
        inducing.contiguous() if norm else absent,
        norm_weight.contiguous() if norm else absent,
        norm_bias.contiguous() if norm else absent,
    )


def _strides_2d(t: Tensor | None) -> tuple[int, int]:
    """Strides of an optional (B, K) gate or (B, N) mask; zeros when it is absent."""
    return t.stride() if t is not None else (0, 0)


def fused_inducing_attention(
    x: Tensor,
    inducing: Tensor,
    w_k: Tensor,
    w_v: Tensor,
    w_o: Tensor,
    num_heads: int,
    z: Tensor | None = None,
    u: Tensor | None = None,
    gamma: float | Tensor | None = None,
    key_padding_mask: Tensor | None = None,
    w_q: Tensor | None = None,
    norm_weight: Tensor | None = None,
    norm_bias: Tensor | None = None,
    norm_eps: float = 1e-5,
) -> Tensor:
    """Masked inducing-point attention on the fused Triton kernels, differentiable.

    Args (validated by the caller): x (B, N, d); inducing (K, d); w_k, w_v, w_o and optional w_q
    (d, d) in ``F.linear`` convention; z or u (B, K), at most one, with ``gamma > 0`` for u
    (then z = smooth_step(u, gamma) inside the kernel); key_padding_mask (B, N) bool, True =
    padded; norm_weight, norm_bias (d,) to fuse the residual and LayerNorm.

    Returns:
        (B, K, d): ``LayerNorm(I ⊙ z + O)`` when the norm is given, else ``O``.
    """
    from apem_kernels.ops import library

    a, c = batch_shared_factors(inducing, w_k, w_v, w_o, num_heads, w_q)
    gate = z if z is not None else u
    norm = norm_weight is not None
    out, _ = library.inducing_attention(
        x,
        gate,
        a,
        c,
        inducing if norm else None,
        norm_weight,
        norm_bias,
        key_padding_mask,
        library.as_gamma(gamma),
        float(norm_eps),
        u is not None,
    )
    return out


def fused_factored_attention(
    x: Tensor,
    a: Tensor,
    c: Tensor,
    z: Tensor | None = None,
    u: Tensor | None = None,
    gamma: float | Tensor | None = None,
    key_padding_mask: Tensor | None = None,
) -> Tensor:
    """``O = Σ_j softmax(z ⊙ A_j xᵀ) x C_j`` from given factors on the fused kernels.

    Args (validated by the caller): x (B, N, d); a (M, K, d); c (M, d, d); z or u (B, K), at
    most one, with ``gamma > 0`` for u; key_padding_mask (B, N) bool, True = padded.

    Returns:
        (B, K, d) in x's dtype; gradients flow to x, a, c and z or u.
    """
    from apem_kernels.ops import library

    acc = _accumulator_dtype(x.dtype)
    gate = z if z is not None else u
    factors = (a.to(acc).contiguous(), c.to(acc).contiguous())
    out, _ = library.inducing_attention(
        x,
        gate,
        *factors,
        None,
        None,
        None,
        key_padding_mask,
        library.as_gamma(gamma),
        1e-5,
        u is not None,
    )
    return out


# Pointer arguments held in the accumulator dtype (float64 for float64 inputs, else float32);
# the others take the input dtype.
_ACCUMULATOR_POINTERS = {
    "a_ptr",
    "c_ptr",
    "lse_ptr",
    "dx_ptr",
    "da_ptr",
    "dc_ptr",
    "dres_ptr",
    "dnorm_ptr",
}


def _signature(kernel, dtype: torch.dtype) -> dict[str, str]:
    """Triton type of every argument of ``kernel`` launched on ``dtype`` inputs."""
    types = {}
    for name, param in inspect.signature(kernel.fn).parameters.items():
        if param.annotation is tl.constexpr:
            types[name] = "constexpr"
        elif name == "mask_ptr":
            types[name] = "*u8"
        elif name.endswith("_ptr"):
            held = _accumulator_dtype(dtype) if name in _ACCUMULATOR_POINTERS else dtype
            types[name] = f"*{TRITON_DTYPES[held]}"
        elif name == "gamma":
            types[name] = "fp64"
        elif name == "eps":
            types[name] = "fp32"
        else:
            types[name] = "i32"
    return types


# Flag sets compiled at every dtype and width (all on: the largest variant); the others are
# compiled at one (fp32, d <= 32) configuration, since flags change no tile shape.
_ALL_FLAGS = {"HAS_Z": True, "Z_FROM_U": True, "HAS_MASK": True, "HAS_NORM": True}


def _flag_sets() -> list[dict]:
    """Every flag combination the launcher can pass (z absent, given, or computed from u)."""
    sets = []
    for gate in ("none", "z", "u"):
        for mask in (False, True):
            for norm in (False, True):
                sets.append(
                    {
                        "HAS_Z": gate != "none",
                        "Z_FROM_U": gate == "u",
                        "HAS_MASK": mask,
                        "HAS_NORM": norm,
                    }
                )
    return sets


def compile_specs() -> list[KernelSpec]:
    """Every (kernel, dtype, tiles) configuration the launchers can choose, for AOT compiles:
    all flags on at every dtype and width, every flag set at fp32 with d <= 32."""
    configs = [(dtype, width, _ALL_FLAGS) for dtype in _DTYPES for width in _WIDTH_BUCKETS]
    configs += [(torch.float32, 32, f) for f in _flag_sets() if f != _ALL_FLAGS]
    specs = []
    for dtype, width, flags in configs:
        cfg = tile_config(width, dtype)
        flag_name = "".join(k[0] if v else "-" for k, v in zip("zumn", flags.values(), strict=True))
        for kernel in (_forward_kernel, _backward_kernel):
            specs.append(
                KernelSpec(
                    name=f"{kernel.__name__}[{TRITON_DTYPES[dtype]},d={width},{flag_name}]",
                    kernel=kernel,
                    signature=_signature(kernel, dtype),
                    constexprs={
                        "ACC": TRITON_ACC[_accumulator_dtype(dtype)],
                        **flags,
                        **_tiles(cfg),
                    },
                    num_warps=cfg.num_warps,
                    tags={"dtype": dtype, "block_d": width, **flags},
                )
            )
    return specs
