"""What a run prints: validation lines, plain progress lines off a terminal, labels."""

from __future__ import annotations

import logging
import re

import pytest

from apem.train import TrainConfig, compare, fit, seed_everything


@pytest.fixture(autouse=True)
def unconfigured_logging(monkeypatch):
    """No logging set up, as in a fresh interpreter (``apem.cli.main`` configures ``apem``)."""
    logger = logging.getLogger("apem")
    monkeypatch.setattr(logger, "handlers", [])
    level = logger.level
    logger.setLevel(logging.NOTSET)  # setLevel, not the attribute: it clears logging's cache
    yield
    logger.setLevel(level)


def config(**overrides) -> TrainConfig:
    values = {"batch_size": 64, "epochs": 1, "device": "cpu", "log_interval": 4}
    return TrainConfig(**{**values, **overrides})


def test_fit_with_progress_prints_to_stderr(tiny_splits, make_model, capsys):
    seed_everything(0)
    fit(make_model(), tiny_splits, config(), progress=True, label="sb seed 0")
    lines = capsys.readouterr().err.splitlines()
    # stderr is not a terminal here: a plain line every 4 of the 10 steps, then the validation
    assert [line.split("  loss")[0] for line in lines[:2]] == [
        "sb seed 0: epoch 1  step 4 (4/10)",
        "sb seed 0: epoch 1  step 8 (8/10)",
    ]
    assert re.fullmatch(r"sb seed 0: epoch 1  step 8 \(8/10\)  loss \d\.\d{4}  \d+ samples/s",
                        lines[1])  # fmt: skip
    assert lines[2].startswith("sb seed 0: epoch 1.00  step 10  loss ")
    assert len(lines) == 3


def test_fit_is_silent_by_default(tiny_splits, make_model, capsys):
    seed_everything(0)
    fit(make_model(), tiny_splits, config())
    assert capsys.readouterr().err == ""
    fit(make_model(), tiny_splits, config(progress=False), progress=True)
    assert len(capsys.readouterr().err.splitlines()) == 1  # the validation line only


def test_compare_labels_every_line_with_model_and_seed(tiny_splits, caplog):
    caplog.set_level(logging.INFO, logger="apem.train")
    compare(["single_task", "esmm"], [0, 1], tiny_splits, config(), {})
    labels = [record.getMessage().split(":")[0] for record in caplog.records]
    assert labels.count("single_task seed 0") == 3 and labels.count("esmm seed 1") == 3
    assert set(labels) == {f"{m} seed {s}" for m in ("single_task", "esmm") for s in (0, 1)}
