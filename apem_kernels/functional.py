"""Public functional API: argument validation, then dispatch to the Triton or torch backend.

Everything is checked before any kernel launch, so bad input raises a ``TypeError`` or
``ValueError`` naming the argument (and the expected shape) instead of failing inside a kernel.
Triton is imported only when the triton backend runs.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import torch
from torch import Tensor
from torch.nn import functional as F

from apem_kernels import eager, reference
from apem_kernels.backend import Backend, resolve_backend
from apem_kernels.ops.utils import fused_supports, interpreting, tracing

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _float_tensor(name: str, value: object) -> Tensor:
    """``value`` as a floating tensor of a supported dtype, or a TypeError naming ``name``."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float16, bfloat16, float32 or float64, got {value.dtype}")
    return value


def _check_shape(name: str, value: Tensor, expected: tuple[int, ...], symbols: str) -> None:
    """ValueError unless ``value.shape == expected``; ``symbols`` spells it, e.g. ``"(B, K)"``."""
    if tuple(value.shape) != expected:
        raise ValueError(f"{name} must have shape {symbols} = {expected}, got {tuple(value.shape)}")


def _check_like(name: str, value: Tensor, x: Tensor, dtype: torch.dtype | None) -> None:
    """``value`` must sit on ``x``'s device and, unless ``dtype`` is None, have that dtype."""
    if value.device != x.device:
        raise ValueError(f"{name} is on {value.device} but x is on {x.device}")
    if dtype is not None and value.dtype != dtype:
        raise TypeError(f"{name} has dtype {value.dtype} but x has dtype {dtype}")


