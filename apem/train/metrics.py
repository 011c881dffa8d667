"""Funnel metrics computed on device over a whole split's predictions: exact AUC, log-loss,
conditional AUC and the rate of monotonicity violations."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

LOGLOSS_EPS = 1e-7


def roc_auc(scores: Tensor, labels: Tensor) -> Tensor:
    """Exact ROC AUC (Mann-Whitney U / (n_pos * n_neg)), tied scores counting one half.

    Args:
        scores: (n,) real scores, any float dtype, on any device.
        labels: (n,) binary labels (bool, integer or float 0/1), same device.

    Returns:
        A 0-d float64 tensor on the scores' device; NaN when only one class is present.

    One sort; ties are grouped with ``unique_consecutive`` and every count is an exact int64,
    so the only rounding is the final division.
    """
    scores = scores.reshape(-1)
    positive = labels.reshape(-1).to(torch.int64)
    sorted_scores, order = torch.sort(scores)
    sorted_positive = positive[order]
    _, counts = torch.unique_consecutive(sorted_scores, return_counts=True)
    positives_through = sorted_positive.cumsum(0)[counts.cumsum(0) - 1]
    pos_in = torch.diff(positives_through, prepend=positives_through.new_zeros(1))
    neg_in = counts - pos_in
    neg_below = neg_in.cumsum(0) - neg_in
    twice_u = (pos_in * (2 * neg_below + neg_in)).sum()
    n_pos = positive.sum()
    n_neg = positive.numel() - n_pos
    return twice_u.double() / (2 * n_pos * n_neg).double()


def log_loss(probs: Tensor, labels: Tensor) -> Tensor:
    """Mean binary cross-entropy per column.

    Args:
        probs: (n, S) probabilities, clamped to ``[eps, 1 - eps]``.
        labels: (n, S) binary labels.

    Returns:
        (S,) float64 tensor.
    """
    p = probs.double().clamp(LOGLOSS_EPS, 1 - LOGLOSS_EPS)
    y = labels.double()
    return -(y * p.log() + (1 - y) * (1 - p).log()).mean(0)


@dataclass
class FunnelMetrics:
    """Metrics of one model on one split, keyed by step name.

    Attributes:
        steps: step names in funnel order.
        auc: step -> entire-space AUC (all samples).
        conditional_auc: step i (i >= 2) -> AUC of the implied conditional probability
            ``p_i / p_{i-1}`` on the samples that reached step i-1 (``o_{i-1} = 1``).
            Empty for independent tasks.
        logloss: step -> mean binary cross-entropy of ``p_i`` on all samples.
        violation_rate: fraction of (sample, i >= 2) pairs with ``p_i > p_{i-1}``; None for
            independent tasks.
    """

    steps: tuple[str, ...]
    auc: dict[str, float]
    conditional_auc: dict[str, float]
    logloss: dict[str, float]
    violation_rate: float | None

    @property
    def mean_auc(self) -> float:
        """Mean of the defined per-step AUCs (NaN when none is defined)."""
        values = [v for v in self.auc.values() if not math.isnan(v)]
        return sum(values) / len(values) if values else math.nan

    def to_dict(self) -> dict:
        """JSON-ready form; undefined values (NaN) become None."""

        def clean(values: dict[str, float]) -> dict[str, float | None]:
            return {k: None if math.isnan(v) else v for k, v in values.items()}

        mean_auc = self.mean_auc
        return {
            "auc": clean(self.auc),
            "mean_auc": None if math.isnan(mean_auc) else mean_auc,
            "conditional_auc": clean(self.conditional_auc),
            "logloss": clean(self.logloss),
            "violation_rate": self.violation_rate,
        }


def funnel_metrics(
    probs: Tensor, labels: Tensor, steps: tuple[str, ...], *, sequential: bool = True
) -> FunnelMetrics:
    """All metrics of a split from its concatenated predictions, computed on their device.

    Args:
        probs: (n, S) entire-space probabilities ``p_i``.
        labels: (n, S) binary labels ``o_i``.
        steps: the S step names.
        sequential: False for independent tasks (no conditional AUC, no violation rate).
    """
    if probs.shape != labels.shape or probs.shape[1] != len(steps):
        raise ValueError(
            f"funnel_metrics: probs {tuple(probs.shape)}, labels {tuple(labels.shape)} and "
            f"{len(steps)} steps do not agree"
        )
    aucs = torch.stack([roc_auc(probs[:, i], labels[:, i]) for i in range(len(steps))])
    conditional: dict[str, float] = {}
    violation_rate = None
    if sequential:
        reached = labels[:, :-1] > 0
        implied = probs[:, 1:].double() / probs[:, :-1].double().clamp_min(1e-30)
        conditional_aucs = torch.stack(
            [
                roc_auc(implied[:, i][reached[:, i]], labels[:, i + 1][reached[:, i]])
                for i in range(len(steps) - 1)
            ]
        )
        violations = (probs[:, 1:] > probs[:, :-1]).double().mean()
        conditional = dict(zip(steps[1:], conditional_aucs.tolist(), strict=True))
        violation_rate = float(violations)
    return FunnelMetrics(
        steps=tuple(steps),
        auc=dict(zip(steps, aucs.tolist(), strict=True)),
        conditional_auc=conditional,
        logloss=dict(zip(steps, log_loss(probs, labels).tolist(), strict=True)),
        violation_rate=violation_rate,
    )
