"""PLE baseline."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from apem.data.schema import Schema
from apem.models.base import FunnelModel
from apem.nn import ExpertGate, Experts, Towers
from apem.nn.checks import dropout_rate, layer_sizes, positive_int


class ExtractionLevel(nn.Module):
    """One CGC extraction level of PLE.

    Each task has its own experts; a shared group of experts serves all tasks. Task k's gate
    mixes its own and the shared experts; the shared gate (every level but the last) mixes all
    experts and feeds the next level's shared experts.

    Shapes: task inputs (B, S, in_dim), shared input (B, in_dim) -> task outputs (B, S, h) and
    the shared output (B, h), or None without a shared gate.
    """

    def __init__(
        self,
        in_dim: int,
        num_tasks: int,
        task_experts: int,
        shared_experts: int,
        hidden: Sequence[int],
        dropout: float,
        shared_gate: bool,
    ) -> None:
        super().__init__()
        self.task_experts = nn.ModuleList(
            Experts(in_dim, task_experts, hidden, dropout) for _ in range(num_tasks)
        )
        self.shared_experts = Experts(in_dim, shared_experts, hidden, dropout)
        self.task_gates = nn.ModuleList(
            ExpertGate(in_dim, task_experts + shared_experts) for _ in range(num_tasks)
        )
        everyone = num_tasks * task_experts + shared_experts
        self.shared_gate = ExpertGate(in_dim, everyone) if shared_gate else None
        self.out_dim = self.shared_experts.out_dim

    def forward(self, task_inputs: Tensor, shared_input: Tensor) -> tuple[Tensor, Tensor | None]:
        shared = self.shared_experts(shared_input)
        own = [experts(task_inputs[:, k]) for k, experts in enumerate(self.task_experts)]
        task_out = torch.stack(
            [
                gate(task_inputs[:, k], torch.cat([own[k], shared], dim=1))
                for k, gate in enumerate(self.task_gates)
            ],
            dim=1,
        )
        if self.shared_gate is None:
            return task_out, None
        return task_out, self.shared_gate(shared_input, torch.cat([*own, shared], dim=1))


class PLE(FunnelModel):
    """Progressive Layered Extraction (Tang et al., RecSys 2020).

    ``num_levels`` stacked CGC levels (shared gate on every level but the last), then one tower
    per step on its task output. Defaults: 2 levels, 2 task-specific and 2 shared experts per
    level, experts 256-128 MLPs like MMoE's, 64-unit towers.
    """

    name = "ple"

    def __init__(
        self,
        schema: Schema,
        *,
        embed_dim: int = 18,
        step_weights: Sequence[float] | None = None,
        num_levels: int = 2,
        task_experts: int = 2,
        shared_experts: int = 2,
        expert_hidden: Sequence[int] = (256, 128),
        tower_hidden: Sequence[int] = (64,),
        dropout: float = 0.0,
    ) -> None:
        super().__init__(
            schema,
            embed_dim=embed_dim,
            step_weights=step_weights,
            num_levels=positive_int("num_levels", num_levels),
            task_experts=positive_int("task_experts", task_experts),
            shared_experts=positive_int("shared_experts", shared_experts),
            expert_hidden=layer_sizes("expert_hidden", expert_hidden, nonempty=True),
            tower_hidden=layer_sizes("tower_hidden", tower_hidden),
            dropout=dropout_rate("dropout", dropout),
        )
        levels = []
        in_dim = self.flat_dim
        for level in range(num_levels):
            levels.append(
                ExtractionLevel(
                    in_dim,
                    self.num_steps,
                    task_experts,
                    shared_experts,
                    expert_hidden,
                    dropout,
                    shared_gate=level < num_levels - 1,
                )
            )
            in_dim = levels[-1].out_dim
        self.levels = nn.ModuleList(levels)
        self.towers = Towers(in_dim, self.num_steps, tower_hidden, dropout)

    def logits(self, ids: Tensor, dense: Tensor | None = None) -> Tensor:
        shared = self.embed(ids, dense).flatten(1)
        tasks = shared.unsqueeze(1).expand(-1, self.num_steps, -1)
        for level in self.levels:
            tasks, shared = level(tasks, shared)
        return self.towers(tasks)
