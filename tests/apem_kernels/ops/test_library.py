"""``torch.library.opcheck`` on every registered op: schema, fake (meta) implementation,
autograd registration and AOT dispatch, on small odd shapes of every variant the launchers take."""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

from apem_kernels import InducingAttention
from apem_kernels.ops import library
from apem_kernels.ops.inducing_attention import batch_shared_factors

B, N, K, D, HEADS = 3, 5, 4, 8, 2


def rand(device, *shape, requires_grad=True, dtype=torch.float64):
    t = torch.randn(*shape, dtype=torch.float64).to(device, dtype)
    return t.requires_grad_(requires_grad)


@pytest.mark.parametrize("shape", [(7,), (2, 3, 5), (0, 4)])
def test_smooth_step_ops(shape, kernel_device):
    u = rand(kernel_device, *shape)
    gamma = torch.tensor(0.75, dtype=torch.float64, device=kernel_device)
    torch.library.opcheck(library.smooth_step, (u, gamma))
    grad = rand(kernel_device, *shape, requires_grad=False)
    torch.library.opcheck(library.smooth_step_backward, (u.detach(), grad, gamma))


def attention_args(device, gate: str, norm: bool, masked: bool, batch: int = B):
    """Arguments of ``apem_kernels::inducing_attention`` for one variant."""
    torch.manual_seed(0)
    w = [rand(device, D, D, requires_grad=False) / D**0.5 for _ in range(3)]
    inducing = rand(device, K, D)
    a, c = batch_shared_factors(inducing.detach(), *w, HEADS, None)
    mask = None
    if masked:
        mask = torch.rand(batch, N) < 0.4
        mask[0] = True
        mask = mask.to(device)
    return (
        rand(device, batch, N, D),
        None if gate == "none" else rand(device, batch, K),
        a.requires_grad_(),
        c.requires_grad_(),
        inducing if norm else None,
        rand(device, D) if norm else None,
        rand(device, D) if norm else None,
        mask,
        torch.tensor(0.75, dtype=torch.float64, device=device) if gate == "u" else None,
        1e-5,
        gate == "u",
    )


VARIANTS = [
    ("none", False, False, B),
    ("z", True, True, B),
    ("u", True, False, B),
    ("u", False, True, B),
    ("z", True, False, 0),
]


@pytest.mark.parametrize(("gate", "norm", "masked", "batch"), VARIANTS)
def test_inducing_attention_ops(gate, norm, masked, batch, kernel_device):
    args = attention_args(kernel_device, gate, norm, masked, batch)
    torch.library.opcheck(library.inducing_attention, args)
    out, lse = library.inducing_attention(*args)
    dy = torch.randn_like(out)
    detached = [t.detach() if isinstance(t, torch.Tensor) else t for t in args]
    backward_args = (dy, *detached[:8], lse.detach(), *detached[8:])
    torch.library.opcheck(library.inducing_attention_backward, backward_args)


def test_backward_op_returns_empty_tensors_for_absent_inputs(kernel_device):
    args = attention_args(kernel_device, "none", False, False)
    out, lse = library.inducing_attention(*args)
    detached = [t.detach() if isinstance(t, torch.Tensor) else t for t in args]
    grads = library.inducing_attention_backward(out.detach(), *detached[:8], lse, *detached[8:])
    present = [g.numel() > 0 for g in grads]
    assert present == [True, False, True, True, False, False, False]
    x, _, a, c = args[:4]
    dx, da, dc = torch.autograd.grad(library.inducing_attention(*args)[0].sum(), [x, a, c])
    assert dx.shape == x.shape and da.shape == a.shape and dc.shape == c.shape


@pytest.mark.parametrize("op", ["attention", "smooth_step"])
def test_backward_ops_are_differentiable_once(op, kernel_device):
    """The backward ops have no autograd formula of their own (what ``once_differentiable``
    says for an ``autograd.Function``): a first-order gradient with ``create_graph`` works, a
    second backward through it is refused by name instead of returning a wrong zero."""
    if op == "attention":
        args = attention_args(kernel_device, "u", True, False)
        x = args[0]
        out = library.inducing_attention(*args)[0]
    else:
        x = torch.randn(5, 3, dtype=torch.float64, device=kernel_device, requires_grad=True)
        out = library.smooth_step(x, library.as_gamma(2.0))
    (grad,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match=f"{op}_backward.*no autograd formula"):
        grad.sum().backward()


def test_export_and_fullgraph_compile_see_one_opaque_op(kernel_device):
    torch.manual_seed(0)
    module = InducingAttention(D, K, HEADS, backend="triton").to(kernel_device)
    x, u = torch.randn(B, N, D, device=kernel_device), torch.randn(B, K, device=kernel_device)

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.block = module

        def forward(self, x, u):
            return self.block(x, u=u, gamma=0.75)

    program = torch.export.export(Block(), (x, u))
    ops = [n.target for n in program.graph.nodes if n.op == "call_function"]
    assert torch.ops.apem_kernels.inducing_attention.default in ops
    torch.testing.assert_close(program.module()(x, u), module(x, u=u, gamma=0.75))

    # γ as a tensor (a model's step buffer) changes every step without a recompile.
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(
        lambda x, gamma: module(x, u=u, gamma=gamma).sum(), fullgraph=True, backend=counter
    )
    x.requires_grad_()
    compiled_once = None
    for step in range(10):
        gamma = torch.tensor(10.0 - step, dtype=torch.float64, device=kernel_device)
        (grad,) = torch.autograd.grad(compiled(x, gamma), x)
        if step in (0, 9):  # eager runs of the interpreted kernels cost; two suffice
            (want,) = torch.autograd.grad(module(x, u=u, gamma=gamma).sum(), x)
            torch.testing.assert_close(grad, want)
        compiled_once = compiled_once or counter.frame_count
    assert counter.frame_count == compiled_once