def _positive_float(name: str, value: object) -> float:
    """A finite positive python real as a float, or a TypeError/ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def _gamma(value: object) -> float | Tensor:
    """γ as a float, or as a 0-dim tensor if given as a one-element tensor.

    A tensor's value is checked only where reading it is free: eagerly, on the CPU. On an
    accelerator that read would stall the stream, and a traced graph cannot branch on it.
    """
    if not isinstance(value, Tensor):
        return _positive_float("gamma", value)
    if value.numel() != 1 or not value.dtype.is_floating_point:
        raise TypeError(
            f"gamma must be a real number or a one-element float tensor, got a {value.dtype} "
            f"tensor of shape {tuple(value.shape)}"
        )
    if value.device.type == "cpu" and not tracing():
        _positive_float("gamma", value.item())
    return value.reshape(())


def _resolve(backend: Backend | str, x: Tensor) -> Backend:
    """The backend for ``x``; the triton backend on CPU tensors needs the interpreter."""
    choice = resolve_backend(backend, x)
    if choice is Backend.TRITON and not x.is_cuda and not interpreting():
        raise ValueError(
            f"backend='triton' needs CUDA tensors (or TRITON_INTERPRET=1), got a tensor on "
            f"{x.device}; use backend='torch' or 'auto'"
        )
    return choice


def smooth_step(u: Tensor, gamma: float | Tensor, *, backend: Backend | str = "auto") -> Tensor:
    """The cubic smooth step f_D(u; gamma) of the dynamic selector (DESIGN.md §2).

    Args:
        u: any shape, float16/bfloat16/float32/float64.
        gamma: width of the ramp, a finite number > 0: a python number or a one-element float
            tensor (no gradient flows to it). The torch backend computes with a tensor as it
            is (no host sync, no recompile under torch.compile when it changes).
        backend: ``"auto"``, ``"triton"`` or ``"torch"``.

    Returns:
        f_D(u) with u's shape and dtype, computed in float32 (float64 for float64 input).
    """
    u = _float_tensor("u", u)
    gamma = _gamma(gamma)
    if _resolve(backend, u) is Backend.TORCH:
        return reference.smooth_step(u, gamma)
    from apem_kernels.ops.smooth_step import fused_smooth_step

    return fused_smooth_step(u, gamma)


def _check_attention_args(
    x: Tensor,
    inducing: Tensor,
    weights: dict[str, Tensor],
    num_heads: int,
    z: Tensor | None,
    u: Tensor | None,
    gamma: float | Tensor | None,
    key_padding_mask: Tensor | None,
    norm: tuple[Tensor, Tensor, float] | None,
) -> float | None:
    """Check every argument of the attention entry points; returns gamma (``_gamma``) or None.

    ``weights`` maps names to the (d, d) weights given (w_k, w_v, w_o and maybe w_q).
    """
    x = _float_tensor("x", x)
    if x.dim() != 3:
        raise ValueError(f"x must have shape (B, N, d), got {tuple(x.shape)}")
    dim = x.shape[2]
    inducing = _float_tensor("inducing", inducing)
    if inducing.dim() != 2:
        raise ValueError(f"inducing must have shape (K, d), got {tuple(inducing.shape)}")
    if inducing.shape[1] != dim:
        raise ValueError(
            f"x (B, N, d) and inducing (K, d) must share d: x has shape {tuple(x.shape)}, "
            f"inducing {tuple(inducing.shape)}"
        )
    if isinstance(num_heads, bool) or not isinstance(num_heads, Integral):
        raise TypeError(f"num_heads must be an int, got {type(num_heads).__name__}")
    if num_heads < 1 or dim % num_heads != 0:
        raise ValueError(
            f"num_heads must be >= 1 and divide d = {dim} (x.shape[-1]), got {num_heads}"
        )
    floats = {"inducing": inducing}
    for name, weight in weights.items():
        floats[name] = _float_tensor(name, weight)
        _check_shape(name, weight, (dim, dim), "(d, d)")
    if norm is not None:
        for name, param in (("norm_weight", norm[0]), ("norm_bias", norm[1])):
            floats[name] = _float_tensor(name, param)
            _check_shape(name, param, (dim,), "(d,)")
        if isinstance(norm[2], bool) or not isinstance(norm[2], Real):
            raise TypeError(f"norm_eps must be a real number, got {type(norm[2]).__name__}")
        if not math.isfinite(norm[2]) or norm[2] < 0:
            raise ValueError(f"norm_eps must be a finite number >= 0, got {norm[2]}")
    return _check_gate_and_mask(x, inducing.shape[0], z, u, gamma, key_padding_mask, floats)


def _check_gate_and_mask(
    x: Tensor,
    num_queries: int,
    z: Tensor | None,
    u: Tensor | None,
    gamma: float | Tensor | None,
    key_padding_mask: Tensor | None,
    floats: dict[str, Tensor],
) -> float | Tensor | None:
    """Check z or u (B, K) with gamma and the (B, N) mask; then that ``floats`` (named float
    arguments already checked) share x's device and dtype. Returns gamma (``_gamma``) or None."""
    batch, keys, _ = x.shape
    if z is not None and u is not None:
        raise ValueError("give either z (the mask) or u (its pre-activation, with gamma), not both")
    if u is None and gamma is not None:
        raise ValueError(
            "gamma is only used with u; pass u (the mask pre-activation) or drop gamma"
        )
    if u is not None and gamma is None:
        raise ValueError("u needs gamma, the width of the smooth step")
    floats = dict(floats)
    for name, row_scale in (("z", z), ("u", u)):
        if row_scale is not None:
            floats[name] = _float_tensor(name, row_scale)
            _check_shape(name, row_scale, (batch, num_queries), "(B, K)")
    if key_padding_mask is not None:
        if not isinstance(key_padding_mask, Tensor) or key_padding_mask.dtype != torch.bool:
            found = getattr(key_padding_mask, "dtype", type(key_padding_mask).__name__)
            raise TypeError(f"key_padding_mask must be a bool tensor (True = padded), got {found}")
        _check_shape("key_padding_mask", key_padding_mask, (batch, keys), "(B, N)")
        _check_like("key_padding_mask", key_padding_mask, x, None)
    for name, value in floats.items():
        _check_like(name, value, x, x.dtype)
    return None if gamma is None else _gamma(gamma)


def _attention_backend(backend: Backend | str, x: Tensor, dim: int, num_heads: int) -> Backend:
    """``_resolve`` for attention: ``auto`` takes torch where the kernels' tiles do not fit the
    width d and the heads (``fused_supports``), an explicit ``triton`` is an error there."""
    choice = _resolve(backend, x)
    if choice is Backend.TRITON and not fused_supports(dim, num_heads, x.dtype):
        if Backend.parse(backend) is Backend.AUTO:
            return Backend.TORCH
        raise ValueError(
            f"backend='triton' supports d <= 128 (bf16/fp16: at most 2 heads at d = 128, 4 at "
            f"d = 64; fp32/fp64: d <= 32, at most 2 heads at d = 32), got d = {dim} with "
            f"{num_heads} heads in {x.dtype}; use backend='torch'"
        )
    return choice


