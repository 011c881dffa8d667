"""Fused inducing-point attention (triton) against the float64 reference.

Inputs live on ``kernel_device`` (tests/conftest.py): the CPU under the interpreter, or CUDA with
compiled kernels. float64 compiles on the GPU too (DMMA on sm_80+), so every case runs there."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from apem_kernels import reference
from apem_kernels.ops.inducing_attention import (
    compile_specs,
    fused_factored_attention,
    fused_inducing_attention,
    launch_config,
    lse_size,
)
from apem_kernels.ops.utils import ctas_per_sm, registers_for

# Relative to the largest reference magnitude of each compared tensor. float32 on the GPU multiplies
# through tf32x3 (three tf32 products, error ~1e-6 of fp32's scale), well inside 1e-4.
TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}


@dataclass(frozen=True)
class Case:
    batch: int
    keys: int  # N
    inducing: int  # K
    dim: int
    heads: int
    gate: str = "z"  # "none" | "z" | "u"
    gamma: float = 0.75  # exact in float32: the interpreter passes scalars as float32
    mask: str = "none"  # "none" | "random" | "all" (random, and sample 0 fully padded)
    w_q: bool = False
    norm: bool = True
    dtype: torch.dtype = torch.float64


def make_inputs(case: Case, device: torch.device, seed: int = 0) -> dict:
    """Random inputs (never zeros) in case.dtype on device, all float tensors requiring grad."""
    gen = torch.Generator().manual_seed(seed)
    b, n, k, d = case.batch, case.keys, case.inducing, case.dim

    def rand(*shape, scale=1.0):
        t = torch.randn(*shape, generator=gen, dtype=torch.float64) * scale
        return t.to(device, case.dtype).requires_grad_()

    inputs = {
        "x": rand(b, n, d),
        "inducing": rand(k, d),
        "w_k": rand(d, d, scale=d**-0.5),
        "w_v": rand(d, d, scale=d**-0.5),
        "w_o": rand(d, d, scale=d**-0.5),
    }
    if case.gate == "z":
        inputs["z"] = rand(b, k)
    if case.gate == "u":
        inputs["u"] = rand(b, k, scale=case.gamma)
    if case.w_q:
        inputs["w_q"] = rand(d, d, scale=d**-0.5)
    if case.norm:
        inputs["norm_weight"] = rand(d)
        inputs["norm_bias"] = rand(d)
    if case.mask != "none":
        mask = torch.rand(b, n, generator=gen) < 0.4
        if case.mask == "all" and b > 0:
            mask[0] = True
        inputs["key_padding_mask"] = mask.to(device)
    return inputs


def run_fused(case: Case, inputs: dict):
    kwargs = {k: v for k, v in inputs.items() if k not in ("x", "inducing", "w_k", "w_v", "w_o")}
    if case.gate == "u":
        kwargs["gamma"] = case.gamma
    return fused_inducing_attention(
        inputs["x"], inputs["inducing"], inputs["w_k"], inputs["w_v"], inputs["w_o"],
        case.heads, **kwargs,
    )  # fmt: skip


def run_reference(case: Case, inputs: dict):
    """The reference on float64 copies of the same values."""
    ref = {
        k: v.detach().double().requires_grad_() if v.is_floating_point() else v
        for k, v in inputs.items()
    }
    z = ref.get("z")
    if case.gate == "u":
        z = reference.smooth_step(ref["u"], case.gamma)
    args = (ref["x"], ref["inducing"], ref["w_k"], ref["w_v"], ref["w_o"], case.heads)
    kwargs = {"z": z, "key_padding_mask": ref.get("key_padding_mask"), "w_q": ref.get("w_q")}
    if case.norm:
        out = reference.inducing_attention_block(
            *args, ref["norm_weight"], ref["norm_bias"], **kwargs
        )
    else:
        out = reference.inducing_attention(*args, **kwargs)
    return out, ref


def differentiable(inputs: dict) -> list[str]:
    return [k for k, v in inputs.items() if v.is_floating_point()]


def assert_close(actual, expected, dtype, what):
    assert actual.shape == expected.shape, what
    assert torch.isfinite(actual).all(), f"{what}: non-finite values"
    scale = expected.abs().max().item() if expected.numel() else 0.0
    error = (actual.double() - expected).abs().max().item() if expected.numel() else 0.0
    assert error <= TOLERANCE[dtype] * max(scale, 1.0), (
        f"{what}: error {error:.3g}, scale {scale:.3g}"
    )


def check_against_reference(case: Case, device: torch.device, seed: int = 0):
    inputs = make_inputs(case, device, seed)
    out = run_fused(case, inputs)
    expected, ref = run_reference(case, inputs)
    assert out.dtype == case.dtype
    assert_close(out, expected, case.dtype, "output")
    grad_out = torch.randn(expected.shape, generator=torch.Generator().manual_seed(seed + 1))
    grad_out = grad_out.to(device)
    names = differentiable(inputs)
    grads = torch.autograd.grad(out, [inputs[k] for k in names], grad_out.to(case.dtype))
    ref_grads = torch.autograd.grad(expected, [ref[k] for k in names], grad_out.double())
    for name, grad, ref_grad in zip(names, grads, ref_grads, strict=True):
        assert grad.dtype == case.dtype, name
        assert_close(grad, ref_grad, case.dtype, f"grad of {name}")


CASES = [
    Case(3, 7, 5, 18, 2),
    Case(1, 1, 1, 8, 1, gate="none", norm=False),
    Case(3, 23, 64, 36, 2, mask="all", w_q=True),
    Case(3, 7, 5, 18, 3, gate="u", gamma=4.0, mask="random", norm=False),
    Case(2, 7, 5, 8, 2, gate="u", gamma=2.0**-12, mask="all", w_q=True),  # hard gate
    Case(3, 23, 1, 36, 2, gate="none", mask="random"),
    Case(1, 7, 64, 18, 1, gate="u", gamma=0.75, w_q=True, norm=False),
    Case(3, 7, 5, 18, 2, dtype=torch.float32, mask="all", w_q=True),
    Case(3, 7, 5, 18, 2, dtype=torch.bfloat16, gate="u", mask="random"),
    Case(2, 18, 64, 18, 2, dtype=torch.bfloat16, gate="u"),  # paper layer 1: backward in 2 K blocks
    Case(3, 23, 5, 36, 3, dtype=torch.float16, norm=False),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_matches_reference(case, kernel_device):
    check_against_reference(case, kernel_device)


def test_multi_block_tiles_match_reference(kernel_device):
    """K spans several K blocks (partial dx summed) and N several key tiles (online softmax,
    saved logsumexp); d=40 pads to 64."""
    case = Case(2, 200, 130, 40, 2, mask="all", dtype=torch.float32, w_q=True)
    cfg = launch_config(case.keys, case.inducing, case.dim, case.heads, case.dtype)
    assert cfg.block_k < case.inducing and cfg.block_n < case.keys and not cfg.single_pass
    check_against_reference(case, kernel_device)


def test_forward_over_key_tiles_with_a_one_pass_backward_saves_no_logsumexp(kernel_device):
    """bf16 N = 100: the forward's 128 rows take two key tiles, the backward's 64 rows one, so
    the forward saves nothing for it and the backward recomputes the softmax."""
    case = Case(2, 100, 64, 18, 2, gate="u", mask="random", dtype=torch.bfloat16)
    forward = launch_config(case.keys, case.inducing, case.dim, case.heads, case.dtype)
    backward = launch_config(
        case.keys, case.inducing, case.dim, case.heads, case.dtype, backward=True
    )
    assert not forward.single_pass and backward.single_pass
    assert lse_size(case.keys, case.inducing, case.dim, case.heads, case.dtype) == 0
    check_against_reference(case, kernel_device)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_backward_key_pass_over_key_tiles_after_a_one_tile_output_pass(dtype, kernel_device):
    """The paper's layers 2..L (N = 64): the output pass holds every key in one tile and writes
    the logsumexp, the key pass reads it over two key tiles of 32."""
    case = Case(2, 64, 64, 18, 2, gate="u", mask="all", dtype=dtype)
    cfg = launch_config(case.keys, case.inducing, case.dim, case.heads, case.dtype, backward=True)
    assert cfg.single_pass and not cfg.keys_pass().single_pass
    assert cfg.keys_pass().block_n == 32 and cfg.keys_pass().block_k == cfg.block_k
    check_against_reference(case, kernel_device)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
@pytest.mark.parametrize("dim", [8, 18, 32, 64])
@pytest.mark.parametrize("keys", [18, 64, 1024])
def test_backward_register_cap_and_key_tile(keys, dim, dtype):
    """2-byte inputs at d <= 32 compile both backward passes for 3 CTAs/SM (168 registers at 4
    warps); the others, and the forward, keep ptxas's choice. The key pass's four (rows, keys)
    tiles stay within a quarter of the element budget, never wider than the output pass's."""
    for heads in (1, 2):
        forward = launch_config(keys, 64, dim, heads, dtype)
        backward = launch_config(keys, 64, dim, heads, dtype, backward=True)
        assert forward.max_registers is None
        if dtype != torch.float32 and dim <= 32:
            assert backward.max_registers == registers_for(3, backward.num_warps)
            assert ctas_per_sm(backward.max_registers, backward.num_warps, 0, 90) == 3
        else:
            assert backward.max_registers is None
        rows = backward.block_k * backward.block_heads
        assert backward.keys_block_n <= backward.block_n
        assert rows * backward.keys_block_n <= 2048 or backward.keys_block_n == 16


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("dim", [8, 18, 64, 128])
@pytest.mark.parametrize("keys", [1, 18, 64, 100, 1024])
def test_backward_tiles_are_no_larger_than_the_forwards(keys, dim, dtype):
    """The backward may take fewer stacked rows, never a smaller key tile: a forward in one pass
    saves no logsumexp, so its backward must be one pass too."""
    for heads in (1, 2, 4):
        forward = launch_config(keys, 64, dim, heads, dtype)
        backward = launch_config(keys, 64, dim, heads, dtype, backward=True)
        assert backward.block_k <= forward.block_k and backward.block_n >= forward.block_n
        assert backward.single_pass or not forward.single_pass


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("gate", ["z", "u"])
def test_factored_attention_matches_reference(gate, dtype, kernel_device):
    """Factors that are no product of weights (any A, C) and a mask with an all-padded row."""
    case = Case(3, 7, 5, 18, 3, gate=gate, mask="all", dtype=dtype)
    gen = torch.Generator().manual_seed(4)
    inputs = {
        k: v
        for k, v in make_inputs(case, kernel_device).items()
        if k in ("x", "z", "u", "key_padding_mask")
    }
    for name, shape in (("a", (3, 5, 18)), ("c", (3, 18, 18))):
        value = torch.randn(shape, generator=gen, dtype=torch.float64) / 18**0.5
        inputs[name] = value.to(kernel_device, dtype).requires_grad_()
    gamma = case.gamma if gate == "u" else None
    out = fused_factored_attention(**inputs, gamma=gamma)
    ref = {
        k: v.detach().double().requires_grad_() if v.is_floating_point() else v
        for k, v in inputs.items()
    }
    z = ref["z"] if gate == "z" else reference.smooth_step(ref["u"], case.gamma)
    expected = reference.factored_inducing_attention(
        ref["x"], ref["a"], ref["c"], z, ref["key_padding_mask"]
    )
    assert_close(out, expected, dtype, "output")
    grad_out = torch.randn(expected.shape, generator=gen, dtype=torch.float64)
    names = differentiable(inputs)
    grads = torch.autograd.grad(out, [inputs[k] for k in names], grad_out.to(kernel_device, dtype))
    ref_grads = torch.autograd.grad(expected, [ref[k] for k in names], grad_out.to(kernel_device))
    for name, grad, ref_grad in zip(names, grads, ref_grads, strict=True):
        assert_close(grad, ref_grad, dtype, f"grad of {name}")


