"""The implementations the kernel benchmarks compare, each behind the reference's signature.

- ``triton``: the fused kernels of ``apem_kernels`` (``backend="triton"``).
- ``triton_r128``: the same with the backward in the forward's tiles at 8 warps (2-byte inputs
  at the paper shape: 128 stacked rows, one K block, dx written once in x's dtype), the
  backward's configuration before it took 64 rows at 4 warps: the A/B of that choice, which the
  static figures could not settle (docs/design.md). Forward-and-backward cases only.
- ``eager``: ``apem_kernels.reference``, plain PyTorch ops.
- ``compile``: ``torch.compile`` of the reference (inductor).
- ``sdpa``: queries ``I ⊙ z`` expanded per sample, projections by ``F.linear``, heads through
  ``F.scaled_dot_product_attention`` with the key padding as a boolean ``attn_mask``.
- ``flex``: the same composition with the heads through compiled FlexAttention, key padding as a
  ``score_mod``.

A builder raises ``Unsupported`` (the benchmark skips with its message) where an implementation
cannot run a case on this machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterator

import torch
from torch import Tensor
from torch.nn import functional as F
from torch.nn.attention.flex_attention import flex_attention

from apem_kernels import reference
from apem_kernels.backend import triton_available
from apem_kernels.ops import inducing_attention as attention_op
from apem_kernels.ops.utils import interpreting

ATTENTION_IMPLS = ("triton", "triton_r128", "eager", "compile", "sdpa", "flex")
SMOOTH_STEP_IMPLS = ("triton", "eager", "compile")


class Unsupported(Exception):
    """This implementation cannot run the case here; the message says why."""


def _split_heads(t: Tensor, num_heads: int) -> Tensor:
    b, length, d = t.shape
    return t.reshape(b, length, num_heads, d // num_heads).transpose(1, 2)


def _merge_heads(t: Tensor) -> Tensor:
    b, heads, length, d_h = t.shape
    return t.transpose(1, 2).reshape(b, length, heads * d_h)


def sdpa_heads(
    q: Tensor, k: Tensor, v: Tensor, num_heads: int, key_padding_mask: Tensor | None
) -> Tensor:
    """Multi-head attention core on ``F.scaled_dot_product_attention``: (B, L, d) -> (B, K, d)."""
    keep = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
    heads = [_split_heads(t, num_heads) for t in (q, k, v)]
    return _merge_heads(F.scaled_dot_product_attention(*heads, attn_mask=keep))


def flex_heads(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    num_heads: int,
    key_padding_mask: Tensor | None,
    *,
    kernel: Callable[..., Tensor] = flex_attention,
) -> Tensor:
    """Multi-head attention core on FlexAttention (``kernel``: flex_attention, compiled or not)."""
    score_mod = None
    if key_padding_mask is not None:

        def score_mod(score, b, h, q_idx, kv_idx):
            return torch.where(key_padding_mask[b, kv_idx], -float("inf"), score)

    heads = [_split_heads(t, num_heads) for t in (q, k, v)]
    return _merge_heads(kernel(*heads, score_mod=score_mod))


def composed(heads_fn: Callable[..., Tensor], *, block: bool) -> Callable[..., Tensor]:
    """Inducing attention (``block``: with residual and LayerNorm) around an attention core.

    ``heads_fn(q, k, v, num_heads, key_padding_mask)`` is ``sdpa_heads`` or ``flex_heads``.
    Same signature as ``reference.inducing_attention`` / ``inducing_attention_block`` without
    the query projection, which no benchmark uses.
    """

    def attention(x, inducing, w_k, w_v, w_o, num_heads, z=None, key_padding_mask=None):
        q = reference.inducing_queries(inducing, z, x.shape[0])
        heads = heads_fn(q, F.linear(x, w_k), F.linear(x, w_v), num_heads, key_padding_mask)
        return F.linear(heads, w_o)

    def attention_block(
        x,
        inducing,
        w_k,
        w_v,
        w_o,
        num_heads,
        norm_weight,
        norm_bias,
        z=None,
        key_padding_mask=None,
        norm_eps=1e-5,
    ):
        o = attention(x, inducing, w_k, w_v, w_o, num_heads, z, key_padding_mask)
        residual = reference.inducing_queries(inducing, z, x.shape[0]) + o
        return F.layer_norm(residual, (x.shape[-1],), norm_weight, norm_bias, norm_eps)

    return attention_block if block else attention


def _compiled(fn: Callable[..., Tensor], device: torch.device) -> Callable[..., Tensor]:
    if device.type != "cuda":
        raise Unsupported(
            "torch.compile rows run on CUDA only: each graph's CPU build takes 4-15 s on a "
            "2-core CPU, too long for the CPU smoke run (see benchmarks/README.md)"
        )
    # One graph per (dtype, grad mode, shape) of each function: more than the default limit of 8.
    torch._dynamo.config.recompile_limit = 64
    return torch.compile(fn)


@functools.cache
def _compiled_flex_attention() -> Callable[..., Tensor]:
    return torch.compile(flex_attention)


def require_triton(device: torch.device) -> None:
    """Raise ``Unsupported`` unless compiled triton kernels can be timed on ``device``."""
    if device.type != "cuda":
        raise Unsupported("the triton kernels are timed on CUDA only")
    if interpreting():
        raise Unsupported("TRITON_INTERPRET=1 is set: the interpreter is for tests, not timing")
    if not triton_available():
        raise Unsupported("triton does not import here")


def _triton_op(name: str, device: torch.device) -> Callable[..., Tensor]:
    require_triton(device)
    import apem_kernels

    op = getattr(apem_kernels, name, None)
    if op is None:
        raise Unsupported(f"apem_kernels.{name} is not importable in this checkout")
    return functools.partial(op, backend="triton")


@contextlib.contextmanager
def backward_in_forward_tiles() -> Iterator[None]:
    """Within it the fused backward launches with the forward's tiles at 8 warps."""
    chosen = attention_op.launch_config

    def launch_config(*args, backward: bool = False) -> attention_op.LaunchConfig:
        cfg = chosen(*args)
        return dataclasses.replace(cfg, num_warps=8) if backward else cfg

    attention_op.launch_config = launch_config
    try:
        yield
    finally:
        attention_op.launch_config = chosen


