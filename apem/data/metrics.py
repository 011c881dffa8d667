"""Exact ROC AUC and the oracle AUC of synthetic funnels."""

from __future__ import annotations

import numpy as np

from apem.data.schema import FunnelData


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Exact ROC AUC of ``scores`` (n,) against binary ``labels`` (n,); tied scores count 1/2.

    Computed from average ranks (Mann-Whitney U), O(n log n). Raises ValueError when
    ``labels`` holds a single class (AUC undefined).
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positive = np.asarray(labels).ravel() > 0
    if scores.shape != positive.shape:
        raise ValueError(f"auc: {scores.shape[0]} scores but {positive.shape[0]} labels")
    num_pos = int(positive.sum())
    num_neg = positive.size - num_pos
    if num_pos == 0 or num_neg == 0:
        raise ValueError("auc: labels hold a single class, AUC is undefined")
    order = np.argsort(scores, kind="stable")
    ordered = scores[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], ordered.size]
    group_rank = (starts + 1 + ends) / 2.0  # average 1-based rank of each run of ties
    ranks = np.repeat(group_rank, ends - starts)
    pos_rank_sum = ranks[positive[order]].sum()
    return float((pos_rank_sum - num_pos * (num_pos + 1) / 2.0) / (num_pos * num_neg))


def oracle_auc(data: FunnelData) -> list[float]:
    """Per step i, the AUC of the true ``data.oracle[:, i]`` on ``data.labels[:, i]``."""
    if data.oracle is None:
        raise ValueError("oracle_auc: these data carry no true probabilities (oracle is None)")
    return [auc(data.oracle[:, i], data.labels[:, i]) for i in range(data.schema.num_steps)]
