"""PMA and ISAB against Set Transformer's published equations (Lee et al., 2019, eqs. 6-11 and
the authors' modules.py layout), re-implemented here head by head in float64."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

import apem_kernels as K

# fp32 modules against the float64 equations, relative to the largest reference magnitude.
FP32_TOLERANCE = 2e-5


def mab_equations(p: dict, prefix: str, queries, x, heads: int, mask=None):
    """MAB(Q, X) of the paper: ``H = LN(Q' + Multihead(Q', K, V))``, ``LN(H + rFF(H))``, with the
    authors' choices: each projection has a bias, the scores are scaled by 1/sqrt(d) of the full
    width, the residual adds each head's projected queries, rFF is ``relu(fc_o(H))``. A padded key
    (True in mask) gets no weight; a row with no key left attends to nothing."""

    def linear(name, t):
        return t @ p[f"{prefix}{name}.weight"].T + p[f"{prefix}{name}.bias"]

    q, k, v = linear("fc_q", queries), linear("fc_k", x), linear("fc_v", x)
    d = q.shape[-1]
    d_h = d // heads
    blocks = []
    for j in range(heads):
        cols = slice(j * d_h, (j + 1) * d_h)
        scores = q[..., cols] @ k[..., cols].transpose(1, 2) / math.sqrt(d)
        if mask is not None:
            scores = scores.masked_fill(mask[:, None, :], float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        if mask is not None:
            probs = torch.where(mask.all(1)[:, None, None], 0.0, probs)
        blocks.append(q[..., cols] + probs @ v[..., cols])
    h = torch.cat(blocks, dim=-1)
    if f"{prefix}ln0.weight" in p:
        h = F.layer_norm(h, (d,), p[f"{prefix}ln0.weight"], p[f"{prefix}ln0.bias"])
    h = h + torch.relu(linear("fc_o", h))
    if f"{prefix}ln1.weight" in p:
        h = F.layer_norm(h, (d,), p[f"{prefix}ln1.weight"], p[f"{prefix}ln1.bias"])
    return h


def pma_equations(p, x, heads, mask=None):
    seeds = p["S"].expand(x.shape[0], -1, -1)
    return mab_equations(p, "mab.", seeds, x, heads, mask)


def isab_equations(p, x, heads, mask=None):
    induced = mab_equations(p, "mab0.", p["I"].expand(x.shape[0], -1, -1), x, heads, mask)
    return mab_equations(p, "mab1.", x, induced, heads)


def mab_layout(prefix: str, dim_q: int, dim_k: int, dim_v: int, ln: bool) -> dict:
    """Key -> shape of one MAB in the authors' state_dict."""
    layout = {}
    for name, fan_in in (("fc_q", dim_q), ("fc_k", dim_k), ("fc_v", dim_k), ("fc_o", dim_v)):
        layout[f"{prefix}{name}.weight"] = (dim_v, fan_in)
        layout[f"{prefix}{name}.bias"] = (dim_v,)
    for name in ("ln0", "ln1") if ln else ():
        layout[f"{prefix}{name}.weight"] = layout[f"{prefix}{name}.bias"] = (dim_v,)
    return layout


def pma_layout(dim, seeds, ln):
    return {"S": (1, seeds, dim), **mab_layout("mab.", dim, dim, dim, ln)}


def isab_layout(dim_in, dim_out, inds, ln):
    return {
        "I": (1, inds, dim_out),
        **mab_layout("mab0.", dim_out, dim_in, dim_out, ln),
        **mab_layout("mab1.", dim_in, dim_out, dim_out, ln),
    }


def random_state(layout: dict, seed: int, prefix: str = "") -> dict:
    """A float64 state_dict with non-trivial values everywhere (norm weights around 1)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in layout.items():
        t = torch.randn(shape, generator=gen, dtype=torch.float64)
        if name.endswith(".weight") and len(shape) == 2:
            t = t / math.sqrt(shape[1])
        if ".ln" in name and name.endswith(".weight"):
            t = 1 + 0.3 * t
        state[prefix + name] = t
    return state


# (kind, sizes, ln, heads): d = 12 with 3 heads gives head width 4 and scale 1/sqrt(12).
CASES = [
    ("pma", (12, 3), True, 3),
    ("pma", (12, 1), False, 2),
    ("isab", (5, 12, 4), True, 3),  # dim_in < dim_out
    ("isab", (20, 12, 3), False, 2),  # dim_in > dim_out
]


def construct(kind, sizes, ln, heads):
    if kind == "pma":
        dim, seeds = sizes
        return K.PMA(dim, heads, seeds, ln)
    dim_in, dim_out, inds = sizes
    return K.ISAB(dim_in, dim_out, heads, inds, ln)


@pytest.fixture
def device(backend, request) -> torch.device:
    """The CPU for the torch backend; the kernels' device (tests/conftest.py) for triton."""
    return request.getfixturevalue("kernel_device") if backend == "triton" else torch.device("cpu")


def build(kind, sizes, ln, heads, seed=0):
    """(module in float32 loaded from a random state, that state in float64, equations)."""
    layout = pma_layout(*sizes, ln) if kind == "pma" else isab_layout(*sizes, ln)
    state = random_state(layout, seed)
    cls, equations = (K.PMA, pma_equations) if kind == "pma" else (K.ISAB, isab_equations)
    module = cls.from_state_dict({k: v.float() for k, v in state.items()}, heads)
    return module, state, equations


