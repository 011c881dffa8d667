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
    tags: dict[str, Any] = field(default_factory=dict)


# Tests set this (tests/conftest.py) so that every kernel output starts as NaN and an element
# a kernel forgets to write fails the comparison against the reference.
POISON_OUTPUTS = False


def new_output(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Allocate a tensor a kernel fully overwrites (NaN-filled while tests poison outputs)."""
    if POISON_OUTPUTS:
        return torch.full(shape, float("nan"), dtype=dtype, device=device)
    return torch.empty(shape, dtype=dtype, device=device)
