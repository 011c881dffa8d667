"""Scoring a model on a split: metrics, probabilities, and the oracle's metrics."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from apem.data.batching import BatchLoader
from apem.data.schema import FunnelData
from apem.train.metrics import FunnelMetrics, funnel_metrics


def resolve_device(device: str) -> torch.device:
    """``"auto"`` becomes CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# On CPU a smaller batch keeps the attention's intermediates in cache: APEM's pass over
# 6,000 rows took 0.81-0.87 s at 1024 against 1.33-1.86 s at 8192 (one thread, 2-core CPU).
CUDA_EVAL_BATCH, CPU_EVAL_BATCH = 8192, 1024
EVAL_BATCH_DEFAULT = f"{CUDA_EVAL_BATCH} rows on CUDA, {CPU_EVAL_BATCH} on CPU"


def eval_batch_size(batch_size: int | None, device: torch.device) -> int:
    """``batch_size``, or the default for ``device`` (``EVAL_BATCH_DEFAULT``)."""
    if batch_size is not None:
        return batch_size
    return CUDA_EVAL_BATCH if device.type == "cuda" else CPU_EVAL_BATCH


def autocast(device: torch.device, amp: bool) -> torch.autocast:
    """bf16 autocast on CUDA when ``amp``; a no-op context elsewhere."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda")


@torch.no_grad()
def _predict_tensor(
    model: nn.Module, data: FunnelData, batch_size: int, device: torch.device, amp: bool
) -> tuple[Tensor, Tensor]:
    """Concatenated (n, S) float32 probabilities and labels of a split, on ``device``."""
    was_training = model.training
    model.eval()
    probs, labels = [], []
    try:
        for batch in BatchLoader(data, batch_size, device=device):
            with autocast(device, amp):
                probs.append(model(batch.ids, batch.dense).float())
            labels.append(batch.labels)
    finally:
        model.train(was_training)
    steps = data.schema.num_steps
    if not probs:
        return torch.empty(0, steps, device=device), torch.empty(0, steps, device=device)
    return torch.cat(probs), torch.cat(labels)


def _model_device(model: nn.Module) -> torch.device:
    return next(iter(model.state_dict().values())).device


def evaluate(
    model: nn.Module,
    data: FunnelData,
    *,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    amp: bool = True,
) -> FunnelMetrics:
    """Metrics of ``model`` on a split, computed on the model's device (or ``device``).

    ``batch_size`` None: :func:`eval_batch_size`'s default for the device.
    """
    device = _model_device(model) if device is None else torch.device(device)
    batch_size = eval_batch_size(batch_size, device)
    probs, labels = _predict_tensor(model.to(device), data, batch_size, device, amp)
    return funnel_metrics(probs, labels, data.schema.steps, sequential=data.schema.sequential)


def oracle_metrics(data: FunnelData) -> FunnelMetrics | None:
    """The metrics of the true probabilities (synthetic data), the ceiling of any model."""
    if data.oracle is None:
        return None
    return funnel_metrics(
        torch.as_tensor(np.asarray(data.oracle, dtype=np.float32)),
        torch.as_tensor(np.asarray(data.labels, dtype=np.float32)),
        data.schema.steps,
        sequential=data.schema.sequential,
    )


def predict(
    model: nn.Module,
    data: FunnelData,
    *,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    amp: bool = True,
) -> np.ndarray:
    """(n, num_steps) float32 entire-space probabilities of a split (``batch_size`` as in
    :func:`evaluate`)."""
    device = _model_device(model) if device is None else torch.device(device)
    batch_size = eval_batch_size(batch_size, device)
    probs, _ = _predict_tensor(model.to(device), data, batch_size, device, amp)
    return probs.cpu().numpy()
