"""The torch reference against multi-head attention written out with an explicit softmax."""

from __future__ import annotations

import math

import pytest
import torch

from apem_kernels import reference


def explicit_attention(q, k, v, num_heads, key_padding_mask):
    """softmax(q_j k_jᵀ / sqrt(d_h)) v_j per head, all-padded rows -> 0; (B, K, d)."""
    b, n_q, d = q.shape
    d_h = d // num_heads
    heads = []
    for j in range(num_heads):
        cols = slice(j * d_h, (j + 1) * d_h)
        scores = q[..., cols] @ k[..., cols].transpose(1, 2) / math.sqrt(d_h)
        if key_padding_mask is not None:
            scores = scores.masked_fill(key_padding_mask[:, None, :], float("-inf"))
        probs = torch.nan_to_num(torch.softmax(scores, dim=-1), nan=0.0)
        heads.append(probs @ v[..., cols])
    return torch.cat(heads, dim=-1)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize(
    ("n", "k_rows", "d", "heads"), [(1, 1, 8, 1), (7, 5, 18, 2), (33, 64, 12, 3)]
)
def test_inducing_attention_matches_explicit_softmax(masked, n, k_rows, d, heads):
    gen = torch.Generator().manual_seed(n * 100 + k_rows)
    b = 6
    x = torch.randn(b, n, d, generator=gen, dtype=torch.float64, requires_grad=True)
    inducing = torch.randn(k_rows, d, generator=gen, dtype=torch.float64)
    w_k, w_v, w_o = (torch.randn(d, d, generator=gen, dtype=torch.float64) / d**0.5 for _ in "kvo")
    z = torch.rand(b, k_rows, generator=gen, dtype=torch.float64)
    mask = None
    if masked:
        mask = torch.rand(b, n, generator=gen) < 0.4
        mask[0] = True  # one sample with every key padded
    got = reference.inducing_attention(x, inducing, w_k, w_v, w_o, heads, z, mask)
    q = inducing * z[..., None]
    want = explicit_attention(q, x @ w_k.T, x @ w_v.T, heads, mask) @ w_o.T
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    if masked:
        assert torch.all(got[0] == 0)
    (grad,) = torch.autograd.grad(got.square().sum(), x)
    (want_grad,) = torch.autograd.grad(want.square().sum(), x)
    torch.testing.assert_close(grad, want_grad, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("masked", [False, True])
def test_factored_form_with_the_products_is_inducing_attention(masked):
    """``A_j = I_j W_K_j / sqrt(d_h)``, ``C_j = W_V_jᵀ W_O_jᵀ`` turn the factored form into
    :func:`reference.inducing_attention`, gradients included."""
    gen = torch.Generator().manual_seed(3)
    b, n, k_rows, d, heads = 4, 7, 5, 12, 3
    d_h = d // heads
    x = torch.randn(b, n, d, generator=gen, dtype=torch.float64, requires_grad=True)
    inducing = torch.randn(k_rows, d, generator=gen, dtype=torch.float64)
    w_k, w_v, w_o = (torch.randn(d, d, generator=gen, dtype=torch.float64) / d**0.5 for _ in "kvo")
    z = torch.rand(b, k_rows, generator=gen, dtype=torch.float64)
    mask = (torch.rand(b, n, generator=gen) < 0.4) if masked else None
    if masked:
        mask[0] = True
    heads_of = [slice(j * d_h, (j + 1) * d_h) for j in range(heads)]
    a = torch.stack([inducing[:, c] @ w_k[c] / math.sqrt(d_h) for c in heads_of])
    c_factor = torch.stack([w_v[c].T @ w_o[:, c].T for c in heads_of])
    got = reference.factored_inducing_attention(x, a, c_factor, z, mask)
    want = reference.inducing_attention(x, inducing, w_k, w_v, w_o, heads, z, mask)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    (grad,) = torch.autograd.grad(got.square().sum(), x)
    (want_grad,) = torch.autograd.grad(want.square().sum(), x)
    torch.testing.assert_close(grad, want_grad, rtol=1e-9, atol=1e-11)