def set_inputs(batch, n, dim, seed=1, masked=False):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n, dim, generator=gen, dtype=torch.float64)
    if not masked:
        return x, None
    mask = torch.rand(batch, n, generator=gen) < 0.4
    mask[0] = True  # one set with every element padded
    mask[1] = False
    return x, mask


def assert_close_scaled(got, want, tolerance, what="", scale=None):
    """Max error within ``tolerance`` of ``scale`` (default: the largest reference magnitude)."""
    scale = scale if scale is not None else want.abs().max().item() or 1.0
    err = (got.double() - want).abs().max().item()
    assert err <= tolerance * scale, f"{what}: max error {err:.3g} vs scale {scale:.3g}"


@pytest.mark.parametrize(("kind", "sizes", "ln", "heads"), CASES)
def test_state_dict_is_the_authors_layout(kind, sizes, ln, heads):
    module = construct(kind, sizes, ln, heads)
    layout = pma_layout(*sizes, ln) if kind == "pma" else isab_layout(*sizes, ln)
    assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == layout


@pytest.mark.parametrize("backend", ["torch", "triton"])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize(("kind", "sizes", "ln", "heads"), CASES)
def test_forward_and_backward_match_the_equations(kind, sizes, ln, heads, masked, backend, device):
    module, state, equations = build(kind, sizes, ln, heads)
    module.to(device).backend = backend
    x64, mask = set_inputs(4, 7, sizes[0], masked=masked)
    x = x64.float().to(device).requires_grad_()
    out = module(x, None if mask is None else mask.to(device)).cpu()

    state = {k: v.requires_grad_() for k, v in state.items()}
    x64.requires_grad_()
    want = equations(state, x64, heads, mask)
    assert out.dtype == torch.float32 and out.shape == want.shape
    assert_close_scaled(out, want, FP32_TOLERANCE, "output")

    grad_out = torch.randn(
        want.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64
    )
    (out * grad_out.float()).sum().backward()
    (want * grad_out).sum().backward()
    assert_close_scaled(x.grad.cpu(), x64.grad, FP32_TOLERANCE, "x")
    params = dict(module.named_parameters())
    for name, value in state.items():
        if params[name].grad is None:
            # The key bias of a MAB over batch-shared queries cancels in the softmax.
            assert name.endswith("fc_k.bias") and name.startswith(("mab.", "mab0."))
            assert value.grad.abs().max() < 1e-12
        else:
            # A key bias's exact gradient is zero (it cancels in the softmax): judge it on the
            # scale of its weight's gradient.
            weight = state[name.replace(".bias", ".weight")].grad if "fc_k" in name else value.grad
            scale = weight.abs().max().item()
            assert_close_scaled(params[name].grad.cpu(), value.grad, FP32_TOLERANCE, name, scale)


@pytest.mark.parametrize("backend", ["torch", "triton"])
def test_padded_elements_are_dropped(backend, device):
    isab = build("isab", (5, 12, 4), True, 3)[0].to(device)
    pma = build("pma", (12, 3), True, 3)[0].to(device)
    mask = torch.tensor([[False, True, False, True, True, False], [True] * 6], device=device)
    for m, points, width in ((isab.mab0, isab.I[0], 5), (pma.mab, pma.S[0], 12)):
        x_in = set_inputs(2, 6, width)[0].float().to(device)
        padded = m.attend_points(points, x_in, mask, backend)
        kept = m.attend_points(points, x_in[:1, ~mask[0]], None, backend)
        torch.testing.assert_close(padded[:1], kept, rtol=1e-5, atol=1e-5)
        # No element left: the attention term and the value bias vanish.
        torch.testing.assert_close(padded[1], m._feed_forward(m.fc_q(points)))


def test_loader_takes_a_prefix_and_names_a_missing_key():
    state = {
        **random_state(isab_layout(3, 8, 4, True), 0, prefix="enc.0."),
        **random_state(pma_layout(8, 2, True), 1, prefix="dec.1."),
        "dec.4.weight": torch.zeros(1, 8, dtype=torch.float64),
    }
    isab = K.ISAB.from_state_dict(state, 2, prefix="enc.0.", backend="torch")
    pma = K.PMA.from_state_dict(state, 4, prefix="dec.1.")
    assert pma.backend is K.Backend.AUTO and isab.backend is K.Backend.TORCH
    assert pma.mab.num_heads == 4 and pma.S.dtype == torch.float64
    for prefix, module in (("enc.0.", isab), ("dec.1.", pma)):
        for name, value in module.state_dict().items():
            assert torch.equal(value, state[prefix + name])
    with pytest.raises(KeyError, match="state_dict has no 'enc.1.I'"):
        K.ISAB.from_state_dict(state, 2, prefix="enc.1.")
    with pytest.raises(ValueError, match="dim_v = 8 is not divisible by num_heads = 3"):
        K.PMA.from_state_dict(state, 3, prefix="dec.1.")


@pytest.mark.parametrize(
    ("build_it", "error", "message"),
    [
        (lambda: K.PMA(12, 5, 2), ValueError, "dim_v = 12 is not divisible by num_heads = 5"),
        (lambda: K.PMA(12, 2, 0), ValueError, "num_seeds must be >= 1, got 0"),
        (lambda: K.ISAB(3, 8, 2, 4.0), TypeError, "num_inds must be an int, got float"),
        (lambda: K.ISAB(3, 8, 2, 4, backend="gpu"), ValueError, "backend must be one of"),
    ],
)
def test_bad_construction(build_it, error, message):
    with pytest.raises(error, match=message):
        build_it()