def _zero_padded(x: Tensor, key_padding_mask: Tensor | None) -> Tensor:
    """x with its padded keys set to 0 (a copy), so that NaN/inf there never reaches a row."""
    if key_padding_mask is None:
        return x
    return x.masked_fill(key_padding_mask[..., None], 0)


def _attention(
    x: Tensor,
    inducing: Tensor,
    w_k: Tensor,
    w_v: Tensor,
    w_o: Tensor,
    num_heads: int,
    z: Tensor | None,
    u: Tensor | None,
    gamma: float | Tensor | None,
    key_padding_mask: Tensor | None,
    w_q: Tensor | None,
    norm: tuple[Tensor, Tensor, float] | None,
    backend: Backend | str,
) -> Tensor:
    """Validate, then run O (``norm`` None) or LayerNorm(I ⊙ z + O) on the chosen backend."""
    weights = {"w_k": w_k, "w_v": w_v, "w_o": w_o}
    if w_q is not None:
        weights["w_q"] = w_q
    gamma = _check_attention_args(
        x, inducing, weights, num_heads, z, u, gamma, key_padding_mask, norm
    )
    num_heads = int(num_heads)
    x = _zero_padded(x, key_padding_mask)
    if _attention_backend(backend, x, x.shape[-1], num_heads) is Backend.TORCH:
        if u is not None:
            z = reference.smooth_step(u, gamma)
        args = (x, inducing, w_k, w_v, w_o, num_heads)
        if norm is None:
            return eager.inducing_attention(*args, z, key_padding_mask, w_q)
        return eager.inducing_attention_block(
            *args, norm[0], norm[1], z, key_padding_mask, w_q, float(norm[2])
        )
    from apem_kernels.ops.inducing_attention import fused_inducing_attention

    norm_weight, norm_bias, norm_eps = norm if norm is not None else (None, None, 1e-5)
    return fused_inducing_attention(
        x,
        inducing,
        w_k,
        w_v,
        w_o,
        num_heads,
        z=z,
        u=u,
        gamma=gamma,
        key_padding_mask=key_padding_mask,
        w_q=w_q,
        norm_weight=norm_weight,
        norm_bias=norm_bias,
        norm_eps=float(norm_eps),
    )


def inducing_attention(
    x: Tensor,
    inducing: Tensor,
    w_k: Tensor,
    w_v: Tensor,
    w_o: Tensor,
    num_heads: int,
    z: Tensor | None = None,
    *,
    u: Tensor | None = None,
    gamma: float | Tensor | None = None,
    key_padding_mask: Tensor | None = None,
    w_q: Tensor | None = None,
    backend: Backend | str = "auto",
) -> Tensor:
    """Masked inducing-point attention ``O`` (DESIGN.md §2 and §4.1, before residual and norm).

    Args:
        x: (B, N, d) keys/values input; float16/bfloat16/float32/float64.
        inducing: (K, d) inducing points I.
        w_k, w_v, w_o: (d, d) in ``F.linear`` convention (``K = F.linear(x, w_k)``).
        num_heads: M, dividing d; heads are consecutive blocks of d/M columns.
        z: (B, K) per-sample query row scale (``Q̂ = I ⊙ z``); None means all ones.
        u: (B, K) pre-activation of z instead of z: ``z = smooth_step(u, gamma)`` (needs gamma).
        gamma: width of the smooth step, a finite number > 0 (only with u): a python number
            or a one-element float tensor. The torch backend uses a tensor as it is; the
            triton backend reads it to the host (one device sync).
        key_padding_mask: (B, N) bool, True marks a padded key; all-padded rows give zeros.
            Padded keys are zeroed first (a copy of x), so a NaN/inf there changes nothing.
        w_q: optional (d, d) query projection, no bias: the queries become
            ``F.linear(I ⊙ z, w_q)``.
        backend: ``"auto"``, ``"triton"`` or ``"torch"``.

    Returns:
        (B, K, d) in x's dtype.
    """
    return _attention(
        x, inducing, w_k, w_v, w_o, num_heads, z, u, gamma, key_padding_mask, w_q, None, backend
    )


