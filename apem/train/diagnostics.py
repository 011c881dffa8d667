"""Does APEM's attention do its job? Per-layer statistics of a trained (or fresh) model.

On a subsample of a split, for every layer: the normalised entropy of the ASRG attention
(1 = uniform, i.e. a mean-pool; 0 = each row picks one key), the mean largest weight beside the
uniform one, the spread of the selector's mask z across samples and its hard-selection rate,
and the share of the variance of Y^l and T^l that differs between samples (near 0 when every
sample gets the same representation). And for the towers (``tower_reliance``): each step's AUC
with one part of their input held at its mean over the subsample, which shows whether the
prediction uses what the attention path gives it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor

from apem.data.schema import FunnelData
from apem.train.metrics import roc_auc
from apem.train.report import format_table


@dataclass(frozen=True)
class LayerDiagnostics:
    """One layer's statistics (see the module docstring); None where the part is switched off.

    Attributes:
        layer: 1-based layer index.
        entropy: mean normalised entropy of the ASRG weights over samples, heads and rows.
        max_weight: mean over samples, heads and rows of the largest ASRG weight.
        uniform_weight: 1/N, the largest weight of a uniform row.
        z_std: std of z across samples, averaged over the K inducing points.
        hard_rate: share of z entries that are exactly 0 or 1.
        y_between: share of Y^l's variance between samples.
        task_entropy: normalised entropy of the Pattern Selector weights.
        t_between: share of T^l's variance between samples.
    """

    layer: int
    entropy: float
    max_weight: float
    uniform_weight: float
    z_std: float | None
    hard_rate: float | None
    y_between: float
    task_entropy: float | None
    t_between: float | None

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def normalised_entropy(weights: Tensor) -> float:
    """Mean of ``-sum p log p / log N`` over every row of ``weights`` (..., N) (rows sum to 1).

    1 for uniform rows, 0 for one-hot rows; a single key (N = 1) counts as uniform (1).
    """
    n = weights.shape[-1]
    if n == 1:
        return 1.0
    w = weights.double()
    plogp = torch.where(w > 0, w * w.clamp_min(1e-300).log(), torch.zeros_like(w))
    return float((-plogp.sum(-1) / math.log(n)).mean())


def between_sample_share(values: Tensor) -> float:
    """Share of the total variance of ``values`` (B, ...) that lies between samples.

    ``sum_e Var_b(v[b, e]) / Var_{b, e}(v)``: 0 when every sample holds the same values, 1 when
    each element has the same mean and only samples differ. 0 for a constant tensor.
    """
    v = values.double().flatten(1)
    total = ((v - v.mean()) ** 2).mean()
    if total == 0:
        return 0.0
    between = ((v - v.mean(0)) ** 2).mean()
    return float(between / total)


@dataclass(frozen=True)
class TowerReliance:
    """One step's AUC on the subsample, and with one part of the towers' input held at its
    mean over the subsample (so that part carries no per-sample information).

    Attributes:
        step: the funnel step's name.
        auc: entire-space AUC of the step.
        tasks_at_mean: the AUC with T_i^L (every T^l with ``tower_input="task+layers"``) at
            its mean; None without task indicators.
        shared_at_mean: the AUC with the towers' shared input (flatten(H) or flatten(Y^L)) at
            its mean; None where the towers read T alone.
    """

    step: str
    auc: float
    tasks_at_mean: float | None
    shared_at_mean: float | None

    def to_dict(self) -> dict[str, float | str | None]:
        return asdict(self)


def _subsample(data: FunnelData, rows: int, seed: int) -> np.ndarray:
    if len(data) == 0:
        raise ValueError("diagnostics need at least one sample; the split is empty")
    n = len(data)
    return np.sort(np.random.default_rng(seed).choice(n, size=min(rows, n), replace=False))


def _inputs(data: FunnelData, take: np.ndarray) -> tuple[Tensor, Tensor | None]:
    ids = torch.as_tensor(np.asarray(data.ids[take]), dtype=torch.long)
    dense = None if data.dense is None else torch.as_tensor(np.asarray(data.dense[take]))
    return ids, dense


def _batches(
    model: torch.nn.Module, data: FunnelData, rows: int, batch_size: int, seed: int
) -> tuple[np.ndarray, list[tuple[Tensor, Tensor | None]]]:
    """The subsample's rows and their (ids, dense) in batches on the model's device."""
    if not hasattr(model, "trace"):
        raise TypeError(f"{type(model).__name__} has no attention to diagnose (no trace method)")
    take = _subsample(data, rows, seed)
    ids, dense = _inputs(data, take)
    device = next(model.parameters()).device
    return take, [
        (
            ids[i : i + batch_size].to(device),
            None if dense is None else dense[i : i + batch_size].to(device),
        )
        for i in range(0, len(ids), batch_size)
    ]


@contextlib.contextmanager
def _evaluating(model: torch.nn.Module) -> Iterator[None]:
    """``model`` in eval mode inside the block, in its own mode after it."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@torch.no_grad()
