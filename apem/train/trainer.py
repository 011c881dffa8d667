"""The training loop: Adam/AdamW with an LR schedule, early stopping on validation AUC,
checkpoints, exact resume, torch.compile and DDP."""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from apem.data.batching import BatchLoader
from apem.data.checks import check_trainable
from apem.data.schema import FunnelData, FunnelSplits
from apem.train.checkpoint import (
    BEST,
    FORMAT,
    LAST,
    CheckpointError,
    capture_rng,
    check_data,
    check_model_state,
    data_section,
    load_checkpoint,
    load_model_state,
    remove_stale_temporaries,
    restore_rng,
    save_checkpoint,
    schema_to_dict,
)
from apem.train.distributed import mean_over_ranks, world
from apem.train.evaluation import autocast, evaluate, resolve_device
from apem.train.loggers import RunLogger
from apem.train.metrics import FunnelMetrics
from apem.train.optim import build_optimizer, check_schedule, lr_factor
from apem.train.progress import EpochProgress, reporting_to_stderr
from apem.train.step import training_step

log = logging.getLogger("apem.train")

# Settings that shape the training trajectory: a resumed run must keep them.
TRAJECTORY_FIELDS = {
    "lr": 1e-3,
    "batch_size": 1024,
    "seed": 0,
    "amp": True,
    # Fields added later; a checkpoint without one was trained with the default shown.
    "optimizer": "adam",
    "weight_decay": 0.0,
    "lr_schedule": "constant",
    "warmup_steps": 0,
    "grad_clip": None,
}
CHANCE_AUC = 0.5


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the message names the step and the batch."""


@dataclass
class TrainConfig:
    """How to train.

    Attributes:
        lr: the optimiser's (peak) learning rate.
        batch_size: training mini-batch size (the global batch under DDP: each of N ranks
            takes a 1/N part of every batch).
        epochs: maximum number of passes over the training split.
        patience: stop after this many validations in a row without a better mean step AUC
            on the validation split (0 disables early stopping).
        seed: seeds torch, numpy and Python at the start, and the batch order.
        device: "cpu", "cuda", "cuda:1", ... or "auto" (CUDA when available).
        amp: bf16 autocast (CUDA only; ignored on CPU).
        max_steps: stop after this many optimiser steps in total (None: no limit).
        eval_batch_size: batch size of validation, test and prediction passes (None: 8192
            rows on CUDA, 1024 on CPU).
        checkpoint_dir: where ``last.pt`` and ``best.pt`` go (None: no checkpoints).
        log_interval: steps between loss checks and progress updates (a bar on a terminal,
            a plain line otherwise).
        num_threads: torch CPU threads (None: leave torch's choice).
        progress: show progress within epochs: a tqdm bar when stderr is a terminal, a line
            every ``log_interval`` steps otherwise.
        resident: keep the training split on the device (None: on CUDA only).
        compile: ``torch.compile`` the training step (forward, loss and backward) as one
            graph: True for inductor, or a backend name ("aot_eager", ...); False: eager.
            Checkpoints are the same either way.
        optimizer: "adam" (weight decay as an L2 term in the gradient) or "adamw" (decoupled).
        weight_decay: the optimiser's weight decay.
        lr_schedule: "constant" or "cosine" (half cosine from ``lr`` to 0 over the run:
            ``max_steps``, or else ``epochs`` epochs), after the warm-up.
        warmup_steps: linear warm-up of the learning rate over the first steps.
        grad_clip: clip the gradients' global L2 norm to this value (None: no clipping).
    """

    lr: float = 1e-3
    batch_size: int = 1024
    epochs: int = 10
    patience: int = 2
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    max_steps: int | None = None
    eval_batch_size: int | None = None
    checkpoint_dir: str | None = None
    log_interval: int = 50
    num_threads: int | None = None
    progress: bool = True
    resident: bool | None = None
    compile: bool | str = False
    optimizer: str = "adam"
    weight_decay: float = 0.0
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    grad_clip: float | None = None


@dataclass
class FitResult:
    """Outcome of :func:`fit`.

    Attributes:
        best_epoch: the validation point (epochs completed, fractional after a ``max_steps``
            stop) whose weights were kept.
        valid: validation metrics at the best point.
        test: test metrics at the best point.
        history: one dict per validation (epoch, step, lr, train_loss, valid AUCs, seconds,
            samples_per_s).
        samples_per_s: training throughput over the whole run (optimiser steps only).
        steps: optimiser steps taken in total.
        stopped_early: True when patience ran out.
    """

    best_epoch: float
    valid: FunnelMetrics
    test: FunnelMetrics
    history: list[dict[str, Any]]
    samples_per_s: float
    steps: int
    stopped_early: bool


@dataclass
class _Progress:
    """Counters a checkpoint carries so that a resumed run continues exactly."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    best_score: float = -math.inf
    best_epoch: float = -1.0
    best_step: int = -1
    bad_validations: int = 0
    stopped_early: bool = False
    train_seconds: float = 0.0
    train_samples: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _checkpoint(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    splits: FunnelSplits,
    progress: _Progress,
    metadata: dict[str, Any],
    data: dict[str, Any],
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "model": {"name": model.name, "config": model.config, "state": model.state_dict()},
        "schema": schema_to_dict(splits.schema),
        "optimizer": optimizer.state_dict(),
        "train_config": dataclasses.asdict(config),
        "progress": dataclasses.asdict(progress),
        "device_type": next(model.parameters()).device.type,
        "rng": capture_rng(),
        "metadata": metadata,
        "data": data,
    }


def _resume(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    splits: FunnelSplits,
) -> tuple[_Progress, dict[str, Tensor] | None]:
    """Restore model, optimiser, RNG and counters; return them and the best weights so far.

    ``best.pt`` is written after ``last.pt``; a kill between the two leaves a ``last.pt`` that
    is itself the best, and ``best.pt`` is rewritten from it here.
    """
    checkpoint = load_checkpoint(path)
    check_data(checkpoint, splits, path)
    load_model_state(model, checkpoint, splits.schema, path)
    saved = checkpoint["train_config"]
    saved = {k: saved.get(k, default) for k, default in TRAJECTORY_FIELDS.items()}
    changed = [k for k in TRAJECTORY_FIELDS if saved[k] != getattr(config, k)]
    if changed:
        details = ", ".join(f"{k}={saved[k]!r} (now {getattr(config, k)!r})" for k in changed)
        raise CheckpointError(f"checkpoint {path} was trained with {details}; resume with those")
    here = next(model.parameters()).device.type
    if checkpoint.get("device_type", here) != here:
        warnings.warn(
            f"{path} was trained on {checkpoint['device_type']} and resumes on {here}: the run "
            "continues, but not bit for bit as an uninterrupted one would",
            stacklevel=3,
        )
    optimizer.load_state_dict(checkpoint["optimizer"])
    restore_rng(checkpoint["rng"])
    progress = _Progress(**checkpoint["progress"])
    best_path = path.with_name(BEST)
    if progress.best_step < 0:
        if best_path.exists():
            raise CheckpointError(
                f"{best_path} exists but {path} has no best validation yet: it belongs to "
                "another run"
            )
        return progress, None
    best = load_checkpoint(best_path) if best_path.exists() else None
    found = None if best is None else best["progress"]["step"]
    if progress.best_step == progress.step and (found is None or found < progress.step):
        best = checkpoint  # killed between the writes of last.pt and best.pt: repair best.pt
        save_checkpoint(best_path, checkpoint)
    elif found != progress.best_step:
        raise CheckpointError(
            f"{best_path} {'is missing' if found is None else f'is from step {found}'}, but "
            f"{path} (step {progress.step}) records its best validation at step "
            f"{progress.best_step}: it belongs to another run"
        )
    check_model_state(model, best, splits.schema, best_path)
    return progress, best["model"]["state"]


def _step_of(path: Path) -> int:
    return load_checkpoint(path)["progress"]["step"]


def _check_losses(
    losses: list[Tensor], first_step: int, first_batch: int, epoch: int, kept: str
) -> float:
    """Sum of the pending losses; raise if one is not finite (one device sync per call).

    ``first_step`` and ``first_batch`` (within the epoch) are 1-based; ``kept`` says which
    checkpoint survives the stop.
    """
    values = torch.stack(losses)
    finite = torch.isfinite(values)
    if not bool(finite.all()):
        k = int((~finite).nonzero()[0])
        raise NonFiniteLossError(
            f"training loss is {values[k].item()} at step {first_step + k} "
            f"(epoch {epoch}, batch {first_batch + k}); stopped, {kept}"
        )
    return float(values.sum())


class _Run:
    """One training run's moving parts: the loop over epochs, validation and checkpoints."""

    def __init__(
        self,
        model: nn.Module,
        splits: FunnelSplits,
        config: TrainConfig,
        resume_from: str | Path | None,
        metadata: dict[str, Any],
        label: str,
        loggers: Sequence[RunLogger],
    ) -> None:
        self.model, self.splits, self.config, self.metadata = model, splits, config, metadata
        self.label, self.loggers = label, loggers
        self.rank, self.world = world()
        self.device = resolve_device(config.device)
        # Only rank 0 writes checkpoints and reports.
        self.directory = Path(config.checkpoint_dir) if config.checkpoint_dir else None
        self.main = self.rank == 0
        model.to(self.device)
        if hasattr(model, "prepare_fit"):
            # Data-dependent initialisation and run-length schedules (FunnelModel.prepare_fit);
            # every rank computes the same values; a resumed run then restores its checkpoint.
            planned = config.epochs * math.ceil(len(splits.train) / config.batch_size)
            model.prepare_fit(splits.train, min(planned, config.max_steps or planned))
        self.optimizer = build_optimizer(model, config.optimizer, config.lr, config.weight_decay)
        check_schedule(config.lr_schedule, config.warmup_steps, config.grad_clip)
        self.step = training_step(
            model, compile=config.compile, distributed=self.world > 1, device=self.device
        )
        self.best_state: dict[str, Tensor] | None = None
        # The validation metrics of best_state, when this process measured them.
        self.best_valid: FunnelMetrics | None = None
        self.data = data_section(splits)
        if self.directory is not None and self.main:
            remove_stale_temporaries(self.directory)
        if resume_from is not None:
            self.progress, self.best_state = _resume(
                Path(resume_from), model, self.optimizer, config, splits
            )
        else:
            seed_everything(config.seed)
            self.progress = _Progress()
        on_cuda = self.device.type == "cuda"
        self.loader = BatchLoader(
            splits.train,
            config.batch_size,
            shuffle=True,
            seed=config.seed,
            device=self.device,
            pin_memory=on_cuda,
            resident=on_cuda if config.resident is None else config.resident,
            shard=(self.rank, self.world),
        )
        total = config.epochs * len(self.loader)
        self.total_steps = total if config.max_steps is None else min(total, config.max_steps)

    def finished(self) -> bool:
        p, c = self.progress, self.config
        out_of_steps = c.max_steps is not None and p.step >= c.max_steps
        return p.epoch >= c.epochs or p.stopped_early or out_of_steps

    def train_epoch(self) -> tuple[float, int]:
        """Train from the current position to the end of the epoch (or ``max_steps``).

        Returns the sum of the batch losses and their number. Losses are checked for NaN/inf
        every ``log_interval`` steps, one device sync each.
        """
        p, config = self.progress, self.config
        self.loader.set_epoch(p.epoch)
        pending: list[Tensor] = []
        pending_from = (p.step + 1, p.batch + 1)
        loss_sum, batches = 0.0, 0
        started, samples = time.perf_counter(), 0
        bar = EpochProgress(
            self.label, p.epoch + 1, len(self.loader), p.batch, config.progress and self.main
        )
        self.model.train()
        # A resumed run starts at the batch after its checkpoint's.
        for index, batch in enumerate(self.loader.batches(p.batch), start=p.batch):
            rows = min(config.batch_size, len(self.splits.train) - index * config.batch_size)
            for group in self.optimizer.param_groups:
                group["lr"] = config.lr * lr_factor(
                    p.step, config.lr_schedule, config.warmup_steps, self.total_steps
                )
            with autocast(self.device, config.amp):
                loss, _ = self.step(batch)
            if self.world > 1:
                # DDP averages the ranks' gradients; weighting each rank's mean by its share of
                # the rows makes that the gradient of the whole batch's mean.
                loss = loss * (len(batch) * self.world / rows)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
            self.optimizer.step()
            pending.append(loss.detach().float())
            p.step, p.batch, p.train_samples = p.step + 1, index + 1, p.train_samples + rows
            samples += rows
            bar.advance()
            stop = config.max_steps is not None and p.step >= config.max_steps
            if stop or len(pending) >= config.log_interval or p.batch == len(self.loader):
                losses = list(mean_over_ranks(torch.stack(pending)).unbind())
                loss_sum += _check_losses(losses, *pending_from, p.epoch + 1, self.kept())
                batches += len(pending)
                rate = samples / max(time.perf_counter() - started, 1e-9)
                bar.update(p.step, p.batch, loss_sum / batches, rate)
                pending, pending_from = [], (p.step + 1, p.batch + 1)
            if stop:
                break
        bar.close()
        return loss_sum, batches

    def kept(self) -> str:
        """Which checkpoint a stop now leaves, in words."""
        last = None if self.directory is None else self.directory / LAST
        if last is None or not last.exists():
            return "no checkpoint was written"
        return f"the last good checkpoint is kept ({last}, step {_step_of(last)})"

    def check_weights(self) -> None:
        """NonFiniteLossError if a weight became NaN/inf (one device sync)."""
        state = {k: t for k, t in self.model.state_dict().items() if t.is_floating_point()}
        finite = torch.stack([torch.isfinite(t).all() for t in state.values()])
        if not bool(finite.all()):
            bad = list(state)[int((~finite).nonzero()[0])]
            raise NonFiniteLossError(
                f"weights became non-finite ({bad}) by step {self.progress.step}; stopped, "
                f"{self.kept()}"
            )

    def evaluate(self, data: FunnelData) -> FunnelMetrics:
        config = self.config
        return evaluate(self.model, data, batch_size=config.eval_batch_size, amp=config.amp)

    def validate(self, train_loss: float, seconds: float) -> None:
        """Score the validation split, keep the best weights, write the checkpoints.

        ``last.pt`` is written before ``best.pt``, so after a kill between the two ``last.pt``
        is the best and ``--resume`` rewrites ``best.pt`` from it.
        """
        p = self.progress
        self.check_weights()
        metrics = self.evaluate(self.splits.valid)
        point = p.epoch + p.batch / len(self.loader)
        p.history.append(
            {
                "epoch": point,
                "step": p.step,
                "lr": self.optimizer.param_groups[0]["lr"],
                "train_loss": train_loss,
                "valid_auc": metrics.auc,
                "valid_mean_auc": metrics.mean_auc,
                "seconds": seconds,
                "samples_per_s": p.train_samples / max(p.train_seconds, 1e-9),
            }
        )
        if self.main:
            self.report(p.history[-1])
        improved = metrics.mean_auc > p.best_score  # False for NaN
        if improved:
            p.best_score, p.best_epoch, p.bad_validations = metrics.mean_auc, point, 0
            p.best_step = p.step
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.best_valid = metrics
        else:
            p.bad_validations += 1
            p.stopped_early = 0 < self.config.patience <= p.bad_validations
        if self.directory is not None and self.main:
            checkpoint = _checkpoint(
                self.model, self.optimizer, self.config, self.splits, p, self.metadata, self.data
            )
            save_checkpoint(self.directory / LAST, checkpoint)
            if improved:
                save_checkpoint(self.directory / BEST, checkpoint)

    def report(self, entry: dict[str, Any]) -> None:
        """The validation line, and the entry to every logger."""
        aucs = "  ".join(f"{k} {v:.4f}" for k, v in entry["valid_auc"].items())
        log.info(
            "%sepoch %.2f  step %d  loss %.4f  valid AUC %s  (%.1f s)",
            f"{self.label}: " if self.label else "", entry["epoch"], entry["step"],
            entry["train_loss"], aucs, entry["seconds"],
        )  # fmt: skip
        for logger in self.loggers:
            logger.log(entry)

    def run(self) -> FitResult:
        p = self.progress
        while not self.finished():
            started = time.perf_counter()
            loss_sum, batches = self.train_epoch()
            seconds = time.perf_counter() - started
            p.train_seconds += seconds
            if p.batch == len(self.loader):
                p.epoch, p.batch = p.epoch + 1, 0
            self.validate(loss_sum / max(batches, 1), seconds)
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        valid = self.best_valid if self.best_valid is not None else self.evaluate(self.splits.valid)
        if not valid.mean_auc > CHANCE_AUC:
            warnings.warn(
                f"the model is no better than chance: mean validation AUC {valid.mean_auc:.4f} "
                f"after {p.step} steps (too high a learning rate, lr={self.config.lr:g}? too few "
                "steps?)",
                stacklevel=3,
            )
        return FitResult(
            best_epoch=p.best_epoch,
            valid=valid,
            test=self.evaluate(self.splits.test),
            history=p.history,
            samples_per_s=p.train_samples / max(p.train_seconds, 1e-9),
            steps=p.step,
            stopped_early=p.stopped_early,
        )


def fit(
    model: nn.Module,
    splits: FunnelSplits,
    config: TrainConfig,
    *,
    resume_from: str | Path | None = None,
    metadata: dict[str, Any] | None = None,
    progress: bool = False,
    label: str = "",
    loggers: Sequence[RunLogger] = (),
) -> FitResult:
    """Train ``model`` on ``splits.train`` with early stopping on ``splits.valid``.

    After each epoch (and at a ``max_steps`` stop) the validation split is scored; the weights
    with the best mean step AUC are kept, restored into ``model`` at the end and scored on the
    test split. With ``config.checkpoint_dir`` set, ``last.pt`` is written at each validation
    and ``best.pt`` whenever the score improves. ``resume_from`` (a ``last.pt``) continues a
    run to exactly the result of an uninterrupted one (same config, CPU). ``metadata`` (JSON-
    ready) is stored in the checkpoints.

    ``progress=True`` prints each validation (and, with ``config.progress``, progress within
    epochs) to stderr when no logging is configured; the lines go to the ``apem.train`` logger
    either way, prefixed with ``label`` (e.g. the model and seed). Each ``loggers`` entry
    (``CSVLogger``, ``TensorBoardLogger``) receives every history entry.

    Under torchrun (an initialised process group) the model trains as DistributedDataParallel:
    each rank takes its part of every batch, every rank scores whole splits, and rank 0 alone
    reports and writes checkpoints.

    Warns when the kept weights score no better than chance (mean validation AUC <= 0.5), and
    for a split step with a single class (its AUC is undefined).

    Raises:
        NonFiniteLossError: a NaN/inf loss or weight (no checkpoint is written after it).
        CheckpointError: ``resume_from`` holds another model, schema, trajectory settings or
            data, or its ``best.pt`` belongs to another run.
        DataError: an empty split, or a validation split on which no step has both classes.
    """
    check_trainable(splits)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    with reporting_to_stderr(progress):
        return _Run(model, splits, config, resume_from, metadata or {}, label, loggers).run()
