"""The Triton smooth-step kernels against the float64 reference, on ``kernel_device`` (the CPU
under the interpreter, or CUDA with compiled kernels; float64 compiles there too)."""

import pytest
import torch

from apem_kernels import reference
from apem_kernels.ops.smooth_step import (
    BLOCK,
    _smooth_step_bwd_kernel,
    _smooth_step_fwd_kernel,
    compile_specs,
    fused_smooth_step,
)
from apem_kernels.ops.utils import TRITON_DTYPES

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
# Outputs lie in [0, 1]; the tolerance is a few units in the last place of the dtype.
TOLERANCE = {
    torch.float32: {"rtol": 1e-5, "atol": 1e-6},
    torch.float16: {"rtol": 2e-3, "atol": 1e-3},
    torch.bfloat16: {"rtol": 1.6e-2, "atol": 8e-3},
    torch.float64: {"rtol": 1e-7, "atol": 1e-9},
}
SHAPES = [(), (1,), (0,), (3, 0), (7,), (3, 5, 7), (BLOCK + 1,), (2, 1031)]


def expected(u: torch.Tensor, gamma: float, grad_out: torch.Tensor):
    """float64 reference value and gradient for the (already rounded) input u."""
    u64 = u.detach().to(torch.float64).requires_grad_()
    out = reference.smooth_step(u64, gamma)
    out.backward(grad_out.to(torch.float64))
    return out.detach(), u64.grad


def run(u: torch.Tensor, gamma: float, grad_out: torch.Tensor):
    """Triton value and gradient."""
    u = u.detach().requires_grad_()
    out = fused_smooth_step(u, gamma)
    out.backward(grad_out)
    return out.detach(), u.grad


def assert_matches(u: torch.Tensor, gamma: float, grad_out: torch.Tensor) -> None:
    out, grad = run(u, gamma, grad_out)
    want_out, want_grad = expected(u, gamma, grad_out)
    assert out.dtype == u.dtype and out.shape == u.shape
    assert grad.dtype == u.dtype and grad.shape == u.shape
    tol = TOLERANCE[u.dtype]
    torch.testing.assert_close(out.to(torch.float64), want_out, **tol)
    # The slope peaks at 3 / (2 gamma): compare gradients on that scale (1e3 at gamma = 1e-3).
    peak = 1.5 / gamma
    torch.testing.assert_close(grad.to(torch.float64) / peak, want_grad / peak, **tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_reference(shape, dtype, kernel_device):
    gamma = 3.0
    gen = torch.Generator().manual_seed(0)
    # Spread over the whole ramp and both flat sides.
    u = (torch.randn(shape, generator=gen, dtype=torch.float64) * gamma).to(kernel_device, dtype)
    grad_out = torch.randn(shape, generator=gen, dtype=torch.float64).to(kernel_device, dtype)
    assert_matches(u, gamma, grad_out)


@pytest.mark.parametrize("dtype", DTYPES)
# The interpreter passes float scalars as fp32, so these widths are exact in fp32: the fp64
# comparison then stays exact too (a GPU launch passes gamma as fp64).
@pytest.mark.parametrize("gamma", [10.0, 0.375, 2.0**-10])
def test_schedule_widths(gamma, dtype, kernel_device):
    gen = torch.Generator().manual_seed(1)
    u = (torch.randn(4, 33, generator=gen, dtype=torch.float64) * gamma).to(kernel_device, dtype)
    grad_out = torch.randn(4, 33, generator=gen, dtype=torch.float64).to(kernel_device, dtype)
    assert_matches(u, gamma, grad_out)


@pytest.mark.parametrize("dtype", DTYPES)
def test_exact_at_the_edges(dtype, kernel_device):
    gamma = 0.5  # gamma / 2 = 0.25 is exact in every dtype
    u = torch.tensor([-1.0, -0.25, 0.0, 0.25, 1.0], dtype=dtype, device=kernel_device)
    out, grad = run(u, gamma, torch.ones_like(u))
    assert out.tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert grad[[0, 1, 3, 4]].tolist() == [0.0] * 4
    assert grad[2].item() == pytest.approx(1.5 / gamma, rel=1e-2)


def test_gradcheck_float64(kernel_device):
    # Keep points away from the kinks at +-gamma/2, where finite differences straddle them.
    u = torch.linspace(-1.9, 1.9, 23, dtype=torch.float64, device=kernel_device)
    u = u.reshape(23, 1).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: fused_smooth_step(t, 3.0), (u,))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_non_contiguous_input_and_gradient(dtype, kernel_device):
    gamma = 2.0
    gen = torch.Generator().manual_seed(2)
    base = (torch.randn(9, 14, generator=gen, dtype=torch.float64) * gamma).to(kernel_device, dtype)
    u = base.t()[:, ::2]  # (14, 5), neither transpose nor slice is contiguous
    grad_out = torch.randn(5, 14, generator=gen, dtype=torch.float64).to(kernel_device, dtype).t()
    assert not u.is_contiguous() and not grad_out.is_contiguous()
    out, grad = run(u, gamma, grad_out)
    want_out, want_grad = run(u.contiguous(), gamma, grad_out.contiguous())
    assert torch.equal(out, want_out) and torch.equal(grad, want_grad)
    assert_matches(u, gamma, grad_out)


def test_compile_specs_cover_every_launch():
    specs = compile_specs()
    launched = {(spec.kernel, spec.tags["dtype"]) for spec in specs}
    kernels = (_smooth_step_fwd_kernel, _smooth_step_bwd_kernel)
    assert launched == {(k, dtype) for k in kernels for dtype in TRITON_DTYPES}
    assert len({spec.name for spec in specs}) == len(specs)
    for spec in specs:
        assert spec.constexprs == {"BLOCK": BLOCK}
        assert spec.signature["n"] == "i64"
