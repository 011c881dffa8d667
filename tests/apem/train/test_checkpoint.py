"""Checkpoints: atomic writes, RNG round trip, clear errors for a checkpoint that does not fit."""

import dataclasses
import math
import os
import random
import zipfile

import numpy as np
import pytest
import torch

from apem.data.schema import FunnelSplits, Schema
from apem.models import build_model
from apem.train import TrainConfig, fit, model_from_checkpoint, seed_everything
from apem.train.checkpoint import (
    FORMAT,
    CheckpointError,
    capture_rng,
    check_data,
    load_checkpoint,
    load_model_state,
    remove_stale_temporaries,
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
    save_checkpoint(tmp_path / "rng.pt", {"format": FORMAT, "rng": capture_rng()})
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


def test_a_checkpoint_from_before_an_added_option_loads_with_its_old_value(tiny_splits, tmp_path):
    schema = tiny_splits.schema
    model = build_model("apem", schema, num_layers=2, num_inducing=4, embed_dim=4, task_gain=1.0)
    config = TrainConfig(batch_size=128, epochs=1, device="cpu", progress=False)
    fit(model, tiny_splits, dataclasses.replace(config, checkpoint_dir=str(tmp_path)))
    checkpoint = load_checkpoint(tmp_path / "last.pt")
    del checkpoint["model"]["config"]["task_gain"]  # as written before the option existed
    rebuilt = model_from_checkpoint(checkpoint, "old.pt")
    assert rebuilt.config == model.config
    with pytest.raises(CheckpointError, match="task_gain: checkpoint 1.0 vs model 0.05"):
        load_model_state(
            build_model("apem", schema, **{**model.config, "task_gain": 0.05}),
            checkpoint,
            schema,
            "old.pt",
        )


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
    save_checkpoint(path, {"format": FORMAT, "value": 1})

    def broken_save(obj, handle):
        handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"format": FORMAT, "value": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["value"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_checkpoint_holds_its_data(trained, tiny_splits):
    _, path = trained
    data = load_checkpoint(path)["data"]
    assert data["vocabulary"] is None  # synthetic ids are raw values
    assert data["source"]["options"]["n"] == 800 and data["source"]["seed"] == 0
    assert data["fingerprint"]["rows"] == {"train": 640, "valid": 80, "test": 80}
    check_data(load_checkpoint(path), tiny_splits, path)
    flipped = dataclasses.replace(tiny_splits.train, labels=1 - tiny_splits.train.labels)
    other = FunnelSplits(flipped, tiny_splits.valid, tiny_splits.test)
    with pytest.raises(CheckpointError, match="the sampled rows differ"):
        check_data(load_checkpoint(path), other, path)


def flip_bytes(path, count=256):
    """Flip ``count`` bytes in the middle of the largest stored tensor's data."""
    with zipfile.ZipFile(path) as archive:
        record = max(
            (i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size
        )
    blob = bytearray(path.read_bytes())
    start = record.header_offset + 30 + len(record.filename) + len(record.extra)
    start += record.file_size // 2 - count // 2
    blob[start : start + count] = bytes(b ^ 0xFF for b in blob[start : start + count])
    path.write_bytes(bytes(blob))


def poison_weight(path):
    checkpoint = load_checkpoint(path)
    name = next(iter(checkpoint["model"]["state"]))
    checkpoint["model"]["state"][name].view(-1)[0] = math.nan
    save_checkpoint(path, checkpoint)


def edit_without_checksums(path):
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["train_config"]["lr"] = 0.5
    torch.save(checkpoint, path)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (flip_bytes, r"is corrupt: .* fail their checksums"),
        (poison_weight, r"holds non-finite weights \(.*: 1 NaN/inf values\)"),
        (edit_without_checksums, "non-tensor content fails its checksum"),
    ],
)
def test_damaged_checkpoints_are_refused(trained, damage, message):
    _, path = trained
    damage(path)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_stale_temporary_files_are_removed(tmp_path):
    stale = tmp_path / ".last.pt.999999999.tmp"
    stale.write_bytes(b"partial")
    mine = tmp_path / f".best.pt.{os.getpid()}.tmp"
    mine.write_bytes(b"in progress")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert not stale.exists() and mine.exists()
