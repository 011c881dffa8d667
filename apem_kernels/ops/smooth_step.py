"""Triton kernels for the cubic smooth step f_D(u; gamma) (DESIGN.md §2), forward and backward.

Elementwise over a flattened tensor of any shape. fp16/bf16/fp32 are computed in fp32, fp64 in
fp64 (for gradcheck); results are stored in the input's dtype. Offsets are 64-bit.
"""

from __future__ import annotations

import triton
import triton.language as tl
from torch import Tensor

from apem_kernels.ops.utils import TRITON_DTYPES, KernelSpec, new_output

BLOCK = 1024
NUM_WARPS = 4


@triton.jit
def smooth_step_coefficients(gamma, compute: tl.constexpr):
    """(gamma/2, -2/gamma^3, 3/(2 gamma)) in ``compute``, derived in fp64 like the reference."""
    g = tl.cast(gamma, tl.float64)
    return (
        tl.cast(g * 0.5, compute),
        tl.cast(-2.0 / (g * g * g), compute),
        tl.cast(1.5 / g, compute),
    )


@triton.jit
def smooth_step_value(v, half, cubic, linear):
    """f_D(v): 0 for v <= -half, 1 for v >= half, ``cubic * v^3 + linear * v + 1/2`` between."""
    inside = cubic * v * v * v + linear * v + 0.5
    return tl.where(v <= -half, 0.0, tl.where(v >= half, 1.0, inside))


@triton.jit
def smooth_step_slope(v, half, cubic, linear):
    """f_D'(v): ``3 * cubic * v^2 + linear`` for |v| < half, else 0."""
    return tl.where(tl.abs(v) < half, 3.0 * cubic * v * v + linear, 0.0)


@triton.jit
def _smooth_step_fwd_kernel(
    u_ptr,
    out_ptr,
    n: tl.int64,
    gamma: tl.float64,
    BLOCK: tl.constexpr,
):
    """out[i] = f_D(u[i]) for i < n; u and out are flat, contiguous, same dtype."""
    # fp64 stays fp64 (gradcheck); every other float type is computed in fp32.
    compute: tl.constexpr = tl.float64 if u_ptr.dtype.element_ty == tl.float64 else tl.float32
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    in_range = offsets < n
    v = tl.load(u_ptr + offsets, mask=in_range, other=0.0).to(compute)
    half, cubic, linear = smooth_step_coefficients(gamma, compute)
    out = smooth_step_value(v, half, cubic, linear)
    tl.store(out_ptr + offsets, out.to(out_ptr.dtype.element_ty), mask=in_range)


@triton.jit
def _smooth_step_bwd_kernel(
    u_ptr,
    grad_out_ptr,
    grad_u_ptr,
    n: tl.int64,
    gamma: tl.float64,
    BLOCK: tl.constexpr,
):
    """grad_u[i] = grad_out[i] * f_D'(u[i]) for i < n; all flat, contiguous, u's dtype."""
    # fp64 stays fp64 (gradcheck); every other float type is computed in fp32.
    compute: tl.constexpr = tl.float64 if u_ptr.dtype.element_ty == tl.float64 else tl.float32
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    in_range = offsets < n
    v = tl.load(u_ptr + offsets, mask=in_range, other=0.0).to(compute)
    g = tl.load(grad_out_ptr + offsets, mask=in_range, other=0.0).to(compute)
    half, cubic, linear = smooth_step_coefficients(gamma, compute)
    slope = smooth_step_slope(v, half, cubic, linear)
    tl.store(grad_u_ptr + offsets, (g * slope).to(grad_u_ptr.dtype.element_ty), mask=in_range)


def _launch(kernel, inputs: dict[str, Tensor], output: str, gamma: float) -> Tensor:
    """Run an elementwise kernel over flat contiguous ``inputs`` (its pointer arguments, by
    name); returns the new tensor it writes through ``output``, shaped like the first input."""
    first = next(iter(inputs.values()))
    out = new_output(tuple(first.shape), first.dtype, first.device)
    n = first.numel()
    if n > 0:
        grid = (triton.cdiv(n, BLOCK),)
        kernel[grid](**inputs, **{output: out}, n=n, gamma=gamma, BLOCK=BLOCK, num_warps=NUM_WARPS)
    return out


def _forward(u: Tensor, gamma: float) -> Tensor:
    """f_D(u; gamma) by the forward kernel: u any shape -> u's shape and dtype."""
    return _launch(_smooth_step_fwd_kernel, {"u_ptr": u.contiguous()}, "out_ptr", gamma)


def _backward(u: Tensor, grad_out: Tensor, gamma: float) -> Tensor:
    """The gradient of f_D at u times ``grad_out``, by the backward kernel."""
    inputs = {"u_ptr": u.contiguous(), "grad_out_ptr": grad_out.to(u.dtype).contiguous()}
    return _launch(_smooth_step_bwd_kernel, inputs, "grad_u_ptr", gamma)


def fused_smooth_step(u: Tensor, gamma: float | Tensor) -> Tensor:
    """f_D(u; gamma) through the Triton kernels (the ``apem_kernels::smooth_step`` op). u: any
    shape, fp16/bf16/fp32/fp64; gamma > 0, a number or a one-element tensor; differentiable in u.

    Assumes validated inputs (``apem_kernels.functional.smooth_step`` validates).
    """
    from apem_kernels.ops import library

    return library.smooth_step(u, library.as_gamma(gamma))


def compile_specs() -> list[KernelSpec]:
    """Every configuration ``fused_smooth_step`` can launch: both kernels, every dtype."""
    scalars = {"n": "i64", "gamma": "fp64", "BLOCK": "constexpr"}
    specs = []
    for dtype, name in TRITON_DTYPES.items():
        pointer = f"*{name}"
        for kernel, pointers in (
            (_smooth_step_fwd_kernel, ("u_ptr", "out_ptr")),
            (_smooth_step_bwd_kernel, ("u_ptr", "grad_out_ptr", "grad_u_ptr")),
        ):
            specs.append(
                KernelSpec(
                    name=f"{kernel.__name__}_{name}",
                    kernel=kernel,
                    signature={**dict.fromkeys(pointers, pointer), **scalars},
                    constexprs={"BLOCK": BLOCK},
                    num_warps=NUM_WARPS,
                    tags={"dtype": dtype},
                )
            )
    return specs
