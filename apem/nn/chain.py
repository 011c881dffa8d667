"""Entire-space probabilities of a funnel from its conditional steps (ESMM's product rule)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

# log p is kept <= -eps so that log(1 - p) stays finite: p is capped at about 1 - 1.2e-7
# (entire-space logit about 15.9).
_LOG_PROB_CAP = -torch.finfo(torch.float32).eps


def chain_logits(conditional_logits: Tensor) -> Tensor:
    """Entire-space logits of ``p_i = prod_{j<=i} sigmoid(c_j)``, computed in log space.

    conditional_logits c (B, S): c_1 is step 1's logit, c_i (i >= 2) the logit of step i given
    step i-1. Returns (B, S) float32 ``log p_i - log(1 - p_i)``.
    """
    log_p = F.logsigmoid(conditional_logits.float()).cumsum(dim=1).clamp(max=_LOG_PROB_CAP)
    return log_p - torch.log(-torch.expm1(log_p))
