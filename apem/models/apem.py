"""APEM: Adaptive Pattern Extraction Multi-task learning (Tao et al., 2023; DESIGN.md §2).

Two named configurations (``variant``): ``"paper"``, the most literal reading of the paper,
and ``"default"``, the configuration that trains best here (docs/design.md §3 says where it
departs from the paper and what each departure measured). Every option below may be set on
its own; ``None`` takes the variant's value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from apem.data.batching import Batch
from apem.data.schema import FunnelData, Schema
from apem.models.base import FunnelModel
from apem.models.gamma import GAMMA_DECAY, GAMMA_FLOOR, GAMMA_START, gamma_schedule
from apem.nn import MLP, Towers, dependence_loss
from apem.nn.checks import dropout_rate, flag, layer_sizes, non_negative, one_of, positive_int
from apem.nn.embedding import EMBEDDING_INIT_STD
from apem_kernels import Backend, InducingAttention, smooth_step

INITS = ("xavier", "unit")
RESIDUALS = ("queries", "input")
TOWER_INPUTS = ("task", "task+final", "task+embeddings", "task+layers")
GAMMA_SCHEDULES = ("paper", "run")

# The options each variant fixes. "paper": Set Transformer's initialisation, eq. 17 read as
# Set Transformer's MAB (LayerNorm(I ⊙ z + O)), the Pattern Selector's output without its own
# residual (eq. 18), one Pattern Selector per task (Figure 3), towers on T_i^L, the paper's γ.
# "default": the departures docs/design.md measures, each one reverted in docs/results.md.
VARIANTS: dict[str, dict[str, object]] = {
    "paper": {
        "input_norm": False,
        "score_scale": False,
        "init": "xavier",
        "residual": "queries",
        "selector_residual": False,
        "task_adapters": True,
        "tower_input": "task",
        "tower_hidden": [64],
        "task_gain": 1.0,
        "gamma_schedule": "paper",
        "output_prior": False,
    },
    "default": {
        "input_norm": True,
        "score_scale": True,
        "init": "unit",
        "residual": "queries",
        "selector_residual": False,
        "task_adapters": True,
        "tower_input": "task+embeddings",
        "tower_hidden": [360, 200, 80],
        "task_gain": EMBEDDING_INIT_STD,
        "gamma_schedule": "paper",
        "output_prior": True,
    },
}


def _unit_init(attention: InducingAttention, mask: float) -> None:
    """Initial scores of unit variance for unit-variance inputs and queries scaled by ``mask``:
    queries N(0, 1), projections N(0, 1/d) (each key, value and output coordinate keeps the
    input's scale), and a temperature of 1/mask where the attention has one."""
    nn.init.normal_(attention.inducing)
    for weight in (attention.w_q, attention.w_k, attention.w_v, attention.w_o):
        if weight is not None:
            nn.init.normal_(weight, std=attention.dim**-0.5)
    if attention.log_scale is not None:
        nn.init.constant_(attention.log_scale, -math.log(mask))


@dataclass
class LayerTrace:
    """What one APEM layer computed for a batch (for diagnostics; see ``APEM.trace``).

    Attributes:
        inputs: (B, N, d) the rows the ASRG attends over (after ``input_norm``).
        u: (B, K) selector pre-activations, or None without the dynamic selector.
        z: (B, K) the mask f_D(u; γ), or None without the dynamic selector.
        weights: (B, M, K, N) ASRG attention weights.
        output: (B, K, d) Y^l.
        task_weights: (B, M, S, K) Pattern Selector weights, or None without task indicators.
        tasks: (B, S, d) T^l, or None without task indicators.
    """

    inputs: Tensor
    u: Tensor | None
    z: Tensor | None
    weights: Tensor
    output: Tensor
    task_weights: Tensor | None
    tasks: Tensor | None


class ASRGLayer(nn.Module):
    """One Adaptive Sample-wise Representation Generator layer.

    The dynamic selector ``u = MLP(flatten(X))`` (B, K) is turned into the mask
    ``z = f_D(u; γ)`` inside the attention kernel. ``residual="queries"`` returns
    ``LayerNorm(I ⊙ z + MultiHead(I ⊙ z, X, X))`` (the fused block); ``residual="input"``
    returns ``LayerNorm(X + O)`` where X has K rows (eq. 17 read literally) and ``LayerNorm(O)``
    where it has not. ``input_norm`` normalises X's rows before the selector and the attention.
    Without the selector z = 1.

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
        input_norm: bool,
        score_scale: bool,
        residual: str,
        backend: str,
    ) -> None:
        super().__init__()
        self.input_norm = nn.LayerNorm(dim) if input_norm else None
        self.selector = None
        if dynamic_selector:
            body = MLP(in_rows * dim, selector_hidden)
            self.selector = nn.Sequential(body, nn.Linear(body.out_dim, num_inducing))
        self.attention = InducingAttention(
            dim,
            num_inducing,
            num_heads,
            query_projection=query_projection,
            score_scale=score_scale,
            backend=backend,
        )
        self.input_residual = residual == "input" and in_rows == num_inducing
        self.residual = residual

    def prepare(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """The attention's input rows and the selector's pre-activations u (None without it)."""
        if self.input_norm is not None:
            x = self.input_norm(x)
        if self.selector is None:
            return x, None
        # Under autocast the selector computes in low precision; the kernel takes x's dtype.
        return x, self.selector(x.flatten(1)).to(x.dtype)

    def forward(self, x: Tensor, gamma: float | Tensor) -> Tensor:
        rows, u = self.prepare(x)
        mask = {} if u is None else {"u": u, "gamma": gamma}
        if self.residual == "queries":
            return self.attention(rows, **mask)
        out = self.attention.attend(rows, **mask)
        if self.input_residual:
            out = out + x
        return self.attention.norm(out)


class PatternSelector(nn.Module):
    """Task indicators α (S, d) attending over Y (eq. 18): (B, K, d) -> F (B, S, d).

    ``task_adapters``: one attention per task (Figure 3 draws one adapter per task), else one
    attention whose S inducing points are the indicators, sharing W_K, W_V, W_O. With
    ``residual`` the output is ``LayerNorm(α + Attention(α, Y, Y))``, else the attention alone.
    """

    def __init__(
        self,
        dim: int,
        num_tasks: int,
        num_heads: int,
        task_adapters: bool,
        residual: bool,
        query_projection: bool,
        score_scale: bool,
        backend: str,
    ) -> None:
        super().__init__()
        shape = (1, num_heads) if task_adapters else (num_tasks, num_heads)
        count = num_tasks if task_adapters else 1
        self.adapters = nn.ModuleList(
            InducingAttention(
                dim,
                shape[0],
                shape[1],
                query_projection=query_projection,
                score_scale=score_scale,
                block=residual,
                backend=backend,
            )
            for _ in range(count)
        )

    def forward(self, y: Tensor) -> Tensor:
        found = [adapter(y) for adapter in self.adapters]
        return found[0] if len(found) == 1 else torch.cat(found, dim=1)

    def attention_weights(self, y: Tensor) -> Tensor:
        """(B, K, d) -> (B, M, S, K)."""
        return torch.cat([a.attention_weights(y) for a in self.adapters], dim=2)


class APEM(FunnelModel):
    """APEM: stacked ASRG layers, Pattern Selectors, towers and the dependence loss.

    Layer l: ``Y^l = ASRG(Y^{l-1})`` (``Y^0`` = field embeddings H); the task indicators
    ``α^l`` attend over ``Y^l`` (``F^l``, see ``PatternSelector``) and
    ``T^l = LayerNorm(T^{l-1} + F^l)`` with ``T^1 = LayerNorm(F^1)`` (the paper omits T^0).
    T never flows back into ASRG. Tower i reads (``tower_input``) ``T_i^L`` (``"task"``),
    ``T_i^L ⊕ flatten(Y^L)`` (``"task+final"``), ``T_i^L ⊕ flatten(H)`` (``"task+embeddings"``)
    or ``T_i^1 ⊕ … ⊕ T_i^L`` (``"task+layers"``): the readings of Figure 3's "CONCAT".

    Loss: ``sum_i w_i BCE(p_i, o_i) + dependence_weight * sum_{i>=2} mean(((p_{i-1} - p_i) -
    (o_{i-1} - o_i))^2)`` (paper eq. 21, 23). The dependence loss applies to funnels: its
    weight defaults to 1 for a sequential schema and 0 otherwise.

    γ of the smooth step follows ``gamma_schedule(step)`` (``"paper"``: ``max(10 - 2e-4 step,
    1e-3)``) or, with ``"run"``, falls linearly from 10 to 1e-3 over the run's planned steps
    (``plan_steps``, called by ``prepare_fit``), so f_D becomes a hard gate within the run.
    ``step`` is a buffer (saved with the model) incremented by every ``training_loss`` call in
    train mode; inference uses its stored value. γ is computed from the buffers on their
    device, so a training step neither waits for the host nor, under ``torch.compile``,
    recompiles as γ changes.

    Options the variant fixes (None: the variant's value): ``input_norm`` (LayerNorm of each
    layer's input rows), ``score_scale`` (a learnable temperature per head), ``init``
    (``"xavier"``: Set Transformer's; ``"unit"``: unit-variance initial scores), ``residual``
    (see ``ASRGLayer``), ``selector_residual`` and ``task_adapters`` (see
    ``PatternSelector``), ``tower_input``, ``tower_hidden`` (the towers' hidden layers: one of
    64 units in ``"paper"``, which names none; ESMM's 360-200-80 in the default),
    ``task_gain`` (the initial gain of the LayerNorm whose T the towers read, every T^l's
    with ``"task+layers"``: 1 in ``"paper"``; in the default the embeddings' initial std, so
    that ``T_i^L`` and ``flatten(H)`` enter the towers at one scale), ``gamma_schedule``,
    ``output_prior`` (towers start at the training split's step rates, see ``prepare_fit``).

    Ablations: ``dynamic_selector=False`` (plain inducing points, z = 1),
    ``task_indicators=False`` (in place of T_i^L the towers read ``LayerNorm(mean_K Y^L)``, its
    gain starting at ``task_gain`` as T^L's does, so the stand-in enters the towers at T's scale),
    ``dependence_weight=0``. Paper defaults: d = 18, 2 heads, K = 64, L = 4. Not given by the
    paper (our choice): the selector is one linear layer (``selector_hidden=()``; the paper:
    "a standard MLP layer"), and the towers' sizes.
    """

    name = "apem"
    added_options = {"task_gain": 1.0}  # 2026-12-07; before it every T^l started at gain 1

    def __init__(
        self,
        schema: Schema,
        *,
        embed_dim: int = 18,
        step_weights: Sequence[float] | None = None,
        variant: str = "default",
        num_layers: int = 4,
        num_heads: int = 2,
        num_inducing: int = 64,
        selector_hidden: Sequence[int] = (),
        tower_hidden: Sequence[int] | None = None,
        task_gain: float | None = None,
        dropout: float = 0.0,
        dynamic_selector: bool = True,
        task_indicators: bool = True,
        dependence_weight: float | None = None,
        query_projection: bool = False,
        input_norm: bool | None = None,
        score_scale: bool | None = None,
        init: str | None = None,
        residual: str | None = None,
        selector_residual: bool | None = None,
        task_adapters: bool | None = None,
        tower_input: str | None = None,
        gamma_schedule: str | None = None,
        output_prior: bool | None = None,
        backend: Backend | str = "auto",
    ) -> None:
        fixed = VARIANTS[one_of("variant", variant, list(VARIANTS))]
        given = {
            "input_norm": input_norm,
            "score_scale": score_scale,
            "init": init,
            "residual": residual,
            "selector_residual": selector_residual,
            "task_adapters": task_adapters,
            "tower_input": tower_input,
            "tower_hidden": tower_hidden,
            "task_gain": task_gain,
            "gamma_schedule": gamma_schedule,
            "output_prior": output_prior,
        }
        o = {k: fixed[k] if v is None else v for k, v in given.items()}
        super().__init__(
            schema,
            embed_dim=embed_dim,
            step_weights=step_weights,
            variant=variant,
            num_layers=positive_int("num_layers", num_layers),
            num_heads=positive_int("num_heads", num_heads),
            num_inducing=positive_int("num_inducing", num_inducing),
            selector_hidden=layer_sizes("selector_hidden", selector_hidden),
            tower_hidden=layer_sizes("tower_hidden", o["tower_hidden"]),
            task_gain=non_negative("task_gain", o["task_gain"]),
            dropout=dropout_rate("dropout", dropout),
            dynamic_selector=flag("dynamic_selector", dynamic_selector),
            task_indicators=flag("task_indicators", task_indicators),
            dependence_weight=dependence_weight,
            query_projection=flag("query_projection", query_projection),
            input_norm=flag("input_norm", o["input_norm"]),
            score_scale=flag("score_scale", o["score_scale"]),
            init=one_of("init", o["init"], INITS),
            residual=one_of("residual", o["residual"], RESIDUALS),
            selector_residual=flag("selector_residual", o["selector_residual"]),
            task_adapters=flag("task_adapters", o["task_adapters"]),
            tower_input=one_of("tower_input", o["tower_input"], TOWER_INPUTS),
            gamma_schedule=one_of("gamma_schedule", o["gamma_schedule"], GAMMA_SCHEDULES),
            output_prior=flag("output_prior", o["output_prior"]),
        )
        # The kernel backend is not a hyper-parameter: it changes no weight, so it stays out of
        # ``config`` and a checkpoint loads under any backend (rebuilt models use "auto").
        backend = Backend.parse(backend)
        if embed_dim % num_heads:
            raise ValueError(
                f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})"
            )
        self.dependence_weight = self._dependence_weight(dependence_weight)
        self.config["dependence_weight"] = self.dependence_weight
        self.tower_input = o["tower_input"]
        self.gamma_mode = o["gamma_schedule"]
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        # The run's planned length for gamma_schedule="run" (0: not planned yet).
        self.register_buffer("planned_steps", torch.zeros((), dtype=torch.long))
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
                o["input_norm"],
                o["score_scale"],
                o["residual"],
                backend,
            )
            for n in rows
        )
        self.pattern_selectors = None
        self.task_norms = None
        self.pool_norm = None
        if task_indicators:
            self.pattern_selectors = nn.ModuleList(
                PatternSelector(
                    embed_dim,
                    self.num_steps,
                    num_heads,
                    o["task_adapters"],
                    o["selector_residual"],
                    query_projection,
                    o["score_scale"],
                    backend,
                )
                for _ in range(num_layers)
            )
            self.task_norms = nn.ModuleList(nn.LayerNorm(embed_dim) for _ in range(num_layers))
            read = self.task_norms if self.tower_input == "task+layers" else self.task_norms[-1:]
            for norm in read:
                nn.init.constant_(norm.weight, self.config["task_gain"])
        else:
            self.pool_norm = nn.LayerNorm(embed_dim)  # T^L's stand-in, at T^L's starting gain
            nn.init.constant_(self.pool_norm.weight, self.config["task_gain"])
        extra = {
            "task": 0,
            "task+final": num_inducing * embed_dim,
            "task+embeddings": self.flat_dim,
            "task+layers": (num_layers - 1) * embed_dim,
        }[self.tower_input]
        self.towers = Towers(
            embed_dim + extra, self.num_steps, self.config["tower_hidden"], dropout
        )
        if o["init"] == "unit":
            # z starts near f_D(0) = 1/2 where the selector gates the queries, else it is 1.
            for layer in self.asrg:
                _unit_init(layer.attention, 0.5 if layer.selector is not None else 1.0)
            for selector in self.pattern_selectors or ():
                for adapter in selector.adapters:
                    _unit_init(adapter, 1.0)

    def _dependence_weight(self, value: float | None) -> float:
        if value is None:
            return 1.0 if self.schema.sequential else 0.0
        if non_negative("dependence_weight", value) and not self.schema.sequential:
            raise ValueError(
                "dependence_weight must be 0 for a schema with independent tasks "
                f"(sequential=False), got {value!r}"
            )
        return float(value)

    def gamma_tensor(self) -> Tensor:
        """γ at the current ``step``, computed from the buffers on their device (float64, ()),
        so a training step neither waits for the host nor, compiled, recompiles as γ moves."""
        if self.gamma_mode == "paper":
            return gamma_schedule(self.step)
        planned = self.planned_steps.to(torch.float64)
        decay = torch.where(
            planned > 0, (GAMMA_START - GAMMA_FLOOR) / planned.clamp(min=1), GAMMA_DECAY
        )
        return gamma_schedule(self.step, decay=decay)

    @property
    def gamma(self) -> float:
        """Width of the selector's smooth step at the current ``step`` (reads the buffers)."""
        return float(self.gamma_tensor())

    def set_step(self, step: int) -> None:
        """Move the γ schedule to training step ``step`` (e.g. to inspect a later gate)."""
        self.step.fill_(step)

    def plan_steps(self, total: int) -> None:
        """The run takes ``total`` optimiser steps: with ``gamma_schedule="run"`` γ reaches its
        floor there."""
        self.planned_steps.fill_(max(int(total), 1))

    def prepare_fit(self, train: FunnelData, total_steps: int) -> None:
        """Plans the γ schedule and, with ``output_prior``, starts every tower at its step's
        training rate: output bias ``logit(mean(o_i))`` (clipped to [1e-6, 1 - 1e-6])."""
        self.plan_steps(total_steps)
        if not self.config["output_prior"] or len(train) == 0:
            return
        rates = np.clip(np.asarray(train.labels, dtype=np.float64).mean(axis=0), 1e-6, 1 - 1e-6)
        with torch.no_grad():
            for tower, rate in zip(self.towers, rates, strict=True):
                tower.head.bias.fill_(math.log(rate / (1 - rate)))

    def _tasks(self, layer: int, previous: Tensor | None, y: Tensor) -> Tensor:
        """T^l = LayerNorm(T^{l-1} + F^l) (T^0 omitted): -> (B, S, d)."""
        found = self.pattern_selectors[layer](y)
        return self.task_norms[layer](found if previous is None else previous + found)

    def tower_logits(self, h: Tensor, y: Tensor, tasks: Sequence[Tensor]) -> Tensor:
        """The towers on ``tower_input``'s reading of the embeddings h (B, F, d), the last
        layer's Y (B, K, d) and T^1..T^L (each (B, S, d); empty without task indicators):
        -> (B, S)."""
        if tasks:
            last = tasks[-1]
        else:
            last = self.pool_norm(y.mean(dim=1, keepdim=True)).expand(-1, self.num_steps, -1)
        extra = {
            "task": None,
            "task+final": y.flatten(1),
            "task+embeddings": h.flatten(1),
        }.get(self.tower_input)
        if self.tower_input == "task+layers":
            if not tasks:
                raise ValueError('tower_input="task+layers" needs task_indicators=True')
            return self.towers(torch.cat(tasks, dim=-1))
        if extra is None:
            return self.towers(last)
        return self.towers(torch.cat([last, extra.unsqueeze(1).expand(-1, last.shape[1], -1)], -1))

    def tower_inputs(
        self, ids: Tensor, dense: Tensor | None = None
    ) -> tuple[Tensor, Tensor, list[Tensor]]:
        """What ``tower_logits`` reads: the embeddings H (B, F, d), the last layer's Y (B, K, d)
        and T^1..T^L (each (B, S, d); empty without task indicators)."""
        h = self.embed(ids, dense)
        gamma = self.gamma_tensor()
        y = h
        tasks: list[Tensor] = []
        for layer, asrg in enumerate(self.asrg):
            y = asrg(y, gamma)
            if self.pattern_selectors is not None:
                tasks.append(self._tasks(layer, tasks[-1] if tasks else None, y))
        return h, y, tasks

    def logits(self, ids: Tensor, dense: Tensor | None = None) -> Tensor:
        return self.tower_logits(*self.tower_inputs(ids, dense))

    @torch.no_grad()
    def trace(self, ids: Tensor, dense: Tensor | None = None) -> list[LayerTrace]:
        """Every layer's inputs, mask, attention weights and outputs for a batch (eval mode
        is the caller's choice); the outputs equal those of ``logits``."""
        gamma = self.gamma_tensor()
        y = self.embed(ids, dense)
        traces, tasks = [], None
        for layer, asrg in enumerate(self.asrg):
            rows, u = asrg.prepare(y)
            z = None if u is None else smooth_step(u, gamma, backend="torch")
            weights = asrg.attention.attention_weights(rows, z)
            y = asrg(y, gamma)
            task_weights = None
            if self.pattern_selectors is not None:
                task_weights = self.pattern_selectors[layer].attention_weights(y)
                tasks = self._tasks(layer, tasks, y)
            traces.append(LayerTrace(rows, u, z, weights, y, task_weights, tasks))
        return traces

    def training_loss(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        logits = self.logits(batch.ids, batch.dense).float()
        total, parts = self.task_loss(logits, batch.labels)
        if self.dependence_weight:
            parts["dependence"] = dependence_loss(torch.sigmoid(logits), batch.labels)
            total = total + self.dependence_weight * parts["dependence"]
        if self.training:
            self.step += 1
        return total, parts