@pytest.mark.parametrize("norm", [True, False])
def test_empty_batch(norm, kernel_device):
    case = Case(0, 7, 5, 18, 2, gate="u", norm=norm, mask="random")
    inputs = make_inputs(case, kernel_device)
    out = run_fused(case, inputs)
    assert out.shape == (0, 5, 18)
    names = differentiable(inputs)
    grads = torch.autograd.grad(out.sum(), [inputs[k] for k in names])
    for name, grad in zip(names, grads, strict=True):
        assert grad.shape == inputs[name].shape and not grad.any(), name


def test_all_masked_sample_gives_zero_output_and_gradients(kernel_device):
    case = Case(2, 7, 5, 18, 2, mask="all", norm=False)
    inputs = make_inputs(case, kernel_device)
    out = run_fused(case, inputs)
    assert torch.equal(out[0], torch.zeros_like(out[0]))
    grad_x, grad_z = torch.autograd.grad(out.sum(), [inputs["x"], inputs["z"]])
    assert not grad_x[0].any() and not grad_z[0].any()
    assert grad_x[1].any()


def test_non_contiguous_inputs_and_gradient_give_same_result(kernel_device):
    case = Case(3, 7, 5, 18, 2, mask="random", w_q=True)
    inputs = make_inputs(case, kernel_device)
    names = differentiable(inputs)
    grad_out = torch.randn(3, 5, 18, dtype=case.dtype, device=kernel_device)
    out = run_fused(case, inputs)
    grads = torch.autograd.grad(out, [inputs[k] for k in names], grad_out)

    def strided(t):  # same values, every dimension strided and the last two transposed
        wide = torch.zeros(*[2 * s for s in t.shape], dtype=t.dtype, device=t.device)
        view = wide[tuple(slice(None, None, 2) for _ in t.shape)]
        view.copy_(t.detach())
        return view if t.dim() < 2 else view.transpose(-1, -2).contiguous().transpose(-1, -2)

    strided_inputs = {k: strided(v) for k, v in inputs.items()}
    for k in names:
        strided_inputs[k].requires_grad_()
    assert not strided_inputs["x"].is_contiguous()
    out2 = run_fused(case, strided_inputs)
    grads2 = torch.autograd.grad(out2, [strided_inputs[k] for k in names], strided(grad_out))
    torch.testing.assert_close(out2, out, rtol=1e-12, atol=1e-12)
    for name, a, b in zip(names, grads2, grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=name)


