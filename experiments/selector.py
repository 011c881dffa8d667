"""Figure 5 (the smooth step f_D at three training steps), Figure 7a (per-sample selection
rates of a trained APEM on the test split) and the attention diagnostics of the default and
the paper variant before and after training.

The selection rate of a sample is the share of its K inducing points with ``z = 1``, i.e.
``u >= γ/2`` for the selector output ``u`` (DESIGN.md §2). ``u`` is read with a forward hook
on each ASRG layer's ``selector`` module, so ``apem/*`` is untouched.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from apem.data import BatchLoader, FunnelData, FunnelSplits
from apem.models import APEM, build_model
from apem.models.gamma import gamma_schedule
from apem.train import TrainConfig, seed_everything
from apem.train.diagnostics import diagnose, tower_reliance
from apem_kernels import smooth_step
from experiments.comparison import train_config
from experiments.datasets import DESCRIPTIONS, load_dataset
from experiments.presets import Preset
from experiments.runner import train_once

FIGURE5_STEPS = (1, 25_000, 100_000)
HISTOGRAM_BINS = 20
FLOOR_STEP = 50_000  # γ(50,000) = 10⁻³, the schedule's floor


def smooth_step_curves(steps: tuple[int, ...] = FIGURE5_STEPS, points: int = 801) -> dict:
    """f_D(u; γ(step)) on u in [-6, 6], computed by ``apem_kernels.smooth_step`` (torch)."""
    u = torch.linspace(-6.0, 6.0, points, dtype=torch.float64)
    curves = {
        str(step): smooth_step(u, gamma_schedule(step), backend="torch").tolist() for step in steps
    }
    return {
        "u": u.tolist(),
        "gamma": {str(s): gamma_schedule(s) for s in steps},
        "f": curves,
    }


@torch.no_grad()
def selector_outputs(model: APEM, data: FunnelData, batch_size: int = 8192) -> list[np.ndarray]:
    """Per ASRG layer, the (n, K) selector outputs ``u`` of every sample of ``data``."""
    captured: list[list[torch.Tensor]] = [[] for _ in model.asrg]
    hooks = [
        layer.selector.register_forward_hook(
            lambda _m, _i, out, k=k: captured[k].append(out.float().cpu())
        )
        for k, layer in enumerate(model.asrg)
        if layer.selector is not None
    ]
    model.eval()
    device = next(model.parameters()).device
    try:
        for batch in BatchLoader(data, batch_size, device=device):
            model(batch.ids, batch.dense)
    finally:
        for hook in hooks:
            hook.remove()
    return [torch.cat(parts).numpy() for parts in captured if parts]


def selection_rates(outputs: list[np.ndarray], gamma: float) -> dict[str, Any]:
    """Per-sample share of ``z = 1`` (``u >= γ/2``), per layer and over all layers, with the
    mean soft gate ``f_D(u)`` and, for the same ``u``, the share the gate would select at
    the schedule's floor γ (``u >= γ_min/2``, the hard 0/1 gate of steps >= 50,000)."""
    hard = [(u >= gamma / 2).mean(axis=1) for u in outputs]
    floor = gamma_schedule(FLOOR_STEP)
    at_floor = np.mean([(u >= floor / 2).mean(axis=1) for u in outputs], axis=0)
    soft = [
        smooth_step(torch.from_numpy(u), gamma, backend="torch").mean(dim=1).numpy()
        for u in outputs
    ]
    overall = np.mean(hard, axis=0)
    counts, edges = np.histogram(overall, bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    return {
        "gamma": gamma,
        "per_layer_mean_rate": [float(h.mean()) for h in hard],
        "per_layer_mean_soft_gate": [float(s.mean()) for s in soft],
        "rate_quantiles": {
            q: float(np.quantile(overall, float(q)))
            for q in ("0.01", "0.25", "0.5", "0.75", "0.99")
        },
        "share_all_zero": float((overall == 0).mean()),
        "median_rate_at_floor_gamma": float(np.median(at_floor)),
        "histogram": {"counts": counts.tolist(), "edges": edges.tolist()},
        "u_quantiles": {
            q: float(np.quantile(np.concatenate([u.ravel() for u in outputs]), float(q)))
            for q in ("0.01", "0.5", "0.99")
        },
    }


def attention_diagnostics(
    splits: FunnelSplits, train: TrainConfig, seed: int, hparams: dict[str, Any]
) -> dict[str, Any]:
    """``apem.train.diagnostics`` of APEM with ``hparams`` on the validation split, at
    initialisation and after ``fit_seed`` (which rebuilds the same initial model)."""
    seed_everything(seed)
    before = diagnose(build_model("apem", splits.schema, **hparams), splits.valid)
    model, result, wall = train_once("apem", hparams, splits, train, seed)
    return {
        "hparams": hparams,
        "initialisation": [d.to_dict() for d in before],
        "trained": [d.to_dict() for d in diagnose(model, splits.valid)],
        "towers": [r.to_dict() for r in tower_reliance(model, splits.valid)],
        "test_auc": result.test.auc,
        "fit_seconds": wall,
    }


def run_selector(dataset: str, preset: Preset) -> dict[str, Any]:
    """Figure 5's curves, then APEM trained on ``dataset`` (first seed, the preset's fixed
    APEM hyper-parameters, no grid) and its selection rates on the test split. γ follows the
    run-length schedule, so the gate is the paper's hard 0/1 one by the end of the run,
    as after the paper's 50,000 steps (the preset's runs are far shorter). Then the attention
    diagnostics of the default and the paper variant (first seed), and of the default trained
    once per seed of the preset (``attention_by_seed``: the trained layers and test AUC)."""
    rows = preset.census_rows if dataset == "census" else preset.rows.get(dataset)
    splits = load_dataset(dataset, rows)
    train: TrainConfig = dataclasses.replace(train_config(preset), patience=0)
    seed = preset.seeds[0]
    hparams = {**preset.apem, "gamma_schedule": "run"}
    model, result, wall = train_once("apem", hparams, splits, train, seed)
    outputs = selector_outputs(model, splits.test)
    attention = {
        variant: attention_diagnostics(
            splits, train_config(preset), seed, {**preset.apem, "variant": variant}
        )
        for variant in ("default", "paper")
    }
    default = {**preset.apem, "variant": "default"}
    by_seed = {seed: attention["default"]} | {
        other: attention_diagnostics(splits, train_config(preset), other, default)
        for other in preset.seeds[1:]
    }
    return {
        "dataset": dataset,
        "description": DESCRIPTIONS[dataset],
        "figure5": smooth_step_curves(),
        "figure7a": {
            "seed": seed,
            "hparams": hparams,
            "train_steps": int(model.step),
            "fit_seconds": wall,
            "test_auc": result.test.auc,
            "test_rows": len(splits.test),
            **selection_rates(outputs, model.gamma),
        },
        "attention": attention,
        "attention_by_seed": {
            str(k): {"trained": r["trained"], "test_auc": r["test_auc"]} for k, r in by_seed.items()
        },
    }