def inducing_attention_block(
    x: Tensor,
    inducing: Tensor,
    w_k: Tensor,
    w_v: Tensor,
    w_o: Tensor,
    num_heads: int,
    norm_weight: Tensor,
    norm_bias: Tensor,
    z: Tensor | None = None,
    *,
    u: Tensor | None = None,
    gamma: float | Tensor | None = None,
    key_padding_mask: Tensor | None = None,
    w_q: Tensor | None = None,
    norm_eps: float = 1e-5,
    backend: Backend | str = "auto",
) -> Tensor:
    """``LayerNorm(I ⊙ z + O)`` (DESIGN.md §2, eq. 17): (B, N, d) -> (B, K, d).

    Arguments as in :func:`inducing_attention`, plus the LayerNorm's ``norm_weight`` and
    ``norm_bias`` (d,) and ``norm_eps`` (finite, >= 0).
    """
    norm = (norm_weight, norm_bias, norm_eps)
    return _attention(
        x, inducing, w_k, w_v, w_o, num_heads, z, u, gamma, key_padding_mask, w_q, norm, backend
    )


def _check_factored_args(
    x: Tensor,
    a: Tensor,
    c: Tensor,
    z: Tensor | None,
    u: Tensor | None,
    gamma: float | Tensor | None,
    key_padding_mask: Tensor | None,
) -> float | Tensor | None:
    """Check the arguments of :func:`inducing_attention_factored`; returns gamma (or None)."""
    x = _float_tensor("x", x)
    if x.dim() != 3:
        raise ValueError(f"x must have shape (B, N, d_in), got {tuple(x.shape)}")
    dim_in = x.shape[2]
    a = _float_tensor("a", a)
    if a.dim() != 3:
        raise ValueError(f"a must have shape (M, K, d_in), got {tuple(a.shape)}")
    if a.shape[2] != dim_in:
        raise ValueError(
            f"x (B, N, d_in) and a (M, K, d_in) must share d_in: x has shape {tuple(x.shape)}, "
            f"a {tuple(a.shape)}"
        )
    c = _float_tensor("c", c)
    if c.dim() != 3 or c.shape[:2] != (a.shape[0], dim_in):
        raise ValueError(
            f"c must have shape (M, d_in, d_out) with (M, d_in) = {(a.shape[0], dim_in)}, "
            f"got {tuple(c.shape)}"
        )
    return _check_gate_and_mask(x, a.shape[1], z, u, gamma, key_padding_mask, {"a": a, "c": c})


def inducing_attention_factored(
    x: Tensor,
    a: Tensor,
    c: Tensor,
    z: Tensor | None = None,
    *,
    u: Tensor | None = None,
    gamma: float | Tensor | None = None,
    key_padding_mask: Tensor | None = None,
    backend: Backend | str = "auto",
) -> Tensor:
    """Inducing-point attention from its batch-shared factors (DESIGN.md §4.2).

    ``O = Σ_j softmax_N(z ⊙ A_j xᵀ) x C_j``: :func:`inducing_attention` is the case
    ``A_j = I_j W_K_j / sqrt(d_h)``, ``C_j = W_V_jᵀ W_O_jᵀ``. Other attention layers whose
    queries are shared by the batch fold their biases and scale into A and C (see
    ``apem_kernels.set_transformer``).

    Args:
        x: (B, N, d_in) keys/values input; float16/bfloat16/float32/float64.
        a: (M, K, d_in) score factor of each head, x's dtype.
        c: (M, d_in, d_out) output factor of each head, x's dtype.
        z, u, gamma, key_padding_mask, backend: as in :func:`inducing_attention`.

    Returns:
        (B, K, d_out) in x's dtype.
    """
    gamma = _check_factored_args(x, a, c, z, u, gamma, key_padding_mask)
    x = _zero_padded(x, key_padding_mask)
    dim_in, dim_out = c.shape[1], c.shape[2]
    width = max(dim_in, dim_out)
    if _attention_backend(backend, x, width, a.shape[0]) is Backend.TORCH:
        if u is not None:
            z = reference.smooth_step(u, gamma)
        return reference.factored_inducing_attention(x, a, c, z, key_padding_mask)
    from apem_kernels.ops.inducing_attention import fused_factored_attention

    # The kernels take one width d for x and O: zero columns widen the narrower side.
    pad_in, pad_out = width - dim_in, width - dim_out
    x, a = F.pad(x, (0, pad_in)), F.pad(a, (0, pad_in))
    c = F.pad(c, (0, pad_out, 0, pad_in))
    out = fused_factored_attention(
        x,
        a,
        c,
        z=z,
        u=u,
        gamma=gamma,
        key_padding_mask=key_padding_mask,
    )
    return out[..., :dim_out]
