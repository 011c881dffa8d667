"""``InducingAttention``: parameters, backends, state_dict, and use as a user would."""

import io
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import apem_kernels as K
from apem_kernels import reference


def make(seed: int = 0, **kwargs) -> K.InducingAttention:
    torch.manual_seed(seed)
    return K.InducingAttention(18, 5, 2, **kwargs)


def inputs(batch: int = 3, keys: int = 7, seed: int = 1):
    """x (B, N, 18), u (B, 5) and a key padding mask with one all-padded row."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, keys, 18, generator=gen)
    u = torch.randn(batch, 5, generator=gen) * 2
    mask = torch.rand(batch, keys, generator=gen) < 0.3
    mask[-1] = True
    return x, u, mask


def test_parameters_and_init():
    m = make(dtype=torch.float64)
    assert dict(m.named_parameters()).keys() == {
        "inducing",
        "w_k",
        "w_v",
        "w_o",
        "norm.weight",
        "norm.bias",
    }
    assert m.inducing.shape == (5, 18) and m.w_k.shape == m.w_v.shape == m.w_o.shape == (18, 18)
    assert m.w_q is None and all(p.dtype == torch.float64 for p in m.parameters())
    bound = 18**-0.5  # nn.Linear's default
    for w in (m.w_k, m.w_v, m.w_o):
        assert w.abs().max() <= bound and w.std() > bound / 4
    assert m.inducing.std() > 0.1 and torch.equal(m.norm.weight, torch.ones(18))
    assert "dim=18, num_inducing=5, num_heads=2" in repr(m)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((18, 5, 4), {}, ValueError, "dim = 18 is not divisible by num_heads = 4"),
        ((0, 5, 1), {}, ValueError, "dim must be >= 1, got 0"),
        ((18, 5.0, 2), {}, TypeError, "num_inducing must be an int, got float"),
        ((18, 5, 2), {"backend": "gpu"}, ValueError, "backend must be one of"),
    ],
)
def test_bad_construction(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        K.InducingAttention(*args, **kwargs)


def test_forward_is_the_reference_block():
    m = make(query_projection=True)
    x, u, mask = inputs()
    got = m(x, u=u, gamma=3.0, key_padding_mask=mask)
    want = reference.inducing_attention_block(
        x, m.inducing, m.w_k, m.w_v, m.w_o, 2, m.norm.weight, m.norm.bias,
        reference.smooth_step(u, 3.0), mask, m.w_q,
    )  # fmt: skip
    assert got.shape == (3, 5, 18)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_query_projection_is_a_parameter_that_matters():
    plain, projected = make(), make(query_projection=True)
    assert "w_q" in projected.state_dict() and "w_q" not in plain.state_dict()
    assert "query_projection=True" in repr(projected)
    x, _, _ = inputs()
    projected.load_state_dict({**plain.state_dict(), "w_q": projected.w_q.detach()})
    assert not torch.allclose(plain(x), projected(x))
    with torch.no_grad():
        projected.w_q.copy_(torch.eye(18))
    torch.testing.assert_close(plain(x), projected(x))


def test_pma_without_gate_matches_all_ones_gate():
    m = make()
    x, _, mask = inputs()
    torch.testing.assert_close(
        m(x, key_padding_mask=mask), m(x, torch.ones(3, 5), key_padding_mask=mask)
    )


def test_state_dict_round_trips_and_is_backend_independent():
    m = make(query_projection=True)
    before = m.state_dict()
    m.backend = "triton"
    assert m.backend is K.Backend.TRITON and "backend='triton'" in repr(m)
    after = m.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    buffer = io.BytesIO()
    torch.save(m.state_dict(), buffer)
    buffer.seek(0)
    other = make(seed=7, query_projection=True, backend="torch")
    other.load_state_dict(torch.load(buffer))
    x, u, mask = inputs()
    m.backend = "torch"
    assert torch.equal(
        m(x, u=u, gamma=2.0, key_padding_mask=mask), other(x, u=u, gamma=2.0, key_padding_mask=mask)
    )


@pytest.mark.parametrize("query_projection", [False, True])
def test_backends_agree_forward_and_backward(query_projection, kernel_device):
    outputs = {}
    for backend in ("torch", "triton"):
        m = make(
            query_projection=query_projection,
            backend=backend,
            device=kernel_device,
            dtype=torch.float64,
        )
        x, u, mask = (
            t.to(kernel_device, torch.float64 if t.is_floating_point() else t.dtype)
            for t in inputs()
        )
        x.requires_grad_()
        u.requires_grad_()
        y = m(x, u=u, gamma=3.0, key_padding_mask=mask)
        y.backward(torch.cos(torch.arange(y.numel(), dtype=y.dtype, device=y.device)).view_as(y))
        grads = {name: p.grad for name, p in m.named_parameters()}
        outputs[backend] = {"y": y.detach(), "x.grad": x.grad, "u.grad": u.grad, **grads}
    for name, want in outputs["torch"].items():
        got = outputs["triton"][name]
        assert torch.isfinite(got).all(), name
        # float64 on both sides; the interpreter rounds python float scalars to fp32.
        torch.testing.assert_close(
            got, want, rtol=1e-6, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}"
        )


def test_use_from_a_fresh_interpreter_on_cpu():
    script = textwrap.dedent(
        """
        import sys
        import torch
        import apem_kernels as K
        m = K.InducingAttention(32, 64, 2)
        x = torch.randn(4, 10, 32, requires_grad=True)
        y = m(x, u=torch.randn(4, 64), gamma=9.8)
        y.sum().backward()
        assert y.shape == (4, 64, 32) and torch.isfinite(x.grad).all()
        assert m.w_k.grad is not None and "triton" not in sys.modules
        print("ok")
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
