"""The compared implementations compute the reference's inducing attention."""

import warnings

import pytest
import torch

import apem_kernels
from apem_kernels import reference
from apem_kernels.ops import inducing_attention as attention_op
from benchmarks import floors
from benchmarks.implementations import (
    composed,
    flex_heads,
    launch_context,
    sdpa_heads,
)


def _inputs(block: bool):
    g = torch.Generator().manual_seed(0)
    b, n, d, k = 3, 5, 8, 4

    def draw(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    norm = [draw(d), draw(d)] if block else []
    z = torch.rand(b, k, generator=g, dtype=torch.float64)
    return (draw(b, n, d), draw(k, d), draw(d, d), draw(d, d), draw(d, d), 2, *norm), z


@pytest.mark.parametrize("heads", [sdpa_heads, flex_heads], ids=["sdpa", "flex"])
@pytest.mark.parametrize("block", [False, True], ids=["plain", "block"])
@pytest.mark.parametrize("padded", [False, True], ids=["dense", "padded"])
def test_composition_matches_reference(heads, block, padded):
    args, z = _inputs(block)
    mask = None
    if padded:  # every row keeps at least one key
        mask = torch.zeros(3, 5, dtype=torch.bool)
        mask[0, 3:] = True
        mask[2, 0] = True
    truth = reference.inducing_attention_block if block else reference.inducing_attention
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FlexAttention warns when run uncompiled
        got = composed(heads, block=block)(*args, z=z, key_padding_mask=mask)
    torch.testing.assert_close(got, truth(*args, z=z, key_padding_mask=mask))


def test_backward_in_forward_tiles_launches_them_and_matches_reference():
    """triton_r128's patch: the bf16 paper-shape backward in 128 rows at 8 warps (one K block),
    gradients within bf16's tolerance of float64, and the launcher's choice back afterwards."""
    g = torch.Generator().manual_seed(0)
    b, n, d, k, heads = 2, 18, 18, 64, 2

    def draw(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).requires_grad_()

    args = [draw(b, n, d), draw(k, d), *(draw(d, d, scale=d**-0.5) for _ in range(3))]
    norm = [draw(d), draw(d)]
    z = torch.rand(b, k, generator=g, dtype=torch.float64).requires_grad_()
    leaves = [*args, *norm, z]
    grad_out = torch.randn(b, k, d, generator=g, dtype=torch.float64)
    expected = reference.inducing_attention_block(*args, heads, *norm, z=z)
    want = torch.autograd.grad(expected, leaves, grad_out)
    low = [t.detach().bfloat16().requires_grad_() for t in leaves]
    with launch_context("triton_r128"):
        cfg = attention_op.launch_config(n, k, d, heads, torch.bfloat16, backward=True)
        out = apem_kernels.inducing_attention_block(
            *low[:5], heads, *low[5:7], z=low[7], backend="triton"
        )
        got = torch.autograd.grad(out, low, grad_out.bfloat16())
    assert (cfg.block_k * cfg.block_heads, cfg.block_k, cfg.num_warps) == (128, 64, 8)
    restored = attention_op.launch_config(n, k, d, heads, torch.bfloat16, backward=True)
    assert (restored.block_k * restored.block_heads, restored.num_warps) == (64, 4)
    for grad, truth in zip(got, want, strict=True):
        error = (grad.double() - truth).abs().max().item()
        assert error <= 5e-2 * max(truth.abs().max().item(), 1.0)


def test_floors_count_each_batch_tensor_once():
    # x 18×18, z 64, out 64×18 in fp32 for 2 samples; backward doubles it.
    assert (
        floors.attention_floor_bytes(2, 18, 18, 64, torch.float32, backward=False)
        == 2 * (324 + 64 + 1152) * 4
    )
    assert (
        floors.attention_floor_bytes(2, 18, 18, 64, torch.bfloat16, backward=True)
        == 4 * (324 + 64 + 1152) * 2
    )
    assert floors.smooth_step_floor_bytes(3, 64, torch.float32, backward=True) == 4 * 3 * 64 * 4