def test_backward_is_deterministic(kernel_device):
    case = Case(5, 23, 37, 18, 2, mask="random", dtype=torch.float32, w_q=True)
    inputs = make_inputs(case, kernel_device)
    names = differentiable(inputs)
    runs = [
        torch.autograd.grad(run_fused(case, inputs).sum(), [inputs[k] for k in names])
        for _ in range(2)
    ]
    for name, a, b in zip(names, *runs, strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("gate", ["z", "u"])
def test_gradcheck(gate, kernel_device):
    case = Case(2, 3, 2, 8, 2, gate=gate, gamma=4.0, mask="random", w_q=True)
    inputs = make_inputs(case, kernel_device)
    names = differentiable(inputs)

    def fn(*tensors):
        return run_fused(case, {**inputs, **dict(zip(names, tensors, strict=True))})

    assert torch.autograd.gradcheck(fn, [inputs[k] for k in names], fast_mode=True)


def test_compile_specs_cover_every_dtype_and_key_tiling():
    """Every dtype's forward in one pass, over key tiles saving the logsumexp, and (2-byte
    inputs) over key tiles saving none."""
    forwards = [s for s in compile_specs() if s.kernel.__name__ == "_forward_kernel"]
    for keys in (18, 100, 1000):
        for dtype in (torch.float32, torch.bfloat16, torch.float16, torch.float64):
            single = launch_config(keys, 64, 18, 2, dtype).single_pass
            saves = lse_size(keys, 64, 18, 2, dtype) > 0
            assert any(
                s.tags["dtype"] == dtype
                and s.constexprs["SINGLE_PASS"] == single
                and s.constexprs["SAVE_LSE"] == saves
                for s in forwards
            ), (keys, dtype)
