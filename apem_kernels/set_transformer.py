"""Set Transformer's MAB, PMA and ISAB (Lee et al., 2019) with the attention on the fused kernels.

Parameters, names and math are those of the authors' code (github.com/juho-lee/set_transformer,
``modules.py``), so its state_dicts load as they are. With ``Q = fc_q(queries)``,
``K = fc_k(X)``, ``V = fc_v(X)`` (linear layers with biases), heads j the consecutive blocks
``c_j`` of ``d / M`` columns and d = ``dim_V`` the full width:

    H = LN0(concat_j [Q_j + softmax(Q_j K_jᵀ / sqrt(d)) V_j])
    MAB(queries, X) = LN1(H + relu(fc_o(H)))        (LN0, LN1 only with ``ln=True``)

When the queries are learned points shared by the batch (PMA's seeds, ISAB's inducing points) the
attention factorises (``apem_kernels.inducing_attention_factored``), per head

    A_j = Q_j fc_k.weight[c_j] / sqrt(d)            (K, d_in)
    C_j = fc_v.weight[c_j]ᵀ placed in columns c_j    (d_in, d)

``fc_k.bias`` adds one constant to each query's scores, which the softmax cancels (it gets no
gradient; its exact gradient is zero), and ``fc_v.bias`` adds the constant row b_v, since every row
of probabilities sums to 1: ``H = LN0(Q + b_v + Σ_j softmax(A_j Xᵀ) X C_j)``. The feed-forward and
the norms run in torch, as does ISAB's second block, whose queries are the set itself.

A key padding mask (not in the authors' code) drops padded keys; a set whose keys are all padded
attends to nothing: its attention term and b_v are zero, leaving ``H = LN0(Q)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from apem_kernels.backend import Backend, BackendChoice
from apem_kernels.functional import inducing_attention_factored


class MAB(nn.Module):
    """Multihead attention block: queries (B, Nq, dim_Q) attend over X (B, N, dim_K) -> (B, Nq,
    dim_V). ``forward`` runs in torch; ``attend_points`` takes batch-shared queries onto the fused
    kernels. Parameters: ``fc_q``, ``fc_k``, ``fc_v``, ``fc_o`` (``nn.Linear``), ``ln0``, ``ln1``
    (``nn.LayerNorm``, with ``ln``)."""

    def __init__(
        self,
        dim_q: int,
        dim_k: int,
        dim_v: int,
        num_heads: int,
        ln: bool = False,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        for name, value in (
            ("dim_q", dim_q),
            ("dim_k", dim_k),
            ("dim_v", dim_v),
            ("num_heads", num_heads),
        ):
            _check_positive(name, value)
        if dim_v % num_heads != 0:
            raise ValueError(f"dim_v = {dim_v} is not divisible by num_heads = {num_heads}")
        self.dim_v = dim_v
        self.num_heads = num_heads
        factory = {"device": device, "dtype": dtype}
        self.fc_q = nn.Linear(dim_q, dim_v, **factory)
        self.fc_k = nn.Linear(dim_k, dim_v, **factory)
        self.fc_v = nn.Linear(dim_k, dim_v, **factory)
        self.ln0 = nn.LayerNorm(dim_v, **factory) if ln else None
        self.ln1 = nn.LayerNorm(dim_v, **factory) if ln else None
        self.fc_o = nn.Linear(dim_v, dim_v, **factory)

    def forward(self, queries: Tensor, x: Tensor) -> Tensor:
        """queries (B, Nq, dim_Q), x (B, N, dim_K) -> (B, Nq, dim_V), all in torch."""
        q = self.fc_q(queries)
        k, v = self.fc_k(x), self.fc_v(x)
        batch, d_h = q.shape[0], self.dim_v // self.num_heads

        def heads(t: Tensor) -> Tensor:  # (B, n, d) -> (B, M, n, d_h)
            return t.unflatten(-1, (self.num_heads, d_h)).transpose(1, 2)

        attended = F.scaled_dot_product_attention(
            heads(q), heads(k), heads(v), scale=1 / math.sqrt(self.dim_v)
        )
        return self._feed_forward(q + attended.transpose(1, 2).reshape(batch, -1, self.dim_v))

    def attend_points(
        self,
        points: Tensor,
        x: Tensor,
        key_padding_mask: Tensor | None = None,
        backend: Backend | str = "auto",
    ) -> Tensor:
        """``MAB(points repeated over the batch, x)`` on the factorised kernels.

        Args:
            points: (K, dim_Q) queries shared by every set.
            x: (B, N, dim_K) the sets.
            key_padding_mask: (B, N) bool, True marks a padded element.
            backend: ``"auto"``, ``"triton"`` or ``"torch"``.

        Returns:
            (B, K, dim_V).
        """
        q = self.fc_q(points)  # (K, d)
        heads, d_h = self.num_heads, self.dim_v // self.num_heads
        w_k = self.fc_k.weight.unflatten(0, (heads, d_h))  # (M, d_h, d_in)
        a = torch.einsum("kmh,mhe->mke", q.unflatten(-1, (heads, d_h)), w_k)
        w_v = self.fc_v.weight.unflatten(0, (heads, d_h))
        place = torch.eye(heads, dtype=w_v.dtype, device=w_v.device)  # head m -> columns c_m
        c = torch.einsum("mhe,mn->menh", w_v, place).flatten(2)  # (M, d_in, d)
        attended = inducing_attention_factored(
            x, a / math.sqrt(self.dim_v), c, key_padding_mask=key_padding_mask, backend=backend
        )
        value_bias = self.fc_v.bias
        if key_padding_mask is not None:
            attends = ~key_padding_mask.all(dim=1)  # (B,)
            value_bias = value_bias * attends[:, None, None].to(value_bias.dtype)
        return self._feed_forward(q + value_bias + attended)

    def _feed_forward(self, h: Tensor) -> Tensor:
        """``LN1(H + relu(fc_o(H)))`` with ``H = LN0(h)``, the norms only with ``ln``."""
        if self.ln0 is not None:
            h = self.ln0(h)
        h = h + F.relu(self.fc_o(h))
        return h if self.ln1 is None else self.ln1(h)


class PMA(BackendChoice, nn.Module):
    """Pooling by multihead attention: k learned seeds ``S`` (1, k, dim) attend over a set,
    (B, N, dim) -> (B, k, dim). State_dict: ``S`` and ``mab.*`` as in the authors' code."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_seeds: int,
        ln: bool = False,
        *,
        backend: Backend | str = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        _check_positive("dim", dim)
        _check_positive("num_seeds", num_seeds)
        self.backend = backend
        self.S = nn.Parameter(torch.empty(1, num_seeds, dim, device=device, dtype=dtype))
        self.mab = MAB(dim, dim, dim, num_heads, ln, device=device, dtype=dtype)
        nn.init.xavier_uniform_(self.S)

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """x (B, N, dim); key_padding_mask (B, N) bool, True = padded. Returns (B, k, dim)."""
        return self.mab.attend_points(self.S[0], x, key_padding_mask, self.backend)

    @classmethod
    def from_state_dict(
        cls,
        state_dict: Mapping[str, Tensor],
        num_heads: int,
        prefix: str = "",
        *,
        backend: Backend | str = "auto",
    ) -> PMA:
        """A PMA holding ``state_dict[prefix + name]`` (e.g. ``prefix="dec.1."`` in the authors'
        SetTransformer); sizes and ``ln`` come from the tensors, on their device and dtype."""
        params = _with_prefix(state_dict, prefix)
        seeds = _required(params, "S", prefix)
        module = cls(
            seeds.shape[2],
            num_heads,
            seeds.shape[1],
            "mab.ln0.weight" in params,
            backend=backend,
            device=seeds.device,
            dtype=seeds.dtype,
        )
        module.load_state_dict(params)
        return module


