"""APEM: Adaptive Pattern Extraction Multi-task learning (Tao et al., 2023; DESIGN.md §2)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from apem.data.batching import Batch
from apem.data.schema import Schema
from apem.models.base import FunnelModel
from apem.nn import MLP, Towers, dependence_loss
from apem.nn.checks import dropout_rate, flag, layer_sizes, non_negative, one_of, positive_int
from apem_kernels import Backend, InducingAttention, gamma_schedule

BACKENDS = tuple(b.value for b in Backend)


class ASRGLayer(nn.Module):
    """One Adaptive Sample-wise Representation Generator layer.

    The dynamic selector ``u = MLP(flatten(X))`` (B, K) is turned into the mask
    ``z = f_D(u; gamma)`` inside the attention kernel; the layer returns
    ``LayerNorm(I ⊙ z + MultiHead(I ⊙ z, X, X))``. Without the selector z = 1.

    Shapes: x (B, N, d) -> (B, K, d).
    """

    def __init__(
        self,
        in_rows: int,
        dim: int,
        num_inducing: int,
        num_heads: int,
        selector_hidden: Sequence[int],
        dynamic_selector: bool,
        query_projection: bool,
        backend: str,
    ) -> None:
        super().__init__()
        self.selector = None
        if dynamic_selector:
            body = MLP(in_rows * dim, selector_hidden)
            self.selector = nn.Sequential(body, nn.Linear(body.out_dim, num_inducing))
        self.attention = InducingAttention(
            dim, num_inducing, num_heads, query_projection=query_projection, backend=backend
        )

    def forward(self, x: Tensor, gamma: float | Tensor) -> Tensor:
        if self.selector is None:
            return self.attention(x)
        # Under autocast the selector computes in low precision; the kernel takes x's dtype.
        u = self.selector(x.flatten(1)).to(x.dtype)
        return self.attention(x, u=u, gamma=gamma)


class APEM(FunnelModel):
    """APEM: stacked ASRG layers, Pattern Selectors, towers and the dependence loss.

    Layer l: ``Y^l = ASRG(Y^{l-1})`` (``Y^0`` = field embeddings H); the task indicators
    ``α^l`` (S, d) attend over ``Y^l`` through the same attention block without a mask (Set
    Transformer's PMA, so ``F^l = LayerNorm(α^l + Attention(α^l, Y^l, Y^l))``), and
    ``T^l = LayerNorm(T^{l-1} + F^l)`` with ``T^1 = F^1`` (the paper omits T^0). Tower i reads
    ``T_i^L``; ``p_i = sigmoid(tower_i(T_i^L))``. T never flows back into ASRG.

    Loss: ``sum_i w_i BCE(p_i, o_i) + dependence_weight * sum_{i>=2} mean(((p_{i-1} - p_i) -
    (o_{i-1} - o_i))^2)`` (paper eq. 21, 23). The dependence loss applies to funnels: its
    weight defaults to 1 for a sequential schema and 0 otherwise.

    γ of the smooth step follows ``gamma_schedule(step)``; ``step`` is a buffer (saved with the
    model) incremented by every ``training_loss`` call in train mode, and inference uses its
    stored value. γ is computed from the buffer on its device, so a training step neither
    waits for the host nor, under ``torch.compile``, recompiles as γ changes.

    Ablations: ``dynamic_selector=False`` (plain inducing points, z = 1),
    ``task_indicators=False`` (towers read the mean over the K rows of ``Y^L``),
    ``dependence_weight=0``. Paper defaults: d = 18, 2 heads, K = 64, L = 4. Not given by the
    paper (our choice): the selector is one linear layer (``selector_hidden=()``; the paper:
    "a standard MLP layer"), towers have one hidden layer of 64 units.
    """

    name = "apem"

    def __init__(
        self,
        schema: Schema,
        *,
        embed_dim: int = 18,
        step_weights: Sequence[float] | None = None,
        num_layers: int = 4,
        num_heads: int = 2,
        num_inducing: int = 64,
        selector_hidden: Sequence[int] = (),
        tower_hidden: Sequence[int] = (64,),
        dropout: float = 0.0,
        dynamic_selector: bool = True,
        task_indicators: bool = True,
        dependence_weight: float | None = None,
        query_projection: bool = False,
        backend: str = "auto",
    ) -> None:
        super().__init__(
            schema,
            embed_dim=embed_dim,
            step_weights=step_weights,
            num_layers=positive_int("num_layers", num_layers),
            num_heads=positive_int("num_heads", num_heads),
            num_inducing=positive_int("num_inducing", num_inducing),
            selector_hidden=layer_sizes("selector_hidden", selector_hidden),
            tower_hidden=layer_sizes("tower_hidden", tower_hidden),
            dropout=dropout_rate("dropout", dropout),
            dynamic_selector=flag("dynamic_selector", dynamic_selector),
            task_indicators=flag("task_indicators", task_indicators),
            dependence_weight=dependence_weight,
            query_projection=flag("query_projection", query_projection),
        )
        # The kernel backend is not a hyper-parameter: it changes no weight, so it stays out of
        # ``config`` and a checkpoint loads under any backend (rebuilt models use "auto").
        backend = one_of("backend", backend, BACKENDS)
        if embed_dim % num_heads:
            raise ValueError(
                f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})"
            )
        self.dependence_weight = self._dependence_weight(dependence_weight)
        self.config["dependence_weight"] = self.dependence_weight
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        rows = [self.embedding.num_rows] + [num_inducing] * (num_layers - 1)
        self.asrg = nn.ModuleList(
            ASRGLayer(
                n,
                embed_dim,
                num_inducing,
                num_heads,
                selector_hidden,
                dynamic_selector,
                query_projection,
                backend,
            )
            for n in rows
        )
        self.pattern_selectors = None
        self.task_norms = None
        if task_indicators:
            self.pattern_selectors = nn.ModuleList(
                InducingAttention(
                    embed_dim,
                    self.num_steps,
                    num_heads,
                    query_projection=query_projection,
                    backend=backend,
                )
                for _ in range(num_layers)
            )
            self.task_norms = nn.ModuleList(nn.LayerNorm(embed_dim) for _ in range(num_layers - 1))
        self.towers = Towers(embed_dim, self.num_steps, tower_hidden, dropout)

    def _dependence_weight(self, value: float | None) -> float:
        if value is None:
            return 1.0 if self.schema.sequential else 0.0
        if non_negative("dependence_weight", value) and not self.schema.sequential:
            raise ValueError(
                "dependence_weight must be 0 for a schema with independent tasks "
                f"(sequential=False), got {value!r}"
            )
        return float(value)

    @property
    def gamma(self) -> float:
        """Width of the selector's smooth step at the current ``step`` (reads the buffer)."""
        return gamma_schedule(int(self.step))

    def set_step(self, step: int) -> None:
        """Move the γ schedule to training step ``step`` (e.g. to inspect a later gate)."""
        self.step.fill_(step)

    def logits(self, ids: Tensor, dense: Tensor | None = None) -> Tensor:
        y = self.embed(ids, dense)
        gamma = gamma_schedule(self.step)
        tasks = None
        for layer, asrg in enumerate(self.asrg):
            y = asrg(y, gamma)
            if self.pattern_selectors is not None:
                found = self.pattern_selectors[layer](y)
                tasks = found if tasks is None else self.task_norms[layer - 1](tasks + found)
        return self.towers(y.mean(dim=1) if tasks is None else tasks)

    def training_loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        logits = self.logits(batch.ids, batch.dense).float()
        total, parts = self.task_loss(logits, batch.labels)
        if self.dependence_weight:
            parts["dependence"] = dependence_loss(torch.sigmoid(logits), batch.labels)
            total = total + self.dependence_weight * parts["dependence"]
        if self.training:
            self.step += 1
        return total, parts
