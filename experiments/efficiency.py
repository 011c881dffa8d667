"""Figure 8 analogue: training time per epoch, inference time, parameter count and size of
every model, measured on the machine that runs it."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from apem.train import predict
from apem.train.evaluation import eval_batch_size, resolve_device
from experiments.comparison import model_variants, train_config
from experiments.datasets import DESCRIPTIONS, load_dataset
from experiments.presets import Preset
from experiments.runner import train_once

DATASET = "synthetic2"
MIB = 1 << 20


def run_efficiency(preset: Preset) -> dict[str, Any]:
    """Each model at its default hyper-parameters (plus the preset's fixed APEM ones), one
    epoch on the synthetic 2-step funnel (first seed), then one timed pass over the test split.

    Size counts every tensor of the state dict (parameters and buffers) at its stored dtype.
    """
    rows = preset.efficiency_rows
    splits = load_dataset(DATASET, rows)
    train = dataclasses.replace(train_config(preset), epochs=1, patience=0)
    inference_batch = eval_batch_size(train.eval_batch_size, resolve_device(train.device))
    measured = []
    for variant in model_variants(preset):
        model, result, _ = train_once(variant.model, variant.fixed, splits, train, preset.seeds[0])
        started = time.perf_counter()
        predict(model, splits.test, batch_size=inference_batch)
        inference = time.perf_counter() - started
        state = model.state_dict().values()
        measured.append(
            {
                "model": variant.label,
                "train_epoch_s": result.history[0]["seconds"],
                "train_samples_per_s": result.samples_per_s,
                "inference_s": inference,
                "inference_samples_per_s": len(splits.test) / inference,
                "parameters": sum(p.numel() for p in model.parameters()),
                "size_mb": sum(t.numel() * t.element_size() for t in state) / MIB,
                "test_auc": result.test.auc,
            }
        )
    return {
        "dataset": DATASET,
        "description": DESCRIPTIONS[DATASET],
        "scale": {
            "rows": {s: len(getattr(splits, s)) for s in ("train", "valid", "test")},
            "batch_size": train.batch_size,
            "eval_batch_size": inference_batch,
            "seed": preset.seeds[0],
        },
        "models": measured,
    }
