"""``InducingAttention``: the masked inducing-point attention block as an ``nn.Module``."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from apem_kernels import reference
from apem_kernels.backend import Backend, BackendChoice
from apem_kernels.functional import inducing_attention, inducing_attention_block, smooth_step


class InducingAttention(BackendChoice, nn.Module):
    """``LayerNorm(I ⊙ z + O)`` over a set: (B, N, d) -> (B, K, d) (DESIGN.md §2 and §4.1).

    K learnable inducing points I (K, d), masked per sample by z (B, K), attend over the N rows
    of x with ``num_heads`` heads. Parameters:
    ``inducing`` (K, d); ``w_k``, ``w_v``, ``w_o`` (and ``w_q`` with ``query_projection``)
    (d, d) in ``F.linear`` convention; ``norm`` a LayerNorm over d. The state_dict is the same
    for every backend; ``backend`` ("auto", "triton", "torch") may be changed at any time.

    With ``score_scale`` each head j has a learnable temperature ``exp(log_scale[j])`` that
    multiplies its scores; it is folded into the key projection's rows, so every backend runs
    unchanged (in the kernels' factorised form it scales the batch-shared ``A_j``).

    With ``block=False`` the module has no LayerNorm and ``forward`` returns the attention
    output ``O`` alone (as ``attend``), so no parameter goes unused.
    """

    def __init__(
        self,
        dim: int,
        num_inducing: int,
        num_heads: int,
        *,
        query_projection: bool = False,
        score_scale: bool = False,
        block: bool = True,
        norm_eps: float = 1e-5,
        backend: Backend | str = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("dim", dim), ("num_inducing", num_inducing), ("num_heads", num_heads)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if dim % num_heads != 0:
            raise ValueError(f"dim = {dim} is not divisible by num_heads = {num_heads}")
        self.dim = dim
        self.num_inducing = num_inducing
        self.num_heads = num_heads
        self.backend = backend
        factory = {"device": device, "dtype": dtype}
        self.inducing = nn.Parameter(torch.empty(num_inducing, dim, **factory))
        w_q = nn.Parameter(torch.empty(dim, dim, **factory)) if query_projection else None
        self.register_parameter("w_q", w_q)
        self.w_k = nn.Parameter(torch.empty(dim, dim, **factory))
        self.w_v = nn.Parameter(torch.empty(dim, dim, **factory))
        self.w_o = nn.Parameter(torch.empty(dim, dim, **factory))
        self.norm = nn.LayerNorm(dim, eps=norm_eps, **factory) if block else None
        log_scale = nn.Parameter(torch.empty(num_heads, **factory)) if score_scale else None
        self.register_parameter("log_scale", log_scale)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Inducing points xavier-uniform (as Set Transformer); projections as ``nn.Linear``."""
        nn.init.xavier_uniform_(self.inducing)
        for weight in (self.w_q, self.w_k, self.w_v, self.w_o):
            if weight is not None:
                nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
        if self.log_scale is not None:
            nn.init.zeros_(self.log_scale)
        if self.norm is not None:
            self.norm.reset_parameters()

    def key_weight(self) -> Tensor:
        """W_K with each head's rows scaled by its temperature (``w_k`` without score_scale)."""
        if self.log_scale is None:
            return self.w_k
        rows = self.log_scale.exp().repeat_interleave(self.dim // self.num_heads)
        return self.w_k * rows.unsqueeze(1)

    def forward(
        self,
        x: Tensor,
        z: Tensor | None = None,
        *,
        u: Tensor | None = None,
        gamma: float | Tensor | None = None,
        key_padding_mask: Tensor | None = None,
    ) -> Tensor:
        """x (B, N, d); z (B, K) mask, or u (B, K) with gamma so z = smooth_step(u, gamma);
        key_padding_mask (B, N) bool, True = padded. Returns (B, K, d)."""
        if self.norm is None:
            return self.attend(x, z, u=u, gamma=gamma, key_padding_mask=key_padding_mask)
        return inducing_attention_block(
            x,
            self.inducing,
            self.key_weight(),
            self.w_v,
            self.w_o,
            self.num_heads,
            self.norm.weight,
            self.norm.bias,
            z,
            u=u,
            gamma=gamma,
            key_padding_mask=key_padding_mask,
            w_q=self.w_q,
            norm_eps=self.norm.eps,
            backend=self.backend,
        )

    def attend(
        self,
        x: Tensor,
        z: Tensor | None = None,
        *,
        u: Tensor | None = None,
        gamma: float | Tensor | None = None,
        key_padding_mask: Tensor | None = None,
    ) -> Tensor:
        """The attention output ``O`` alone, without residual and norm: (B, N, d) -> (B, K, d)."""
        return inducing_attention(
            x,
            self.inducing,
            self.key_weight(),
            self.w_v,
            self.w_o,
            self.num_heads,
            z,
            u=u,
            gamma=gamma,
            key_padding_mask=key_padding_mask,
            w_q=self.w_q,
            backend=self.backend,
        )

    @torch.no_grad()
    def attention_weights(
        self,
        x: Tensor,
        z: Tensor | None = None,
        *,
        u: Tensor | None = None,
        gamma: float | Tensor | None = None,
        key_padding_mask: Tensor | None = None,
    ) -> Tensor:
        """The softmax weights of every head, for inspection: (B, N, d) -> (B, M, K, N).

        Computed by the plain-PyTorch reference (the kernels never materialise them).
        """
        if u is not None:
            z = smooth_step(u, gamma, backend="torch")
        return reference.attention_weights(
            x, self.inducing, self.key_weight(), self.num_heads, z, key_padding_mask, self.w_q
        )

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, num_inducing={self.num_inducing}, num_heads={self.num_heads}, "
            f"query_projection={self.w_q is not None}, score_scale={self.log_scale is not None}, "
            f"backend={self.backend.value!r}"
        )