def diagnose(
    model: torch.nn.Module,
    data: FunnelData,
    *,
    rows: int = 4096,
    batch_size: int = 1024,
    seed: int = 0,
) -> list[LayerDiagnostics]:
    """Per-layer statistics of an APEM-like model (one with ``trace``) on ``rows`` samples of
    ``data`` drawn with ``seed``, in eval mode, on the model's device."""
    _, batches = _batches(model, data, rows, batch_size, seed)
    with _evaluating(model):
        chunks = [model.trace(*batch) for batch in batches]
    layers = []
    for index in range(len(chunks[0])):
        parts = [chunk[index] for chunk in chunks]

        def cat(attr: str, parts=parts) -> Tensor | None:
            found = [getattr(p, attr) for p in parts]
            return None if found[0] is None else torch.cat([f.float().cpu() for f in found])

        weights, z, tasks = cat("weights"), cat("z"), cat("tasks")
        task_weights = cat("task_weights")
        layers.append(
            LayerDiagnostics(
                layer=index + 1,
                entropy=normalised_entropy(weights),
                max_weight=float(weights.amax(-1).mean()),
                uniform_weight=1.0 / weights.shape[-1],
                z_std=None if z is None else float(z.std(0).mean()),
                hard_rate=None if z is None else float(((z == 0) | (z == 1)).float().mean()),
                y_between=between_sample_share(cat("output")),
                task_entropy=None if task_weights is None else normalised_entropy(task_weights),
                t_between=None if tasks is None else between_sample_share(tasks),
            )
        )
    return layers


@torch.no_grad()
def tower_reliance(
    model: torch.nn.Module,
    data: FunnelData,
    *,
    rows: int = 4096,
    batch_size: int = 1024,
    seed: int = 0,
) -> list[TowerReliance]:
    """Per step, the AUC on ``rows`` samples of ``data`` (drawn with ``seed``, as ``diagnose``
    draws them) with the towers' input whole, with T at its subsample mean and with the shared
    part at its mean (see ``TowerReliance``); APEM in eval mode, on the model's device."""
    take, batches = _batches(model, data, rows, batch_size, seed)
    shared = {"task+embeddings": 0, "task+final": 1}.get(model.tower_input)

    def at_mean(t: Tensor) -> Tensor:
        return t.mean(0, keepdim=True).expand_as(t)

    with _evaluating(model):
        parts = [model.tower_inputs(*batch) for batch in batches]
        h = torch.cat([part[0] for part in parts])
        y = torch.cat([part[1] for part in parts])
        tasks = [torch.cat(layer) for layer in zip(*(part[2] for part in parts), strict=True)]
        held = range(len(tasks)) if model.tower_input == "task+layers" else range(len(tasks))[-1:]
        logits = {
            "auc": model.tower_logits(h, y, tasks),
            "tasks_at_mean": None
            if not tasks
            else model.tower_logits(
                h, y, [at_mean(t) if i in held else t for i, t in enumerate(tasks)]
            ),
            "shared_at_mean": None
            if shared is None
            else model.tower_logits(
                *[at_mean(p) if i == shared else p for i, p in enumerate((h, y))], tasks
            ),
        }
    labels = torch.as_tensor(np.asarray(data.labels[take]))
    return [
        TowerReliance(
            step=step,
            **{
                key: None if value is None else float(roc_auc(value[:, s].cpu(), labels[:, s]))
                for key, value in logits.items()
            },
        )
        for s, step in enumerate(model.schema.steps)
    ]


def tower_reliance_table(steps: list[TowerReliance]) -> str:
    """The towers' reliance on each part of their input as an aligned text table."""
    headers = ["step", "AUC", "T at mean", "shared at mean"]
    rows = [[r.step, _cell(r.auc), _cell(r.tasks_at_mean), _cell(r.shared_at_mean)] for r in steps]
    return format_table(headers, rows)


def _cell(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def diagnostics_table(layers: list[LayerDiagnostics]) -> str:
    """The per-layer statistics as an aligned text table."""
    headers = [
        "layer",
        "entropy",
        "max weight",
        "uniform",
        "z std",
        "z hard",
        "Y between",
        "PS entropy",
        "T between",
    ]
    rows = [
        [
            str(d.layer),
            _cell(d.entropy),
            _cell(d.max_weight),
            _cell(d.uniform_weight),
            _cell(d.z_std),
            _cell(d.hard_rate, 3),
            _cell(d.y_between),
            _cell(d.task_entropy),
            _cell(d.t_between),
        ]
        for d in layers
    ]
    return format_table(headers, rows)
