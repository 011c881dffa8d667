"""The torch backend's arrangement (apem_kernels.eager) against the reference, float64."""

from __future__ import annotations

import pytest
import torch

from apem_kernels import eager, reference


def _inputs(batch, keys, inducing, dim, heads, gate, mask, w_q, seed=0):
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen, dtype=torch.float64) * scale).requires_grad_()

    args = {
        "x": rand(batch, keys, dim),
        "inducing": rand(inducing, dim),
        "w_k": rand(dim, dim, scale=dim**-0.5),
        "w_v": rand(dim, dim, scale=dim**-0.5),
        "w_o": rand(dim, dim, scale=dim**-0.5),
        "num_heads": heads,
        "z": rand(batch, inducing) if gate else None,
        "w_q": rand(dim, dim, scale=dim**-0.5) if w_q else None,
    }
    if mask:
        padded = torch.rand(batch, keys, generator=gen) < 0.4
        padded[0] = True
        args["key_padding_mask"] = padded
    return args


# (B, N, K, d, M): few queries (factorised), head width padded 9 -> 16, a width needing no pad.
SHAPES = [(3, 64, 2, 18, 2), (3, 18, 64, 18, 2), (2, 7, 5, 16, 2), (2, 20, 3, 12, 3)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize(("gate", "mask", "w_q"), [(True, False, False), (False, True, True)])
@pytest.mark.parametrize("block", [False, True])
def test_matches_reference_with_gradients(shape, gate, mask, w_q, block):
    args = _inputs(*shape, gate, mask, w_q)
    if block:
        d = shape[3]
        gen = torch.Generator().manual_seed(1)
        norm = [torch.randn(d, generator=gen, dtype=torch.float64).requires_grad_() for _ in "wb"]
        run = {"norm_weight": norm[0], "norm_bias": norm[1]}
        fast = eager.inducing_attention_block(**args, **run)
        expected = reference.inducing_attention_block(**args, **run)
    else:
        fast = eager.inducing_attention(**args)
        expected = reference.inducing_attention(**args)
    torch.testing.assert_close(fast, expected, rtol=1e-10, atol=1e-10)
    leaves = [v for v in args.values() if isinstance(v, torch.Tensor) and v.requires_grad]
    grad_out = torch.randn(
        expected.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64
    )
    for got, want in zip(
        torch.autograd.grad(fast, leaves, grad_out),
        torch.autograd.grad(expected, leaves, grad_out),
        strict=True,
    ):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-10)
