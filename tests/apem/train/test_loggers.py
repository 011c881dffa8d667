"""CSV and TensorBoard loggers fed from the trainer's history."""

from __future__ import annotations

import csv

import pytest

from apem.train import TrainConfig, fit, seed_everything
from apem.train.loggers import CSVLogger, TensorBoardLogger, flatten


def config(tmp_path, **overrides) -> TrainConfig:
    values = {"batch_size": 64, "epochs": 2, "device": "cpu", "progress": False}
    return TrainConfig(**{**values, "checkpoint_dir": str(tmp_path / "run"), **overrides})


def test_flatten_names_nested_values():
    assert flatten({"step": 3, "valid_auc": {"click": 0.7}}) == {"step": 3, "valid_auc/click": 0.7}


def test_csv_has_a_row_per_validation_and_a_resume_appends(tiny_splits, make_model, tmp_path):
    path = tmp_path / "log.csv"
    seed_everything(0)
    logger = CSVLogger(path)
    fit(make_model(), tiny_splits, config(tmp_path, epochs=1), loggers=[logger])
    logger.close()
    logger = CSVLogger(path)
    result = fit(
        make_model(), tiny_splits, config(tmp_path),
        resume_from=tmp_path / "run" / "last.pt", loggers=[logger],
    )  # fmt: skip
    logger.close()
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [int(row["step"]) for row in rows] == [10, 20]
    for row, entry in zip(rows, result.history, strict=True):
        assert float(row["valid_auc/conversion"]) == entry["valid_auc"]["conversion"]
        assert float(row["lr"]) == entry["lr"] and float(row["train_loss"]) == entry["train_loss"]


def test_tensorboard_scalars(tiny_splits, make_model, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    seed_everything(0)
    logger = TensorBoardLogger(tmp_path / "tb")
    result = fit(make_model(), tiny_splits, config(tmp_path), loggers=[logger])
    logger.close()
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert {"train_loss", "lr", "valid_auc/click", "valid_mean_auc"} <= set(
        events.Tags()["scalars"]
    )
    scalars = events.Scalars("valid_mean_auc")
    assert [s.step for s in scalars] == [10, 20]
    expected = [h["valid_mean_auc"] for h in result.history]
    assert [s.value for s in scalars] == pytest.approx(expected, rel=1e-6)
