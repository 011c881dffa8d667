"""Losses shared by the models. Shapes: B samples, S funnel steps; labels are 0/1 floats."""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F


def check_labels(labels: Tensor, like: Tensor) -> None:
    """Raise unless ``labels`` is a float tensor shaped like the model output ``like`` (B, S)."""
    if not isinstance(labels, Tensor) or not labels.dtype.is_floating_point:
        got = labels.dtype if isinstance(labels, Tensor) else type(labels).__name__
        raise TypeError(f"labels must be a float tensor, got {got}")
    if labels.shape != like.shape:
        raise ValueError(f"labels must have shape {tuple(like.shape)}, got {tuple(labels.shape)}")


def step_bce(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean binary cross-entropy of each step: logits, labels (B, S) -> (S,)."""
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(dim=0)


def dependence_loss(probs: Tensor, labels: Tensor) -> Tensor:
    """The sequential-dependence loss (paper eq. 23, DESIGN.md §1), one weight for every pair.

    ``sum_{i>=2} mean_j((p_{i-1} - p_i) - (o_{i-1} - o_i))^2``: probs, labels (B, S) -> scalar.
    """
    gap = (probs[:, :-1] - probs[:, 1:]) - (labels[:, :-1] - labels[:, 1:])
    return gap.square().mean(dim=0).sum()


def calibrator_loss(probs: Tensor) -> Tensor:
    """AITM's behavioural expectation calibrator ``sum_{t>=2} mean_j max(p_t - p_{t-1}, 0)``.

    probs (B, S) -> scalar. Averaged over samples (AITM's code sums; a mean keeps the weight
    independent of the batch size).
    """
    return F.relu(probs[:, 1:] - probs[:, :-1]).mean(dim=0).sum()


def ips_loss(conditional_logits: Tensor, labels: Tensor, propensity: Tensor) -> Tensor:
    """ESCM2's inverse-propensity regulariser, summed over the conditional steps.

    For step i >= 2: ``mean_j o_{i-1,j} * BCE(c_{i,j}, o_{i,j}) / q_{i-1,j}`` over the whole
    batch (the entire space), ``q`` the (detached, clipped) propensity of reaching step i-1.

    Shapes: conditional_logits c (B, S-1) for steps 2..S, labels (B, S), propensity (B, S-1).
    """
    errors = F.binary_cross_entropy_with_logits(conditional_logits, labels[:, 1:], reduction="none")
    return (labels[:, :-1] * errors / propensity).mean(dim=0).sum()


def dr_loss(
    conditional_logits: Tensor, labels: Tensor, propensity: Tensor, imputed: Tensor
) -> tuple[Tensor, Tensor]:
    """ESCM2's doubly robust regulariser and its imputation loss, summed over conditional steps.

    With e the conditional BCE and ê the imputed error (both (B, S-1)), o = o_{i-1}, q the
    propensity: regulariser ``mean(ê + o (e - ê) / q)`` (ê detached: it is trained only by the
    imputation loss) and imputation loss ``mean(o (e - ê)^2 / q)`` (e detached).

    Shapes: conditional_logits, propensity, imputed (B, S-1); labels (B, S).
    Returns (regulariser, imputation loss), both scalars.
    """
    errors = F.binary_cross_entropy_with_logits(conditional_logits, labels[:, 1:], reduction="none")
    reached = labels[:, :-1] / propensity
    target = imputed.detach()
    regulariser = (target + reached * (errors - target)).mean(dim=0).sum()
    imputation = (reached * (errors.detach() - imputed).square()).mean(dim=0).sum()
    return regulariser, imputation
