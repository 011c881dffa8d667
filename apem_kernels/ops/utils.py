"""Helpers shared by the op files: padding rules and the kernel-configuration record."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch


def block_size(n: int, minimum: int = 16) -> int:
    """A dimension padded for ``tl.dot``: ``max(minimum, next_pow2(n))``."""
    size = minimum
    while size < n:
        size *= 2
    return size


def fused_supports(dim: int, num_heads: int, dtype: torch.dtype) -> bool:
    """Whether the attention kernels take width d with M heads in ``dtype``: ``[C_0; …]``
    (HEADS · d_pad, d_pad) is a dot operand staged in shared memory beside the others, so at most
    32,768 elements in bf16/fp16 (d ≤ 128 with 2 heads there) and 2,048 in fp32
    (split for tf32×3 products) and fp64 (d ≤ 32, 2 heads there). Besides, at most 256 stacked
    head columns (HEADS · d_pad): 8 heads at d = 64 put 16 rows per head beside 64-wide tiles,
    and their backward needed 200 KB of shared memory, over an sm_80's 166 KB."""
    heads, width = block_size(num_heads, 1), block_size(dim)
    limit = 32768 if dtype in (torch.float16, torch.bfloat16) else 2048
    return heads * width**2 <= limit and heads * width <= 256


def interpreting() -> bool:
    """True when Triton runs kernels on the CPU through its interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def tracing() -> bool:
    """True while torch.compile, torch.export, ONNX export or jit.trace records a graph: checks
    that read tensor values back to the host must stay out of it."""
    return torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


TRITON_DTYPES = {
    torch.float32: "fp32",
    torch.float16: "fp16",
    torch.bfloat16: "bf16",
    torch.float64: "fp64",
}


@dataclass(frozen=True)
class KernelSpec:
    """One configuration a dispatcher can launch, named for ahead-of-time compilation.

    ``signature`` maps every argument name to a Triton type string (``"*fp32"``, ``"i64"``,
    ``"constexpr"``); ``constexprs`` gives the value of each ``constexpr`` argument.
    ``tests/apem_kernels/test_aot_compile.py`` compiles each spec for sm_90 and sm_80.
    """

    name: str
    kernel: Any
    signature: dict[str, str]
    constexprs: dict[str, Any]
    num_warps: int = 4
    num_stages: int = 2
    max_registers: int | None = None
    tags: dict[str, Any] = field(default_factory=dict)

    def options(self) -> dict[str, int]:
        """``triton.compile`` options: warps, stages and the register cap (``maxnreg``) if any."""
        options = {"num_warps": self.num_warps, "num_stages": self.num_stages}
        if self.max_registers is not None:
            options["maxnreg"] = self.max_registers
        return options


# Tests set this (tests/conftest.py) so that every kernel output starts as NaN and an element
# a kernel forgets to write fails the comparison against the reference.
POISON_OUTPUTS = False


def new_output(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Allocate a tensor a kernel fully overwrites (NaN-filled while tests poison outputs)."""
    if POISON_OUTPUTS:
        return torch.full(shape, float("nan"), dtype=dtype, device=device)
    return torch.empty(shape, dtype=dtype, device=device)


# Per-SM limits (CUDA programming guide, compute capabilities 8.x and 9.0): registers, warps,
# CTAs, shared memory, and the shared memory the system reserves per CTA.
SM_LIMITS = {
    90: {"regs": 65536, "warps": 64, "ctas": 32, "smem": 233472, "smem_per_cta_reserved": 1024},
    89: {"regs": 65536, "warps": 48, "ctas": 24, "smem": 102400, "smem_per_cta_reserved": 1024},
    86: {"regs": 65536, "warps": 48, "ctas": 16, "smem": 102400, "smem_per_cta_reserved": 1024},
    80: {"regs": 65536, "warps": 64, "ctas": 32, "smem": 167936, "smem_per_cta_reserved": 1024},
}


def registers_for(ctas: int, num_warps: int, capability: int = 90) -> int:
    """Most registers per thread that let ``ctas`` CTAs of ``num_warps`` warps share an SM
    (allocated per warp in units of 256, so a multiple of 8)."""
    limit = SM_LIMITS.get(capability, SM_LIMITS[80])
    per_warp = limit["regs"] // (ctas * num_warps) // 256 * 256
    return min(255, per_warp // 32)


def ctas_per_sm(regs: int, num_warps: int, smem: int, capability: int) -> int:
    """Resident CTAs per SM of a kernel from its registers per thread (allocated per warp in units
    of 256), warps per CTA and shared memory bytes; unknown capabilities use sm_80's limits."""
    limit = SM_LIMITS.get(capability, SM_LIMITS[80])
    regs_per_warp = -(-regs * 32 // 256) * 256
    by_regs = (limit["regs"] // max(regs_per_warp, 1)) // num_warps
    by_warps = limit["warps"] // num_warps
    by_smem = limit["smem"] // (smem + limit["smem_per_cta_reserved"])
    return min(by_regs, by_warps, by_smem, limit["ctas"])