class ISAB(BackendChoice, nn.Module):
    """Induced set attention block: (B, N, dim_in) -> (B, N, dim_out) through ``I`` (1, K,
    dim_out): ``H = mab0(I, X)`` on the fused kernels, then ``mab1(X, H)`` in torch."""

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        num_heads: int,
        num_inds: int,
        ln: bool = False,
        *,
        backend: Backend | str = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("dim_in", dim_in), ("dim_out", dim_out), ("num_inds", num_inds)):
            _check_positive(name, value)
        self.backend = backend
        factory = {"device": device, "dtype": dtype}
        self.I = nn.Parameter(torch.empty(1, num_inds, dim_out, **factory))
        self.mab0 = MAB(dim_out, dim_in, dim_out, num_heads, ln, **factory)
        self.mab1 = MAB(dim_in, dim_out, dim_out, num_heads, ln, **factory)
        nn.init.xavier_uniform_(self.I)

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None) -> Tensor:
        """x (B, N, dim_in); key_padding_mask (B, N) bool, True = padded (those rows of the
        output are computed but meaningless). Returns (B, N, dim_out)."""
        induced = self.mab0.attend_points(self.I[0], x, key_padding_mask, self.backend)
        return self.mab1(x, induced)

    @classmethod
    def from_state_dict(
        cls,
        state_dict: Mapping[str, Tensor],
        num_heads: int,
        prefix: str = "",
        *,
        backend: Backend | str = "auto",
    ) -> ISAB:
        """An ISAB holding ``state_dict[prefix + name]`` (e.g. ``prefix="enc.0."``); sizes and
        ``ln`` come from the tensors, on their device and dtype."""
        params = _with_prefix(state_dict, prefix)
        inducing = _required(params, "I", prefix)
        module = cls(
            _required(params, "mab0.fc_k.weight", prefix).shape[1],
            inducing.shape[2],
            num_heads,
            inducing.shape[1],
            "mab0.ln0.weight" in params,
            backend=backend,
            device=inducing.device,
            dtype=inducing.dtype,
        )
        module.load_state_dict(params)
        return module


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")


def _with_prefix(state_dict: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The entries under ``prefix``, with it stripped."""
    return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}


def _required(params: Mapping[str, Tensor], name: str, prefix: str) -> Tensor:
    if name not in params:
        raise KeyError(f"state_dict has no {prefix + name!r}; is the prefix {prefix!r} right?")
    return params[name]
