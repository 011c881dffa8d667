"""Fused masked inducing-point attention: Triton forward and backward (docs/design.md).

Per head ``j`` (columns ``c_j`` of width ``d_h = d / M``) the batch-shared factors

    A_j = I'[:, c_j] @ w_k[c_j, :] / sqrt(d_h)   (K, d)     I' = I, or F.linear(I, w_q)
    C_j = w_v[c_j, :].T @ w_o[:, c_j].T          (d, d)

turn one sample's attention into ``R_j = A_j xᵀ``, ``P_j = masked_softmax(z ⊙ R_j)`` over the
N keys, ``T_j = P_j x`` and ``O = Σ_j T_j C_j``. A, C are plain differentiable torch (computed once
per call), so autograd chains their gradients to the inducing points and weights.

The heads are stacked into one tile of ``R = BLOCK_K · HEADS`` rows (row ``k · HEADS + j`` is
inducing point k of head j; HEADS is M padded to a power of two, the padded heads have A = C = 0),
so every head's scores come from one ``tl.dot`` and ``O = [T_0 | T_1 | …] @ [C_0; C_1; …]`` is one
more. A program owns one block of K rows and a strided set of samples (persistent grid sized from
the compiled kernel's occupancy); A, C, I and the LayerNorm parameters are loaded once per
program, x once per sample.
When N fits one key tile (``SINGLE_PASS``) the softmax is computed in one pass
(scores once per head); otherwise key tiles stream through an online softmax, and the forward
saves the row logsumexp (base 2) when the backward needs it (``SAVE_LSE``: the backward's key
tile, never smaller, may still hold all N). Scores are in base 2: log2(e) is folded into A
(forward) or the row scale (backward), so the exponentials are ``exp2``.

Backward, in two launches over the same programs' layout (docs/design.md, "The backward in two
passes"). The output pass, per sample, recomputes P and T (and O for the norm), takes dy through
the LayerNorm and the residual to dO, and writes dT = dO Cᵀ (in x's dtype), δ = rowsum(dT ⊙ T),
the row logsumexp where the forward saved none, and the residual's share of dz; it accumulates
dC, the residual's dI and the LayerNorm weight's gradient. The key pass recomputes P from the
logsumexp over key tiles, forms dP = dT xᵀ, dS, and writes dx once (in x's dtype when K is one
block) and dz; it accumulates dA. The scores are computed once in each pass. The batch-shared
gradients accumulate in registers over a program's samples and are written once per program
into per-program slots summed afterwards in torch: no atomics, so two runs are bit-identical.
Split, each pass fits 3 CTAs/SM (``maxnreg``) for 2-byte inputs at d <= 32; the price is dT, δ
and the logsumexp written and read once more.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, replace

import torch
import triton
import triton.language as tl
from torch import Tensor

from apem_kernels.eager import attention_factors
from apem_kernels.ops.smooth_step import (
    smooth_step_coefficients,
    smooth_step_slope,
    smooth_step_value,
)
from apem_kernels.ops.utils import (
    TRITON_DTYPES,
    KernelSpec,
    block_size,
    ctas_per_sm,
    fused_supports,
    interpreting,
    new_output,
    registers_for,
)

# Most stacked rows (BLOCK_K · HEADS) and most elements of a (rows, keys) or (rows, d) tile: the
# register budget of 4 warps; larger K loops over K blocks in separate programs, larger N over key
# tiles (online softmax).
_MAX_ROWS = 128
_MAX_TILE = 8192
# CTAs per SM the backward's passes are compiled for where they fit (``maxnreg``: 168 registers
# at 4 warps).
_BACKWARD_CTAS = 3
_INTERPRETER_PROGRAMS = 2
NUM_STAGES = 1
# Dtypes compile_specs() covers; float64 serves gradcheck and the float64 tests on a GPU.
_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)
LOG2E = 1.4426950408889634


@dataclass(frozen=True)
class LaunchConfig:
    """Compile-time sizes and tiles of one launch (see ``launch_config``)."""

    keys: int
    inducing: int
    dim: int
    num_heads: int
    block_k: int
    block_heads: int
    block_n: int
    block_d: int
    single_pass: bool
    num_warps: int
    keys_block_n: int
    max_registers: int | None

    def keys_pass(self) -> LaunchConfig:
        """The backward's second pass: the same tiles but its own key tile."""
        return replace(self, block_n=self.keys_block_n, single_pass=self.keys <= self.keys_block_n)

    def constexprs(self) -> dict:
        return {
            "N": self.keys,
            "K": self.inducing,
            "D": self.dim,
            "M": self.num_heads,
            "SINGLE_PASS": self.single_pass,
            "BLOCK_K": self.block_k,
            "HEADS": self.block_heads,
            "BLOCK_N": self.block_n,
            "BLOCK_D": self.block_d,
        }


