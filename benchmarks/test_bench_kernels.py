"""Kernel benchmarks: inducing attention and the smooth step, every implementation.

Each case times forward (``fwd``, under ``torch.no_grad``) or forward+backward (``fwd_bwd``:
``torch.autograd.grad`` of the output against a fixed random ``dY``, gradients for every input
and weight) and records samples/s, GB/s against the byte floor (``benchmarks/floors.py``), the
floor's share of the measured copy bandwidth and peak device memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor

from apem_kernels.ops.utils import fused_supports
from benchmarks import floors, harness, implementations
from benchmarks.implementations import ATTENTION_IMPLS, SMOOTH_STEP_IMPLS, Unsupported


@dataclass(frozen=True)
class Shape:
    """Keys per sample ``n``, model width ``d``, ``heads``, inducing points ``k``."""

    n: int
    d: int
    heads: int
    k: int


SHAPES = {"paper": Shape(n=18, d=18, heads=2, k=64), "wide": Shape(n=64, d=64, heads=4, k=64)}
BATCH_SIZES = (1_024, 4_096, 16_384, 32_768, 65_536, 262_144)
# Ordered so a budgeted run (benchmarks/gpu.sh) reaches the headline case (fwd_bwd, bf16) first.
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
MODES = ("fwd_bwd", "fwd")
GAMMA = 1.0  # smooth-step width; u ~ N(0, 1) then falls in all three pieces


def _timed_work(
    call: Callable[[], Tensor], wrt: list[Tensor], mode: str, grad_out: Tensor
) -> Callable[[], object]:
    """The function one benchmark call runs: ``call()`` alone, or with its backward to ``wrt``
    for the output gradient ``grad_out``."""
    if mode == "fwd":

        def forward() -> object:
            with torch.no_grad():
                return call()

        return forward

    def forward_backward() -> object:
        return torch.autograd.grad(call(), wrt, grad_out)

    return forward_backward


def _rejections(impl: str) -> tuple[type[Exception], ...]:
    """Errors that mean a PyTorch alternative does not accept a case (say, a launch grid beyond
    its limits at a large batch): skipped with the message. The fused kernels' errors fail."""
    return () if impl == "triton" else (RuntimeError,)


def _batch_input(shape: tuple[int, ...], dtype: torch.dtype, device, *, uniform=False) -> Tensor:
    """A random per-sample input whose batch dimension torch.compile treats as dynamic."""
    draw = torch.rand if uniform else torch.randn
    t = draw(shape, device=device).to(dtype).requires_grad_()
    torch._dynamo.maybe_mark_dynamic(t, 0)  # one compiled graph serves every batch size
    return t


def _parameter(shape: tuple[int, ...], dtype: torch.dtype, device, scale: float) -> Tensor:
    return (torch.randn(shape, device=device) * scale).to(dtype).requires_grad_()


def _attention_case(impl, variant, shape, mode, dtype, batch, device):
    s = SHAPES[shape]
    block = variant == "block"
    if impl == "triton_r128" and (mode == "fwd" or dtype == "fp32"):
        pytest.skip("triton_r128 differs from triton in the 2-byte backward only")
    try:
        op = implementations.attention(impl, block=block, head_dim=s.d // s.heads, device=device)
    except Unsupported as reason:
        pytest.skip(str(reason))
    dt = DTYPES[dtype]
    if impl == "triton" and not fused_supports(s.d, s.heads, dt):
        pytest.skip(f"the fused kernels do not take d = {s.d} with {s.heads} heads in {dtype}")
    x = _batch_input((batch, s.n, s.d), dt, device)
    z = _batch_input((batch, s.k), dt, device, uniform=True)
    weights = [_parameter((s.k, s.d), dt, device, 1.0)]
    weights += [_parameter((s.d, s.d), dt, device, s.d**-0.5) for _ in range(3)]
    norm = [_parameter((s.d,), dt, device, 0.1) for _ in range(2)] if block else []
    args = (x, *weights, s.heads, *norm)
    grad_out = torch.randn((batch, s.k, s.d), device=device).to(dt)
    work = _timed_work(lambda: op(*args, z=z), [x, z, *weights, *norm], mode, grad_out)

    def within_launch_context() -> object:
        with implementations.launch_context(impl):
            return work()

    floor = floors.attention_floor_bytes(batch, s.n, s.d, s.k, dt, backward=mode == "fwd_bwd")
    return within_launch_context, floor


@pytest.mark.parametrize("batch", BATCH_SIZES)
@pytest.mark.parametrize("impl", ATTENTION_IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("variant", ("block", "plain"))
def test_inducing_attention(benchmark, device, variant, shape, mode, dtype, impl, batch):
    """``block``: LayerNorm(I⊙z + O), what the model runs; ``plain``: O alone."""
    harness.skip_large_batch_on_cpu(device, batch)
    work, floor = _attention_case(impl, variant, shape, mode, dtype, batch, device)
    op = f"attention_{variant}"
    benchmark.group = f"{op} {shape} {mode} {dtype} batch={batch}"
    harness.measure(
        benchmark,
        work,
        device=device,
        samples=batch,
        floor_bytes=floor,
        skip_errors=_rejections(impl),
        kind="kernel",
        op=op,
        shape=shape,
        mode=mode,
        dtype=dtype,
        impl=impl,
        batch=batch,
    )


@pytest.mark.parametrize("batch", BATCH_SIZES)
@pytest.mark.parametrize("impl", SMOOTH_STEP_IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
def test_smooth_step(benchmark, device, mode, dtype, impl, batch):
    """f_D(u; gamma) on the selector's (batch, K=64) pre-activations."""
    harness.skip_large_batch_on_cpu(device, batch)
    try:
        op = implementations.smooth_step(impl, device=device)
    except Unsupported as reason:
        pytest.skip(str(reason))
    dt = DTYPES[dtype]
    k = SHAPES["paper"].k
    u = _batch_input((batch, k), dt, device)
    work = _timed_work(lambda: op(u, GAMMA), [u], mode, torch.randn_like(u))
    floor = floors.smooth_step_floor_bytes(batch, k, dt, backward=mode == "fwd_bwd")
    benchmark.group = f"smooth_step {mode} {dtype} batch={batch}"
    harness.measure(
        benchmark,
        work,
        device=device,
        samples=batch,
        floor_bytes=floor,
        skip_errors=_rejections(impl),
        kind="kernel",
        op="smooth_step",
        shape="paper",
        mode=mode,
        dtype=dtype,
        impl=impl,
        batch=batch,
    )
