"""The training step as a module: what DistributedDataParallel and torch.compile wrap."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from apem.data.batching import Batch
from apem.models import FunnelModel

StepFn = Callable[[Batch], tuple[Tensor, dict[str, Tensor]]]


class TrainingStep(nn.Module):
    """``forward(batch)`` is ``model.training_loss(batch)``: (scalar loss, named parts).

    DDP synchronises gradients only for a forward that runs through it, and torch.compile
    compiles a module's forward; the model itself is left unwrapped, so its state_dict (and a
    checkpoint) is the same with or without either.
    """

    def __init__(self, model: FunnelModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        return self.model.training_loss(batch)


def compile_backend(compile: bool | str) -> str | None:
    """The torch.compile backend a ``TrainConfig.compile`` value asks for (None: eager)."""
    if compile is False or compile is None:
        return None
    if compile is True:
        return "inductor"
    backends = torch._dynamo.list_backends(exclude_tags=())
    if compile not in backends:
        raise ValueError(f"compile must be True, False or a backend of {backends}, got {compile!r}")
    return compile


def training_step(
    model: FunnelModel,
    *,
    compile: bool | str = False,
    distributed: bool = False,
    device: torch.device | None = None,
) -> StepFn:
    """``step(batch) -> (loss, parts)`` for ``model``, eager or compiled, local or under DDP.

    Args:
        compile: False for eager, True for ``torch.compile`` with inductor, or a backend name
            (``"aot_eager"``, ...). The graph is compiled whole (``fullgraph=True``) with a
            dynamic batch dimension, so neither the last, shorter batch of an epoch nor a
            changing γ compiles it again.
        distributed: wrap in DistributedDataParallel (the process group must be initialised);
            ``device`` is this rank's CUDA device, or None/CPU for gloo.
    """
    step: nn.Module = TrainingStep(model)
    backend = compile_backend(compile)
    if backend is not None:
        step = torch.compile(step, fullgraph=True, backend=backend)
    if distributed:
        # DDP outside the compiled module: DDP's own forward does not trace as one graph. Some
        # model variants leave parameters out of the loss (e.g. APEM's unused options).
        on_cuda = device is not None and device.type == "cuda"
        step = DistributedDataParallel(
            step, device_ids=[device] if on_cuda else None, find_unused_parameters=True
        )
    if backend is None:
        return step

    def run(batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        for tensor in (batch.ids, batch.labels, batch.dense):
            if tensor is not None:
                torch._dynamo.maybe_mark_dynamic(tensor, 0)
        return step(batch)

    return run