def launch_config(
    keys: int, inducing: int, dim: int, heads: int, dtype: torch.dtype, backward: bool = False
) -> LaunchConfig:
    """Sizes and tiles of the forward (or the backward) for N keys, K inducing points, width d
    and M heads.

    N, K, d and M are compile-time constants, exact (masks, strides and the LayerNorm's 1/d fold
    into the code): one compiled variant per distinct shape and flag set, three shapes for an
    APEM model (layer 1, layers 2..L, the Pattern Selector). The tiles are bucketed to powers of
    two: d is one tile (the LayerNorm needs whole rows); heads pad to a power of two; K rows per
    program as many as fit ``_MAX_ROWS`` stacked rows and R · d_pad <= ``_MAX_TILE`` / 2 (/ 4 for
    fp32 and fp64, and for the backward: 128 rows at the paper's d in the bf16 forward, 64 in
    the others; wider tiles need more shared memory than an sm_80 has, and the backward holds
    several (R, N) tiles per sample at once); the key tile is N rounded up (>= 16) when the
    (rows, keys) tile stays within ``_MAX_TILE`` elements, else the largest that does. The
    backward's key tile is never smaller than the forward's, so a forward in one pass has a
    backward in one pass. One pipeline stage: a sample's loads are few and prefetching them only
    costs registers.
    """
    block_d = block_size(dim)
    heads_p = block_size(heads, 1)
    # 4- and 8-byte inputs: half the rows and half the key tile (their dot operands take twice the
    # bytes; the fp32 backward at R = 128 needed 180 KB of shared memory on sm_90).
    wide = dtype not in (torch.float16, torch.bfloat16)
    per_row = _MAX_TILE // (4 if wide or backward else 2) // block_d
    rows_max = max(16 * heads_p, min(_MAX_ROWS, per_row))
    block_k = max(16, min(block_size(inducing), rows_max // heads_p))
    rows = block_k * heads_p
    key_tile = _MAX_TILE // 2 if wide else _MAX_TILE
    block_n = min(block_size(keys), max(16, key_tile // rows))
    tile = rows * max(block_n, block_d)
    # benchmarks/static.py at the paper shape (sm_90): 4 warps give the fewest instructions; a
    # tile past _MAX_TILE elements, or a backward of R >= 128 rows, spills less with 8.
    warps = 8 if tile > _MAX_TILE or (backward and rows >= 128) else 4
    # The backward's key pass holds four (rows, keys) tiles at once (S, P, dP, dS).
    keys_block_n = min(block_n, max(16, _MAX_TILE // 4 // rows))
    # Both backward passes fit _BACKWARD_CTAS CTAs/SM without spilling for 2-byte inputs at
    # d <= 32 (benchmarks/static.py); wider tiles would spill, so they keep ptxas's choice.
    capped = backward and not wide and block_d <= 32
    return LaunchConfig(
        keys=keys,
        inducing=inducing,
        dim=dim,
        num_heads=heads,
        block_k=block_k,
        block_heads=heads_p,
        block_n=block_n,
        block_d=block_d,
        single_pass=keys <= block_n,
        num_warps=warps,
        keys_block_n=keys_block_n,
        max_registers=registers_for(_BACKWARD_CTAS, warps) if capped else None,
    )


# Triton 3.9's interpreter gets bfloat16 tl.dot wrong; there it multiplies float32 copies.
_BF16_DOT_IN_FLOAT32 = tl.constexpr(interpreting())
_LOG2E = tl.constexpr(LOG2E)


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
    z_row, offs, valid, gamma, HAS_Z: tl.constexpr, Z_FROM_U: tl.constexpr, ACC: tl.constexpr
):
    """Row scales z at ``offs`` of one sample's (K,) gate row and dz/du (ones unless z = f_D(u))."""
    ones = tl.full(offs.shape, 1.0, ACC)
    z = ones
    dzdu = ones
    if HAS_Z:
        z = tl.load(z_row + offs, mask=valid, other=0.0).to(ACC)
        if Z_FROM_U:
            half, cubic, linear = smooth_step_coefficients(gamma, ACC)
            dzdu = smooth_step_slope(z, half, cubic, linear)
            z = smooth_step_value(z, half, cubic, linear)
    return z, dzdu


@triton.jit
def _per_point(rows, BLOCK_K: tl.constexpr, HEADS: tl.constexpr):
    """A per-row value of the stacked rows (R,) that every head of a point shares, per point
    (BLOCK_K,): gathered from the rows rather than recomputed in the (BLOCK_K, d) tiles' layout."""
    return tl.max(tl.reshape(rows, (BLOCK_K, HEADS)), axis=1)


@triton.jit
def _keys(x_ptr, mask_ptr, b, n0, N, D, HAS_MASK: tl.constexpr, BLOCK_N: tl.constexpr,
          BLOCK_D: tl.constexpr):  # fmt: skip
    """Rows n0.. of sample b: x (BLOCK_N, BLOCK_D) in x's dtype, zero outside N x D, and which
    keys count (BLOCK_N,)."""
    offs_n = n0 + tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)
    in_range = offs_n < N
    x = tl.load(
        x_ptr + b * N * D + offs_n[:, None] * D + offs_d[None, :],
        mask=in_range[:, None] & (offs_d < D)[None, :],
        other=0.0,
    )
    valid = in_range
    if HAS_MASK:
        padded = tl.load(mask_ptr + b * N + offs_n, mask=in_range, other=1)
        valid = in_range & (padded == 0)
    return x, valid


@triton.jit
def _masked(r, scale, valid, SCALED: tl.constexpr):
    """Scores ``scale ⊙ r`` (R, BLOCK_N) from products r, -inf at the keys that do not count:
    an additive column bias, so scale and mask are one FMA per element (x is zero at those keys,
    the product finite)."""
    bias = tl.where(valid, 0.0, float("-inf"))[None, :]
    if SCALED:
        return r * scale[:, None] + bias
    return r + bias


@triton.jit
def _block_indices(k0, K, D, M, BLOCK_K: tl.constexpr, HEADS: tl.constexpr,
                   BLOCK_D: tl.constexpr):  # fmt: skip
    """The indices of K block k0..: per stacked row (R,) its point and head and whether it is
    real; per point (BLOCK_K,) and per column (BLOCK_D,) the offsets and whether they are real."""
    rows = tl.arange(0, BLOCK_K * HEADS)
    row_k = k0 + rows // HEADS  # [R]
    row_j = rows % HEADS  # [R]
    row_ok = (row_k < K) & (row_j < M)
    offs_k = k0 + tl.arange(0, BLOCK_K)  # [BK]
    offs_d = tl.arange(0, BLOCK_D)  # [BD]
    return row_k, row_j, row_ok, offs_k, offs_k < K, offs_d, offs_d < D


@triton.jit
def _stacked_rows(a_ptr, row_j, row_k, row_ok, offs_d, d_ok, K, D):
    """A's stacked rows (R, BLOCK_D): row r holds A[j, k] of head row_j[r], point row_k[r]."""
    ptrs = a_ptr + (row_j * K + row_k)[:, None] * D + offs_d[None, :]
    return tl.load(ptrs, mask=row_ok[:, None] & d_ok[None, :], other=0.0)


@triton.jit
def _stacked_columns(c_ptr, offs_d, d_ok, M, D, HEADS: tl.constexpr, BLOCK_D: tl.constexpr):
    """[C_0; C_1; …] (HEADS · BLOCK_D, BLOCK_D): row j · BLOCK_D + e holds C[j, e]."""
    rows = tl.arange(0, HEADS * BLOCK_D)
    head = rows // BLOCK_D
    e = rows % BLOCK_D
    ok = (e < D) & (head < M)
    ptrs = c_ptr + (head * D + e)[:, None] * D + offs_d[None, :]
    return tl.load(ptrs, mask=ok[:, None] & d_ok[None, :], other=0.0)


@triton.jit
def _normalized(h, d_ok, D, eps):
    """LayerNorm statistics of rows h (BLOCK_K, BLOCK_D): (h - mean) * rstd and rstd."""
    mean = tl.sum(h, axis=1) / D
    centred = tl.where(d_ok[None, :], h - mean[:, None], 0.0)
    rstd = tl.math.rsqrt(tl.sum(centred * centred, axis=1) / D + eps)
    return centred * rstd[:, None], rstd


@triton.jit
def _norm_parameters(inducing_ptr, norm_w_ptr, out_offs, out_ok, offs_d, d_ok, ACC: tl.constexpr):
    """The residual's inducing rows (BLOCK_K, BLOCK_D) and the LayerNorm weight (BLOCK_D,)."""
    inducing = tl.load(inducing_ptr + out_offs, mask=out_ok, other=0.0).to(ACC)
    weight = tl.load(norm_w_ptr + offs_d, mask=d_ok, other=0.0).to(ACC)
    return inducing, weight


@triton.jit
def _forward_kernel(
    x_ptr, z_ptr, mask_ptr, a_ptr, c_ptr, inducing_ptr, norm_w_ptr, norm_b_ptr, out_ptr, lse_ptr,
    B, N: tl.constexpr, K: tl.constexpr, D: tl.constexpr, M: tl.constexpr, gamma: tl.float64, eps,
    HAS_Z: tl.constexpr, Z_FROM_U: tl.constexpr, HAS_MASK: tl.constexpr, HAS_NORM: tl.constexpr,
    SINGLE_PASS: tl.constexpr, SAVE_LSE: tl.constexpr, ACC: tl.constexpr, BLOCK_K: tl.constexpr,
    HEADS: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    """out (B, K, D) = O or LayerNorm(I ⊙ z + O) for K block program_id(1); lse (B, M, K) base-2
    row logsumexp, written only when SAVE_LSE (never with SINGLE_PASS). x, z, mask, out
    contiguous."""
    dtype = x_ptr.dtype.element_ty
    k0 = tl.program_id(1) * BLOCK_K
    row_k, row_j, row_ok, offs_k, k_ok, offs_d, d_ok = _block_indices(
        k0, K, D, M, BLOCK_K, HEADS, BLOCK_D
    )
    a = _stacked_rows(a_ptr, row_j, row_k, row_ok, offs_d, d_ok, K, D)
    a = (a * _LOG2E).to(dtype)  # [R, BD]: scores come out in base 2
    c = _stacked_columns(c_ptr, offs_d, d_ok, M, D, HEADS, BLOCK_D).to(dtype)  # [HEADS*BD, BD]
    out_offs = offs_k[:, None] * D + offs_d[None, :]  # [BK, BD]
    out_ok = k_ok[:, None] & d_ok[None, :]
    if HAS_NORM:
        inducing, weight = _norm_parameters(
            inducing_ptr, norm_w_ptr, out_offs, out_ok, offs_d, d_ok, ACC
        )
        bias = tl.load(norm_b_ptr + offs_d, mask=d_ok, other=0.0).to(ACC)
    for sample in range(tl.program_id(0), B, tl.num_programs(0)):
        b = tl.cast(sample, tl.int64)
        z_rows, _ = _gate(z_ptr + b * K, row_k, row_k < K, gamma, HAS_Z, Z_FROM_U, ACC)  # [R]
        if SINGLE_PASS:
            x, valid = _keys(x_ptr, mask_ptr, b, 0, N, D, HAS_MASK, BLOCK_N, BLOCK_D)
            s = _masked(_mm(a, tl.trans(x)), z_rows, valid, HAS_Z)  # [R, BN]
            m = tl.max(s, axis=1)
            m = tl.where(m == float("-inf"), 0.0, m)
            p = tl.exp2(s - m[:, None])
            total = tl.sum(p, axis=1)
            t = _mm(p.to(dtype), x)  # [R, BD]
        else:
            m = tl.full((BLOCK_K * HEADS,), float("-inf"), ACC)
            total = tl.zeros((BLOCK_K * HEADS,), ACC)
            t = tl.zeros((BLOCK_K * HEADS, BLOCK_D), ACC)
            for n0 in range(0, N, BLOCK_N):
                x, valid = _keys(x_ptr, mask_ptr, b, n0, N, D, HAS_MASK, BLOCK_N, BLOCK_D)
                s = _masked(_mm(a, tl.trans(x)), z_rows, valid, HAS_Z)
                m_new = tl.maximum(m, tl.max(s, axis=1))
                shift = tl.where(m_new == float("-inf"), 0.0, m_new)
                alpha = tl.exp2(m - shift)
                p = tl.exp2(s - shift[:, None])
                total = total * alpha + tl.sum(p, axis=1)
                t = t * alpha[:, None] + _mm(p.to(dtype), x)
                m = m_new
            if SAVE_LSE:
                nonzero = tl.where(total > 0, total, 1.0)
                lse = tl.where(total > 0, m + tl.log2(nonzero), float("inf"))
                tl.store(lse_ptr + b * M * K + row_j * K + row_k, lse, mask=row_ok)
        t = t * (1.0 / tl.where(total > 0, total, 1.0))[:, None]
        t_cat = tl.reshape(t.to(dtype), (BLOCK_K, HEADS * BLOCK_D))  # [BK, HEADS*BD]
        out = _mm(t_cat, c)  # [BK, BD]
        if HAS_NORM:
            z = _per_point(z_rows, BLOCK_K, HEADS)  # [BK]
            xhat, _ = _normalized(inducing * z[:, None] + out, d_ok, D, eps)
            out = xhat * weight[None, :] + bias[None, :]
        tl.store(out_ptr + b * K * D + out_offs, out, mask=out_ok)


@triton.jit
def _key_tile_gradients(a, x, p, dp, delta, dt_in, z_rows, HAS_Z: tl.constexpr):
    """For one key tile with scores z ⊙ R, R = A xᵀ, probabilities P and dP = dT xᵀ
    (R, BLOCK_N): dS = P ⊙ (dP − δ) and G = dS x. Returns dz per row (R,) = rowsum(dS ⊙ R) =
    rowsum(G ⊙ A) (R itself is not needed), dA (R, BD) = z ⊙ G and dx (BLOCK_N, BD) of the
    tile."""
    dtype = x.dtype
    ds = p.to(dp.dtype) * (dp - delta[:, None])
    ds_in = ds.to(dtype)
    g = _mm(ds_in, x)  # [R, BD]
    dz_rows = tl.sum(g * a.to(g.dtype), axis=1)
    da = g
    dr_in = ds_in
    if HAS_Z:
        da = g * z_rows[:, None]
        dr_in = (ds * z_rows[:, None]).to(dtype)
    dx = _mm(tl.trans(p.to(dtype)), dt_in) + _mm(tl.trans(dr_in), a)  # [BN, BD]
    return dz_rows, da, dx


@triton.jit
def _backward_output_kernel(
    x_ptr, z_ptr, mask_ptr, a_ptr, c_ptr, inducing_ptr, norm_w_ptr, norm_b_ptr, lse_ptr, dy_ptr,
    dt_ptr, delta_ptr, dzn_ptr, dc_ptr, dres_ptr, dweight_ptr,
    B, N: tl.constexpr, K: tl.constexpr, D: tl.constexpr, M: tl.constexpr, gamma: tl.float64, eps,
    HAS_Z: tl.constexpr, Z_FROM_U: tl.constexpr, HAS_MASK: tl.constexpr, HAS_NORM: tl.constexpr,
    SINGLE_PASS: tl.constexpr, ACC: tl.constexpr, BLOCK_K: tl.constexpr, HEADS: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    """Backward, first pass (the output side), for K block kb = program_id(1), handing the key
    pass per sample: from dy (B, K, D) dT (B, M, K, D) in x's dtype and δ = rowsum(dT ⊙ T)
    (B, M, K); with SINGLE_PASS the base-2 row logsumexp into lse (B, M, K) (else it reads the
    forward's); with the norm and a gate the residual's share of dz (B, K) in ACC. Once per
    program, summed by the caller: dc (G·KB, M, D, D); with the norm dres (G, K, D) (rows of
    block kb) and dweight (G·KB, D) (the bias's gradient is the sum of dy, which the caller
    takes).
    """
    dtype = x_ptr.dtype.element_ty
    kb = tl.program_id(1)
    program = tl.program_id(0) * tl.num_programs(1) + kb
    k0 = kb * BLOCK_K
    row_k, row_j, row_ok, offs_k, k_ok, offs_d, d_ok = _block_indices(
        k0, K, D, M, BLOCK_K, HEADS, BLOCK_D
    )
    a = _stacked_rows(a_ptr, row_j, row_k, row_ok, offs_d, d_ok, K, D).to(dtype)  # [R, BD]
    c = _stacked_columns(c_ptr, offs_d, d_ok, M, D, HEADS, BLOCK_D).to(dtype)  # [HEADS*BD, BD]
    out_offs = offs_k[:, None] * D + offs_d[None, :]  # [BK, BD]
    out_ok = k_ok[:, None] & d_ok[None, :]
    rows_offs = (row_j * K + row_k)[:, None] * D + offs_d[None, :]  # [R, BD]
    rows_ok = row_ok[:, None] & d_ok[None, :]
    if HAS_NORM:
        inducing, weight = _norm_parameters(
            inducing_ptr, norm_w_ptr, out_offs, out_ok, offs_d, d_ok, ACC
        )
    dc = tl.zeros((HEADS * BLOCK_D, BLOCK_D), ACC)
    dres = tl.zeros((BLOCK_K, BLOCK_D), ACC)
    dweight = tl.zeros((BLOCK_D,), ACC)
    for sample in range(tl.program_id(0), B, tl.num_programs(0)):
        b = tl.cast(sample, tl.int64)
        z_rows, _ = _gate(z_ptr + b * K, row_k, row_k < K, gamma, HAS_Z, Z_FROM_U, ACC)
        scale = z_rows * _LOG2E  # [R]: natural scores to base 2
        handed = b * M * K + row_j * K + row_k  # [R]: this sample's rows of lse and δ
        if SINGLE_PASS:
            x, valid = _keys(x_ptr, mask_ptr, b, 0, N, D, HAS_MASK, BLOCK_N, BLOCK_D)
            s = _masked(_mm(a, tl.trans(x)), scale, valid, True)  # [R, BN]
            m = tl.max(s, axis=1)
            m = tl.where(m == float("-inf"), 0.0, m)
            p = tl.exp2(s - m[:, None])
            total = tl.sum(p, axis=1)
            nonzero = tl.where(total > 0, total, 1.0)
            t = _mm(p.to(dtype), x) * (1.0 / nonzero)[:, None]  # [R, BD]
            lse = tl.where(total > 0, m + tl.log2(nonzero), float("inf"))
            tl.store(lse_ptr + handed, lse, mask=row_ok)
        else:
            lse = tl.load(lse_ptr + handed, mask=row_ok, other=float("inf"))
            t = tl.zeros((BLOCK_K * HEADS, BLOCK_D), ACC)
            for n0 in range(0, N, BLOCK_N):
                x, valid = _keys(x_ptr, mask_ptr, b, n0, N, D, HAS_MASK, BLOCK_N, BLOCK_D)
                s = _masked(_mm(a, tl.trans(x)), scale, valid, True)
                t += _mm(tl.exp2(s - lse[:, None]).to(dtype), x)
        t = t.to(dtype)
        t_cat = tl.reshape(t, (BLOCK_K, HEADS * BLOCK_D))  # [BK, HEADS*BD]
        # dO from dy through the LayerNorm and the residual
        dy = tl.load(dy_ptr + b * K * D + out_offs, mask=out_ok, other=0.0).to(ACC)  # [BK, BD]
        if HAS_NORM:
            z, _ = _gate(z_ptr + b * K, offs_k, k_ok, gamma, HAS_Z, Z_FROM_U, ACC)  # [BK]
            out = _mm(t_cat, c)  # [BK, BD]
            xhat, rstd = _normalized(inducing * z[:, None] + out, d_ok, D, eps)
            dweight += tl.sum(dy * xhat, axis=0)
            dxhat = dy * weight[None, :]
            mean_g = tl.sum(dxhat, axis=1) / D
            mean_gx = tl.sum(dxhat * xhat, axis=1) / D
            dh = dxhat - mean_g[:, None] - xhat * mean_gx[:, None]
            # xhat is 0 in the padded columns, dy in the padded rows: only dh's columns need it
            do = tl.where(d_ok[None, :], dh * rstd[:, None], 0.0)
            dres += do * z[:, None]
            if HAS_Z:
                tl.store(dzn_ptr + b * K + offs_k, tl.sum(do * inducing, axis=1), mask=k_ok)
        else:
            do = dy
        do_in = do.to(dtype)
        dc += _mm(tl.trans(t_cat), do_in)  # [HEADS*BD, BD]
        dt = tl.reshape(_mm(do_in, tl.trans(c)), (BLOCK_K * HEADS, BLOCK_D))  # [R, BD]
        tl.store(dt_ptr + b * M * K * D + rows_offs, dt.to(dtype), mask=rows_ok)
        # rowsum(dT ⊙ T) = rowsum(P ⊙ dP): the key pass needs it before its first key tile
        tl.store(delta_ptr + handed, tl.sum(dt * t.to(ACC), axis=1), mask=row_ok)
    c_rows = tl.arange(0, HEADS * BLOCK_D)
    c_head = c_rows // BLOCK_D
    c_e = c_rows % BLOCK_D
    dc_ptrs = dc_ptr + program * M * D * D + (c_head * D + c_e)[:, None] * D + offs_d[None, :]
    tl.store(dc_ptrs, dc, mask=((c_e < D) & (c_head < M))[:, None] & d_ok[None, :])
    if HAS_NORM:
        group = tl.cast(tl.program_id(0), tl.int64)
        tl.store(dres_ptr + group * K * D + out_offs, dres, mask=out_ok)
        tl.store(dweight_ptr + program * D + offs_d, dweight, mask=d_ok)


@triton.jit
def _backward_keys_kernel(
    x_ptr, z_ptr, mask_ptr, a_ptr, lse_ptr, dt_ptr, delta_ptr, dzn_ptr, dx_ptr, dz_ptr, da_ptr,
    B, N: tl.constexpr, K: tl.constexpr, D: tl.constexpr, M: tl.constexpr, gamma: tl.float64,
    HAS_Z: tl.constexpr, Z_FROM_U: tl.constexpr, HAS_MASK: tl.constexpr, HAS_NORM: tl.constexpr,
    ACC: tl.constexpr, BLOCK_K: tl.constexpr, HEADS: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
):  # fmt: skip
    """Backward, second pass (the key side), for K block kb = program_id(1): from what the
    output pass handed over (dT, δ, lse, the residual's dz) per sample dx, (KB, B, N, D) (x's
    dtype when KB = 1, else partial sums in ACC), and dz (B, K) (d/du when Z_FROM_U). Once per
    program, summed by the caller: da (G, M, K, D) (rows of block kb).
    """
    dtype = x_ptr.dtype.element_ty
    kb = tl.program_id(1)
    k0 = kb * BLOCK_K
    row_k, row_j, row_ok, offs_k, k_ok, offs_d, d_ok = _block_indices(
        k0, K, D, M, BLOCK_K, HEADS, BLOCK_D
    )
    a = _stacked_rows(a_ptr, row_j, row_k, row_ok, offs_d, d_ok, K, D).to(dtype)  # [R, BD]
    rows_offs = (row_j * K + row_k)[:, None] * D + offs_d[None, :]  # [R, BD]
    rows_ok = row_ok[:, None] & d_ok[None, :]
    da = tl.zeros((BLOCK_K * HEADS, BLOCK_D), ACC)
    for sample in range(tl.program_id(0), B, tl.num_programs(0)):
        b = tl.cast(sample, tl.int64)
        z_rows, _ = _gate(z_ptr + b * K, row_k, row_k < K, gamma, HAS_Z, Z_FROM_U, ACC)
        scale = z_rows * _LOG2E  # [R]: natural scores to base 2
        dt_in = tl.load(dt_ptr + b * M * K * D + rows_offs, mask=rows_ok, other=0.0)  # [R, BD]
        handed = b * M * K + row_j * K + row_k  # [R]: this sample's rows of lse and δ
        lse = tl.load(lse_ptr + handed, mask=row_ok, other=float("inf"))
        delta = tl.load(delta_ptr + handed, mask=row_ok, other=0.0)
        dx_row = dx_ptr + (kb * B + b) * N * D
        dz_rows = tl.zeros((BLOCK_K * HEADS,), ACC)
        for n0 in range(0, N, BLOCK_N):
            x, valid = _keys(x_ptr, mask_ptr, b, n0, N, D, HAS_MASK, BLOCK_N, BLOCK_D)
            s = _masked(_mm(a, tl.trans(x)), scale, valid, True)  # [R, BN]
            p = tl.exp2(s - lse[:, None])
            dp = _mm(dt_in, tl.trans(x))  # [R, BN]
            dz_tile, da_b, dx = _key_tile_gradients(a, x, p, dp, delta, dt_in, z_rows, HAS_Z)
            dz_rows += dz_tile
            da += da_b
            offs_n = n0 + tl.arange(0, BLOCK_N)
            dx_ok = (offs_n < N)[:, None] & d_ok[None, :]
            tl.store(dx_row + offs_n[:, None] * D + offs_d[None, :], dx, mask=dx_ok)
        if HAS_Z:
            _, dzdu = _gate(z_ptr + b * K, offs_k, k_ok, gamma, HAS_Z, Z_FROM_U, ACC)
            dz = tl.sum(tl.reshape(dz_rows, (BLOCK_K, HEADS)), axis=1)  # [BK]
            if HAS_NORM:
                dz += tl.load(dzn_ptr + b * K + offs_k, mask=k_ok, other=0.0)
            tl.store(dz_ptr + b * K + offs_k, dz * dzdu, mask=k_ok)
    group = tl.cast(tl.program_id(0), tl.int64)
    da_ptrs = da_ptr + group * M * K * D + (row_j * K + row_k)[:, None] * D + offs_d[None, :]
    tl.store(da_ptrs, da, mask=row_ok[:, None] & d_ok[None, :])


def batch_shared_factors(
    inducing: Tensor, w_k: Tensor, w_v: Tensor, w_o: Tensor, num_heads: int, w_q: Tensor | None
) -> tuple[Tensor, Tensor]:
    """A (M, K, d) and C (M, d, d) (``eager.attention_factors``), differentiable, contiguous, in
    the accumulator dtype (float32, or float64 for float64 inputs), autocast or not."""
    dtype = _accumulator_dtype(inducing.dtype)
    with torch.autocast(inducing.device.type, enabled=False):
        a, c = attention_factors(
            inducing.to(dtype),
            w_k.to(dtype),
            w_v.to(dtype),
            w_o.to(dtype),
            num_heads,
            None if w_q is None else w_q.to(dtype),
        )
    return a.contiguous(), c.contiguous()


def _accumulator_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


TRITON_ACC = {torch.float32: tl.float32, torch.float64: tl.float64}


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


_OCCUPANCY: dict[tuple, int] = {}


def _resident_programs(kernel, args: dict, device: torch.device) -> int:
    """Programs the whole GPU holds at once for this compiled variant (CTAs/SM from its registers,
    warps and shared memory, times the SMs); 2 under the interpreter."""
    if interpreting() or device.type != "cuda":
        return _INTERPRETER_PROGRAMS
    constexprs = [
        name
        for name, param in inspect.signature(kernel.fn).parameters.items()
        if param.annotation is tl.constexpr
    ]
    key = (kernel.__name__, device.index, args["x_ptr"].dtype, args["num_warps"])
    key += tuple(str(args[name]) for name in constexprs)
    if key not in _OCCUPANCY:
        compiled = kernel.warmup(**args, grid=(1, 1))
        compiled._init_handles()
        props = torch.cuda.get_device_properties(device)
        per_sm = ctas_per_sm(
            regs=compiled.n_regs,
            num_warps=compiled.metadata.num_warps,
            smem=compiled.metadata.shared,
            capability=props.major * 10 + props.minor,
        )
        _OCCUPANCY[key] = max(1, per_sm) * props.multi_processor_count
    return _OCCUPANCY[key]


def _common_args(
    x, gate, mask, a, c, inducing, norm_weight, norm_bias, gamma, eps, gate_is_u, *, backward
):
    """Keyword arguments both kernels share: inputs (x, z/u, mask contiguous; placeholders where
    absent), sizes, scalars, flags, and the tiles and warps of the forward or the backward."""
    batch, n, d = x.shape
    m, k, _ = a.shape
    norm = norm_weight is not None
    cfg = launch_config(n, k, d, m, x.dtype, backward=backward)
    absent = _placeholder(x.device, x.dtype)
    args = {
        "x_ptr": x.contiguous(),
        "z_ptr": gate.contiguous() if gate is not None else absent,
        "mask_ptr": (
            mask.contiguous().view(torch.uint8)
            if mask is not None
            else _placeholder(x.device, torch.uint8)
        ),
        "a_ptr": a,
        "c_ptr": c,
        "inducing_ptr": inducing.contiguous() if norm else absent,
        "norm_w_ptr": norm_weight.contiguous() if norm else absent,
        "norm_b_ptr": norm_bias.contiguous() if norm else absent,
        "B": batch,
        "gamma": float(gamma or 1.0),
        "eps": float(eps),
        **_flags(gate, gate_is_u, mask, norm),
        "ACC": TRITON_ACC[_accumulator_dtype(x.dtype)],
        **cfg.constexprs(),
        "num_warps": cfg.num_warps,
        "num_stages": NUM_STAGES,
    }
    if cfg.max_registers is not None:
        args["maxnreg"] = cfg.max_registers
    return args, cfg


def lse_size(keys: int, inducing: int, dim: int, heads: int, dtype: torch.dtype) -> int:
    """Last dimension of the forward's saved row logsumexp (B, M, ·): K when the backward's keys
    take several tiles, 0 when one tile holds them (the backward recomputes it)."""
    backward = launch_config(keys, inducing, dim, heads, dtype, backward=True)
    return 0 if backward.single_pass else inducing


def _forward(x, gate, a, c, inducing, norm_weight, norm_bias, mask, gamma, eps, gate_is_u):
    """Launch the forward: out (B, K, d) in x's dtype and the saved base-2 row logsumexp
    (B, M, ``lse_size``) in the accumulator dtype."""
    batch, n, d = x.shape
    m, k, _ = a.shape
    args, cfg = _common_args(
        x, gate, mask, a, c, inducing, norm_weight, norm_bias, gamma, eps, gate_is_u, backward=False
    )
    out = new_output((batch, k, d), x.dtype, x.device)
    lse = new_output((batch, m, lse_size(n, k, d, m, x.dtype)), a.dtype, x.device)
    if batch > 0:
        args.update(
            out_ptr=out,
            lse_ptr=lse if lse.numel() else _placeholder(x.device, a.dtype),
            SAVE_LSE=lse.shape[-1] > 0,
        )
        k_blocks = triton.cdiv(k, cfg.block_k)
        programs = _resident_programs(_forward_kernel, args, x.device)
        grid = (max(1, min(batch, programs // k_blocks)), k_blocks)
        _forward_kernel[grid](**args)
    return out, lse


def _backward(
    dy, x, gate, a, c, inducing, norm_weight, norm_bias, mask, lse, gamma, eps, gate_is_u
):
    """Launch the backward's two passes; returns (dx, dgate, dA, dC, dI through the residual,
    dweight, dbias), the last three None without the norm."""
    batch, n, d = x.shape
    m, k, _ = a.shape
    acc = _accumulator_dtype(x.dtype)
    norm = norm_weight is not None
    args, cfg = _common_args(
        x, gate, mask, a, c, inducing, norm_weight, norm_bias, gamma, eps, gate_is_u, backward=True
    )
    k_blocks = triton.cdiv(k, cfg.block_k)
    dgate = new_output((batch, k), gate.dtype, x.device) if gate is not None else None
    if batch == 0:
        dx = torch.zeros_like(x)
        da, dc = torch.zeros_like(a), torch.zeros_like(c)
        dres = torch.zeros((k, d), dtype=acc, device=x.device) if norm else None
        dweight = torch.zeros(d, dtype=acc, device=x.device) if norm else None
    else:
        absent = _placeholder(x.device, acc)
        # What the first pass hands the second: dT, δ, the logsumexp (the forward's, or the first
        # pass's when one key tile holds N) and dz's residual part.
        if not lse.numel():
            lse = new_output((batch, m, k), acc, x.device)
        dt = new_output((batch, m, k, d), x.dtype, x.device)
        delta = new_output((batch, m, k), acc, x.device)
        dzn = new_output((batch, k), acc, x.device) if norm and gate is not None else absent
        handed = {"lse_ptr": lse, "dt_ptr": dt, "delta_ptr": delta, "dzn_ptr": dzn}

        output_args = {**args, **handed, "dy_ptr": dy.contiguous()}
        groups = _groups(_backward_output_kernel, output_args, batch, k_blocks, x)
        dc = new_output((groups * k_blocks, m, d, d), acc, x.device)
        dres = new_output((groups, k, d), acc, x.device) if norm else None
        dweight = new_output((groups * k_blocks, d), acc, x.device) if norm else None
        output_args.update(
            dc_ptr=dc,
            dres_ptr=dres if norm else absent,
            dweight_ptr=dweight if norm else absent,
        )
        _backward_output_kernel[(groups, k_blocks)](**output_args)

        keys_args = {name: args[name] for name in _KEYS_ARGS if name in args} | handed
        keys_args["BLOCK_N"] = cfg.keys_pass().block_n  # the key tile launch_specs compiles
        groups = _groups(_backward_keys_kernel, keys_args, batch, k_blocks, x)
        # One K block: every dx element has one writer, in x's dtype; several: partial sums.
        dx = (
            new_output((batch, n, d), x.dtype, x.device)
            if k_blocks == 1
            else new_output((k_blocks, batch, n, d), acc, x.device)
        )
        da = new_output((groups, m, k, d), acc, x.device)
        keys_args.update(dx_ptr=dx, dz_ptr=dgate if gate is not None else absent, da_ptr=da)
        _backward_keys_kernel[(groups, k_blocks)](**keys_args)
        if k_blocks > 1:
            dx = dx.sum(0).to(x.dtype)
        da, dc = da.sum(0), dc.sum(0)
        dres = dres.sum(0) if norm else None
        dweight = dweight.sum(0) if norm else None
    return (
        dx,
        dgate,
        da,
        dc,
        dres.to(inducing.dtype) if norm else None,
        dweight.to(norm_weight.dtype) if norm else None,
        dy.sum((0, 1), dtype=acc).to(norm_bias.dtype) if norm else None,
    )


# The second pass's arguments beside what the first hands it (it needs neither C nor the norm).
_KEYS_ARGS = tuple(
    name
    for name in inspect.signature(_backward_keys_kernel.fn).parameters
    if not name.endswith("_ptr") or name in ("x_ptr", "z_ptr", "mask_ptr", "a_ptr")
) + ("num_warps", "num_stages", "maxnreg")


def _groups(kernel, args: dict, batch: int, k_blocks: int, x: Tensor) -> int:
    """Sample groups of a launch (programs along the batch): as many as the GPU holds at once
    with every K block's program, at most one per sample."""
    warmup = {**args, **_grad_placeholders(kernel, x, _accumulator_dtype(x.dtype))}
    return max(1, min(batch, _resident_programs(kernel, warmup, x.device) // k_blocks))


def _grad_placeholders(kernel, x: Tensor, acc: torch.dtype) -> dict:
    """The pointers of ``kernel`` missing from a launch's arguments so far, for a compile-only
    warmup (typed, never written): dx in x's dtype, the others in the accumulator dtype."""
    return {
        name: _placeholder(x.device, x.dtype if name == "dx_ptr" else acc)
        for name in inspect.signature(kernel.fn).parameters
        if name in _GRADIENT_POINTERS
    }


_GRADIENT_POINTERS = ("dx_ptr", "dz_ptr", "da_ptr", "dc_ptr", "dres_ptr", "dweight_ptr")


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

    Args (validated by the caller, ``fused_supports(d, num_heads, x.dtype)``): x (B, N, d); inducing
    (K, d); w_k, w_v, w_o and optional w_q (d, d) in ``F.linear`` convention; z or u (B, K), at
    most one, with ``gamma > 0`` for u (then z = smooth_step(u, gamma) inside the kernel);
    key_padding_mask (B, N) bool, True = padded; norm_weight, norm_bias (d,) to fuse the residual
    and LayerNorm.

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
# the others take the input dtype. dx is the input dtype (one K block, what specs compile).
_ACCUMULATOR_POINTERS = {
    "a_ptr",
    "c_ptr",
    "lse_ptr",
    "delta_ptr",
    "dzn_ptr",
    "da_ptr",
    "dc_ptr",
    "dres_ptr",
    "dweight_ptr",
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


def _spec(kernel, dtype: torch.dtype, cfg: LaunchConfig, flags: dict, name: str) -> KernelSpec:
    signature = _signature(kernel, dtype)
    constexprs = {"ACC": TRITON_ACC[_accumulator_dtype(dtype)], **flags, **cfg.constexprs()}
    return KernelSpec(
        name=f"{kernel.__name__}[{name}]",
        kernel=kernel,
        signature=signature,
        constexprs={key: value for key, value in constexprs.items() if key in signature},
        num_warps=cfg.num_warps,
        num_stages=NUM_STAGES,
        max_registers=cfg.max_registers,
        # the key-tile loop's trips at this shape (benchmarks/static.py counts a sample's cost)
        tags={
            "dtype": dtype,
            "config": cfg,
            "loop_trips": () if cfg.single_pass else (triton.cdiv(cfg.keys, cfg.block_n),),
            **flags,
        },
    )


# What APEM's ASRG blocks launch: z from u, fused norm, no padding mask.
APEM_FLAGS = {"HAS_Z": True, "Z_FROM_U": True, "HAS_MASK": False, "HAS_NORM": True}


def launch_specs(
    keys: int, inducing: int, dim: int, heads: int, dtype: torch.dtype, flags: dict = APEM_FLAGS
) -> dict[str, KernelSpec]:
    """The forward and backward the launchers choose for this shape, dtype and flags."""
    flag_names = "".join(f if flags[k] else "-" for f, k in zip("zumn", APEM_FLAGS, strict=True))
    name = f"{TRITON_DTYPES[dtype]},N={keys},K={inducing},d={dim},M={heads},{flag_names}"
    forward = launch_config(keys, inducing, dim, heads, dtype)
    backward = launch_config(keys, inducing, dim, heads, dtype, backward=True)
    saves = {"SAVE_LSE": lse_size(keys, inducing, dim, heads, dtype) > 0}
    return {
        "forward": _spec(_forward_kernel, dtype, forward, {**flags, **saves}, name),
        "backward_output": _spec(_backward_output_kernel, dtype, backward, flags, name),
        "backward_keys": _spec(_backward_keys_kernel, dtype, backward.keys_pass(), flags, name),
    }


# Flag sets compiled beside the all-on one: APEM's Pattern Selector (PMA: no gate), APEM's ASRG
# block (APEM_FLAGS), a masked plain attention, the factored attention without anything.
_FLAG_SETS = (
    {"HAS_Z": False, "Z_FROM_U": False, "HAS_MASK": False, "HAS_NORM": True},
    APEM_FLAGS,
    {"HAS_Z": True, "Z_FROM_U": False, "HAS_MASK": True, "HAS_NORM": False},
    {"HAS_Z": False, "Z_FROM_U": False, "HAS_MASK": False, "HAS_NORM": False},
)


def compile_specs() -> list[KernelSpec]:
    """Configurations for AOT compiles, both kernels each: every flag on, in every dtype, at the
    paper shape (one key tile) and at N = 100 (for 2-byte inputs a forward over two key tiles
    whose backward takes one: no logsumexp saved); at N = 1024 (online softmax over key tiles)
    with d = 32 and 64, and at d = 128, with the most heads the dtype allows there; the other
    flag sets at the paper shape in bf16 (flags change no tile shape)."""
    every = {"HAS_Z": True, "Z_FROM_U": True, "HAS_MASK": True, "HAS_NORM": True}
    specs = []
    for dtype in _DTYPES:
        for keys in (18, 100):
            specs.extend(launch_specs(keys, 64, 18, 2, dtype, every).values())
        for keys, dim in ((1024, 32), (1024, 64), (64, 128)):
            fitting = [h for h in (1, 2, 4, 8) if fused_supports(dim, h, dtype)]
            if fitting:  # float32 and float64 stop at d = 32
                specs.extend(launch_specs(keys, 64, dim, max(fitting), dtype, every).values())
    for flags in _FLAG_SETS:
        specs.extend(launch_specs(18, 64, 18, 2, torch.bfloat16, flags).values())
    return specs
