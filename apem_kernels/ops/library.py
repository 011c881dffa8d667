"""The Triton kernels registered as ``torch.library`` ops (namespace ``apem_kernels``).

Each kernel pair is a forward and a backward op over the launchers of its op file
(``_forward``/``_backward``), with a fake implementation (shapes and dtypes only, for
FakeTensor tracing: torch.compile, torch.export) and the forward's autograd formula calling the
backward op. The ops are opaque to the tracers, so a compiled graph calls the kernels as they are:

    apem_kernels::smooth_step(u, gamma) -> f_D(u)
    apem_kernels::smooth_step_backward(u, grad_out, gamma) -> du
    apem_kernels::inducing_attention(x, gate, a, c, inducing, norm_weight, norm_bias, mask,
                                     gamma, eps, gate_is_u) -> (out, lse)
    apem_kernels::inducing_attention_backward(dy, x, ..., mask, lse, gamma, eps, gate_is_u)
        -> [dx, dgate, da, dc, dinducing, dnorm_weight, dnorm_bias]

γ is a one-element tensor argument (a model's step buffer can feed it), read to the host only
inside the op, so a compiled graph neither breaks at it nor recompiles as it changes.

The backward op returns an empty tensor for an absent input's gradient (an op's outputs are
tensors); the autograd formula turns those into None. ``tests/apem_kernels/ops/test_library.py``
runs ``torch.library.opcheck`` on every op.
"""

from __future__ import annotations

import torch
from torch import Tensor

from apem_kernels.ops import inducing_attention as attention_op
from apem_kernels.ops import smooth_step as smooth_step_op


@torch.library.custom_op("apem_kernels::smooth_step", mutates_args=())
def smooth_step(u: Tensor, gamma: Tensor) -> Tensor:
    """f_D(u; gamma): u any shape -> u's shape and dtype; gamma a one-element tensor."""
    return smooth_step_op._forward(u, float(gamma))


@smooth_step.register_fake
def _(u: Tensor, gamma: Tensor) -> Tensor:
    return u.new_empty(u.shape)


@torch.library.custom_op("apem_kernels::smooth_step_backward", mutates_args=())
def smooth_step_backward(u: Tensor, grad_out: Tensor, gamma: Tensor) -> Tensor:
    """``grad_out * f_D'(u; gamma)`` in u's shape and dtype."""
    return smooth_step_op._backward(u, grad_out, float(gamma))


@smooth_step_backward.register_fake
def _(u: Tensor, grad_out: Tensor, gamma: Tensor) -> Tensor:
    return u.new_empty(u.shape)


def _smooth_step_setup(ctx, inputs, output) -> None:
    u, gamma = inputs
    ctx.save_for_backward(u)
    ctx.gamma = gamma


def _smooth_step_grad(ctx, grad_out: Tensor):
    (u,) = ctx.saved_tensors
    return smooth_step_backward(u, grad_out, ctx.gamma), None


smooth_step.register_autograd(_smooth_step_grad, setup_context=_smooth_step_setup)


@torch.library.custom_op("apem_kernels::inducing_attention", mutates_args=())
def inducing_attention(
    x: Tensor,
    gate: Tensor | None,
    a: Tensor,
    c: Tensor,
    inducing: Tensor | None,
    norm_weight: Tensor | None,
    norm_bias: Tensor | None,
    mask: Tensor | None,
    gamma: Tensor | None,
    eps: float,
    gate_is_u: bool,
) -> tuple[Tensor, Tensor]:
    """(out (B, K, d), lse (B, M, K or 0: ``inducing_attention.lse_size``)); the arguments of
    ``inducing_attention._forward``: x (B, N, d); gate z or u (B, K) or None; a (M, K, d),
    c (M, d, d) in the accumulator dtype; inducing, norm_weight, norm_bias for the fused
    residual + LayerNorm, or None; mask (B, N) bool or None; gamma a one-element tensor (with u)
    or None, eps (with the norm); gate_is_u: the gate is u."""
    return attention_op._forward(
        x, gate, a, c, inducing, norm_weight, norm_bias, mask, _host(gamma), eps, gate_is_u
    )


@inducing_attention.register_fake
def _(x, gate, a, c, inducing, norm_weight, norm_bias, mask, gamma, eps, gate_is_u):
    batch, n, d = x.shape
    heads, k, _ = a.shape
    lse = a.new_empty((batch, heads, attention_op.lse_size(n, k, d, heads, x.dtype)))
    return x.new_empty((batch, k, d)), lse


@torch.library.custom_op("apem_kernels::inducing_attention_backward", mutates_args=())
def inducing_attention_backward(
    dy: Tensor,
    x: Tensor,
    gate: Tensor | None,
    a: Tensor,
    c: Tensor,
    inducing: Tensor | None,
    norm_weight: Tensor | None,
    norm_bias: Tensor | None,
    mask: Tensor | None,
    lse: Tensor,
    gamma: Tensor | None,
    eps: float,
    gate_is_u: bool,
) -> list[Tensor]:
    """[dx, dgate, da, dc, dinducing, dnorm_weight, dnorm_bias], empty where absent."""
    grads = attention_op._backward(
        dy, x, gate, a, c, inducing, norm_weight, norm_bias, mask, lse, _host(gamma), eps,
        gate_is_u,
    )  # fmt: skip
    return [x.new_empty(0) if g is None else g for g in grads]


@inducing_attention_backward.register_fake
def _(dy, x, gate, a, c, inducing, norm_weight, norm_bias, mask, lse, gamma, eps, gate_is_u):
    shaped = (x, gate, a, c, inducing, norm_weight, norm_bias)
    return [x.new_empty(0) if t is None else t.new_empty(t.shape) for t in shaped]


def as_gamma(gamma: float | Tensor | None) -> Tensor | None:
    """γ as the ops take it: a 0-dim tensor (a python number becomes a float64 CPU one)."""
    if gamma is None or isinstance(gamma, Tensor):
        return gamma
    return torch.tensor(float(gamma), dtype=torch.float64)


def _host(gamma: Tensor | None) -> float:
    """γ for a kernel launch (the launch reads it, one device sync for a CUDA tensor); 1.0 when
    absent (the kernel ignores it then)."""
    return 1.0 if gamma is None else float(gamma)


def _attention_setup(ctx, inputs, output) -> None:
    x, gate, a, c, inducing, norm_weight, norm_bias, mask, gamma, eps, gate_is_u = inputs
    ctx.save_for_backward(x, gate, a, c, inducing, norm_weight, norm_bias, mask, output[1])
    ctx.scalars = (gamma, eps, gate_is_u)
    ctx.present = [t is not None for t in (x, gate, a, c, inducing, norm_weight, norm_bias)]


def _attention_grad(ctx, dy: Tensor, _dlse: Tensor):
    grads = inducing_attention_backward(dy, *ctx.saved_tensors, *ctx.scalars)
    kept = [g if present else None for g, present in zip(grads, ctx.present, strict=True)]
    return (*kept, None, None, None, None)


inducing_attention.register_autograd(_attention_grad, setup_context=_attention_setup)
