"""Checkpoints: atomic writes, RNG round trip, clear errors for a checkpoint that does not fit."""

import dataclasses
import random

import numpy as np
import pytest
import torch

from apem.data.schema import Schema
from apem.train import TrainConfig, fit, model_from_checkpoint, seed_everything
from apem.train.checkpoint import (
    CheckpointError,
    capture_rng,
    load_checkpoint,
    load_model_state,
    restore_rng,
    save_checkpoint,
)


@pytest.fixture
def trained(tiny_splits, make_model, tmp_path):
    """A one-epoch Shared-Bottom run: (model, path of its last.pt)."""
    seed_everything(0)
    model = make_model()
    config = TrainConfig(batch_size=128, epochs=1, device="cpu", progress=False)
    fit(model, tiny_splits, dataclasses.replace(config, checkpoint_dir=str(tmp_path)))
    return model, tmp_path / "last.pt"


def draws() -> tuple:
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random()


def test_rng_round_trip_through_a_file(tmp_path):
    seed_everything(7)
    save_checkpoint(tmp_path / "rng.pt", {"format": "apem-checkpoint-1", "rng": capture_rng()})
    expected = draws()
    seed_everything(99)
    restore_rng(load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert draws() == expected


def test_model_from_checkpoint_rebuilds_the_weights(trained):
    model, path = trained
    rebuilt = model_from_checkpoint(load_checkpoint(path), path)
    assert rebuilt.name == model.name and rebuilt.config == model.config
    for key, value in model.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[key], value)


def test_another_model_is_a_clear_error(trained, make_model, tiny_splits):
    _, path = trained
    with pytest.raises(CheckpointError, match="holds a 'shared_bottom' model, not 'esmm'"):
        load_model_state(make_model("esmm"), load_checkpoint(path), tiny_splits.schema, path)


def test_other_hyper_parameters_are_a_clear_error(trained, make_model, tiny_splits):
    _, path = trained
    with pytest.raises(CheckpointError, match=r"embed_dim: checkpoint 4 vs model 8"):
        load_model_state(make_model(embed_dim=8), load_checkpoint(path), tiny_splits.schema, path)


def test_another_schema_is_a_clear_error(trained, tiny_splits):
    model, path = trained
    schema = tiny_splits.schema
    other = Schema(schema.fields, schema.vocab_sizes, ("click", "buy"))
    with pytest.raises(CheckpointError, match=r"another schema \(steps: checkpoint has"):
        load_model_state(model, load_checkpoint(path), other, path)


def test_mismatched_weights_are_a_clear_error(trained, tiny_splits):
    model, path = trained
    checkpoint = load_checkpoint(path)
    del checkpoint["model"]["state"]["embedding.table.weight"]
    with pytest.raises(CheckpointError, match="fit the model: missing embedding.table.weight"):
        load_model_state(model, checkpoint, tiny_splits.schema, path)


def test_unreadable_files_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "notes.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable apem checkpoint"):
        load_checkpoint(tmp_path / "notes.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not an apem checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"format": "apem-checkpoint-1", "value": 1})

    def broken_save(obj, handle):
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"format": "apem-checkpoint-1", "value": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["value"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