def launch_context(impl: str) -> contextlib.AbstractContextManager:
    """What a timed call of ``impl`` runs within, its backward included."""
    return backward_in_forward_tiles() if impl == "triton_r128" else contextlib.nullcontext()


def attention(impl: str, *, block: bool, head_dim: int, device: torch.device) -> Callable:
    """``impl``'s inducing attention (``block``: the LayerNorm block the model runs; for
    ``triton_r128`` call it and its backward within ``launch_context``)."""
    name = "inducing_attention_block" if block else "inducing_attention"
    if impl in ("triton", "triton_r128"):
        return _triton_op(name, device)
    if impl == "eager":
        return getattr(reference, name)
    if impl == "compile":
        return _compiled(getattr(reference, name), device)
    if impl == "sdpa":
        return composed(sdpa_heads, block=block)
    if impl == "flex":
        if device.type != "cuda":
            raise Unsupported("FlexAttention rows run on CUDA only (it is timed compiled)")
        if head_dim < 16 or head_dim & (head_dim - 1):
            raise Unsupported(
                f"FlexAttention needs a head dim that is a power of two >= 16, not {head_dim}"
            )
        kernel = _compiled_flex_attention()
        return composed(functools.partial(flex_heads, kernel=kernel), block=block)
    raise ValueError(f"unknown implementation {impl!r}; expected one of {ATTENTION_IMPLS}")


def smooth_step(impl: str, *, device: torch.device) -> Callable[[Tensor, float], Tensor]:
    """``impl``'s smooth step f_D(u; gamma)."""
    if impl == "triton":
        return _triton_op("smooth_step", device)
    if impl == "eager":
        return reference.smooth_step
    if impl == "compile":
        return _compiled(reference.smooth_step, device)
    raise ValueError(f"unknown implementation {impl!r}; expected one of {SMOOTH_STEP_IMPLS}")
