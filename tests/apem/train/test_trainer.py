"""fit / evaluate / predict on a tiny funnel: learning, early stopping, exact resume, NaN stop."""

import dataclasses
import math

import numpy as np
import pytest
import torch

import apem.train.trainer as trainer_module
from apem.data import DataError, FunnelSplits
from apem.models import build_model
from apem.train import (
    NonFiniteLossError,
    TrainConfig,
    fit,
    load_checkpoint,
    seed_everything,
)
from apem.train.checkpoint import CheckpointError, save_checkpoint

TIMING = {"seconds", "samples_per_s"}


def config(tmp_path=None, **overrides) -> TrainConfig:
    values = {
        "batch_size": 64,
        "epochs": 2,
        "device": "cpu",
        "patience": 0,
        "progress": False,
        "log_interval": 3,
        "checkpoint_dir": None if tmp_path is None else str(tmp_path),
    }
    return TrainConfig(**{**values, **overrides})


def parameters(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in entry.items() if k not in TIMING} for entry in history]


def test_fit_learns_and_writes_checkpoints(tiny_splits, make_model, tmp_path):
    seed_everything(0)
    model = make_model()
    result = fit(model, tiny_splits, config(tmp_path, epochs=3, lr=1e-2))
    assert result.steps == 3 * 10
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert all(result.test.auc[s] > 0.65 for s in tiny_splits.schema.steps), result.test.auc
    assert result.valid.mean_auc == max(h["valid_mean_auc"] for h in result.history)
    assert result.samples_per_s > 0
    last, best = load_checkpoint(tmp_path / "last.pt"), load_checkpoint(tmp_path / "best.pt")
    assert last["progress"]["epoch"] == 3
    assert last["model"]["name"] == "shared_bottom"
    assert last["schema"]["steps"] == list(tiny_splits.schema.steps)
    assert last["train_config"]["lr"] == 1e-2
    assert set(last["rng"]) == {"torch", "cuda", "numpy", "python"}
    assert best["progress"]["best_epoch"] == result.best_epoch
    # The returned model holds the best weights.
    assert_same_state(parameters(model), best["model"]["state"])
    assert not list(tmp_path.glob("*.tmp"))


def test_fit_reports_the_validation_it_measured_at_the_best_point(
    tiny_splits, make_model, monkeypatch
):
    scored = []
    score = trainer_module.evaluate
    monkeypatch.setattr(
        trainer_module,
        "evaluate",
        lambda model, data, **kw: scored.append(data) or score(model, data, **kw),
    )
    seed_everything(0)
    model = make_model()
    result = fit(model, tiny_splits, config(epochs=3, lr=1e-2))
    # one pass per validation and one over the test split: the best point is not re-scored
    assert scored == [tiny_splits.valid] * 3 + [tiny_splits.test]
    assert result.valid == score(model, tiny_splits.valid)


def test_early_stopping_without_improvement(tiny_splits, make_model):
    seed_everything(0)
    with pytest.warns(UserWarning, match="no better than chance"):
        result = fit(make_model(), tiny_splits, config(lr=0.0, epochs=5, patience=2))
    assert result.stopped_early
    assert len(result.history) == 3  # one improvement (from nothing), then two without
    assert result.best_epoch == 1


def test_max_steps_stops_mid_epoch(tiny_splits, make_model, tmp_path):
    seed_everything(0)
    with pytest.warns(UserWarning, match="no better than chance"):
        result = fit(make_model(), tiny_splits, config(tmp_path, max_steps=4))
    assert result.steps == 4
    assert result.history[-1]["epoch"] == pytest.approx(0.4)
    assert load_checkpoint(tmp_path / "last.pt")["progress"]["batch"] == 4


def run(make_model, tiny_splits, cfg, seed=0, resume_from=None):
    seed_everything(seed)
    model = make_model()
    result = fit(model, tiny_splits, cfg, resume_from=resume_from)
    return model, result


def test_resume_from_epoch_boundary_equals_uninterrupted(tiny_splits, make_model, tmp_path):
    full_model, full = run(make_model, tiny_splits, config(tmp_path / "full", epochs=3))
    part = config(tmp_path / "part", epochs=1)
    run(make_model, tiny_splits, part)
    # A different initialisation proves that everything comes from the checkpoint.
    resumed_model, resumed = run(
        make_model,
        tiny_splits,
        dataclasses.replace(part, epochs=3),
        seed=123,
        resume_from=tmp_path / "part" / "last.pt",
    )
    assert_same_state(parameters(full_model), parameters(resumed_model))
    for name in ("last.pt", "best.pt"):
        a, b = (load_checkpoint(tmp_path / d / name) for d in ("full", "part"))
        assert_same_state(a["model"]["state"], b["model"]["state"])
        assert_same_state(a["optimizer"]["state"][0], b["optimizer"]["state"][0])
    assert full.test == resumed.test and full.valid == resumed.valid
    assert full.best_epoch == resumed.best_epoch and full.steps == resumed.steps
    assert without_timing(full.history) == without_timing(resumed.history)


def test_resume_mid_epoch_continues_the_same_trajectory(tiny_splits, make_model, tmp_path):
    run(make_model, tiny_splits, config(tmp_path / "full", epochs=2))
    part = config(tmp_path / "part", epochs=2, max_steps=13)
    run(make_model, tiny_splits, part)
    run(
        make_model,
        tiny_splits,
        dataclasses.replace(part, max_steps=None),
        seed=5,
        resume_from=tmp_path / "part" / "last.pt",
    )
    full, resumed = (load_checkpoint(tmp_path / d / "last.pt") for d in ("full", "part"))
    assert_same_state(full["model"]["state"], resumed["model"]["state"])
    assert full["progress"]["step"] == resumed["progress"]["step"] == 20


def test_resume_refuses_other_trajectory_settings(tiny_splits, make_model, tmp_path):
    run(make_model, tiny_splits, config(tmp_path, epochs=1))
    with pytest.raises(CheckpointError, match=r"lr=0\.001 \(now 0\.01\)"):
        run(
            make_model,
            tiny_splits,
            config(tmp_path, epochs=2, lr=0.01),
            resume_from=tmp_path / "last.pt",
        )


def test_resume_refuses_a_best_checkpoint_of_another_run(tiny_splits, make_model, tmp_path):
    run(make_model, tiny_splits, config(tmp_path / "mine", epochs=1))
    run(make_model, tiny_splits, config(tmp_path / "later", epochs=2))
    mine = tmp_path / "mine"
    (tmp_path / "later" / "best.pt").replace(mine / "best.pt")
    with pytest.raises(
        CheckpointError,
        match=r"best\.pt is from step 20, but .* \(step 10\) records its best .* at step 10",
    ):
        run(make_model, tiny_splits, config(mine, epochs=2), resume_from=mine / "last.pt")
    seed_everything(0)
    other = build_model("single_task", tiny_splits.schema, embed_dim=4, tower_hidden=[8])
    fit(other, tiny_splits, config(tmp_path / "other", epochs=1))
    (tmp_path / "other" / "best.pt").replace(mine / "best.pt")
    with pytest.raises(CheckpointError, match="holds a 'single_task' model, not 'shared_bottom'"):
        run(make_model, tiny_splits, config(mine, epochs=2), resume_from=mine / "last.pt")


def test_nan_loss_names_step_and_batch_and_keeps_last_good_checkpoint(
    tiny_splits, make_model, tmp_path
):
    seed_everything(0)
    model = make_model()
    calls = {"n": 0}
    original = model.training_loss

    def poisoned(batch):
        calls["n"] += 1
        loss, parts = original(batch)
        return (loss * math.nan if calls["n"] == 14 else loss), parts

    model.training_loss = poisoned
    kept = rf"the last good checkpoint is kept \({tmp_path / 'last.pt'}, step 10\)"
    with pytest.raises(NonFiniteLossError, match=r"nan at step 14 \(epoch 2, batch 4\).*" + kept):
        fit(model, tiny_splits, config(tmp_path, epochs=3))
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["progress"]["epoch"] == 1 and last["progress"]["step"] == 10
    assert all(torch.isfinite(v).all() for v in last["model"]["state"].values())


def test_resume_on_another_device_type_warns(tiny_splits, make_model, tmp_path):
    run(make_model, tiny_splits, config(tmp_path, epochs=1))
    checkpoint = load_checkpoint(tmp_path / "last.pt")
    assert checkpoint["device_type"] == "cpu"
    checkpoint["device_type"] = "cuda"
    save_checkpoint(tmp_path / "last.pt", checkpoint)
    with pytest.warns(UserWarning, match="trained on cuda and resumes on cpu"):
        run(make_model, tiny_splits, config(tmp_path, epochs=2), resume_from=tmp_path / "last.pt")


def test_a_kill_between_the_checkpoint_writes_is_repaired_on_resume(
    tiny_splits, make_model, tmp_path, monkeypatch
):
    full_model, full = run(make_model, tiny_splits, config(tmp_path / "full", epochs=3))
    improved = [h["epoch"] for h in full.history if h["valid_mean_auc"] == full.valid.mean_auc]
    assert improved == [full.best_epoch] and full.best_epoch > 1  # the kill hits a best.pt write

    def killed(path, checkpoint):
        if path.name == "best.pt" and checkpoint["progress"]["epoch"] == full.best_epoch:
            raise KeyboardInterrupt  # what SIGKILL leaves: last.pt written, best.pt not
        save_checkpoint(path, checkpoint)

    monkeypatch.setattr(trainer_module, "save_checkpoint", killed)
    part = config(tmp_path / "part", epochs=3)
    with pytest.raises(KeyboardInterrupt):
        run(make_model, tiny_splits, part)
    monkeypatch.undo()
    stale = tmp_path / "part" / ".best.pt.999999999.tmp"  # left by a killed writer
    stale.write_bytes(b"partial")
    resumed_model, resumed = run(
        make_model, tiny_splits, part, resume_from=tmp_path / "part" / "last.pt"
    )
    assert not stale.exists()
    assert resumed.best_epoch == full.best_epoch and resumed.test == full.test
    assert_same_state(parameters(full_model), parameters(resumed_model))
    best = load_checkpoint(tmp_path / "part" / "best.pt")
    assert best["progress"]["best_epoch"] == full.best_epoch
    assert_same_state(best["model"]["state"], parameters(full_model))


def test_a_nan_stop_before_any_checkpoint_says_none_was_written(tiny_splits, make_model, tmp_path):
    seed_everything(0)
    model = make_model()
    original = model.training_loss
    model.training_loss = lambda batch: (original(batch)[0] * math.nan, {})
    with pytest.raises(NonFiniteLossError, match=r"step 1 \(epoch 1, batch 1\); .*no checkpoint"):
        fit(model, tiny_splits, config(tmp_path, epochs=1))
    assert not list(tmp_path.iterdir())


def test_single_class_steps_warn_and_an_empty_split_is_an_error(tiny_splits, make_model):
    valid = dataclasses.replace(tiny_splits.valid, labels=tiny_splits.valid.labels * 0)
    valid.labels[:, 0] = np.arange(len(valid)) % 2  # click has both classes, conversion not
    splits = FunnelSplits(tiny_splits.train, valid, tiny_splits.test)
    with pytest.warns(
        UserWarning, match=r"valid split \(80 rows\) has a single class .*conversion"
    ):
        fit(make_model(), splits, config(epochs=1))
    empty = dataclasses.replace(tiny_splits.test, ids=tiny_splits.test.ids[:0])
    with pytest.raises(DataError, match="the test split has no rows"):
        fit(make_model(), FunnelSplits(tiny_splits.train, tiny_splits.valid, empty), config())


def test_fit_prepares_the_model_with_the_training_split_and_the_planned_steps(tiny_splits):
    seen = {}

    class Recording(build_model("single_task", tiny_splits.schema).__class__):
        def prepare_fit(self, train, total_steps):
            seen["rows"], seen["steps"] = len(train), total_steps

    model = Recording(tiny_splits.schema, embed_dim=4, tower_hidden=[8])
    fit(model, tiny_splits, TrainConfig(epochs=3, batch_size=100, device="cpu", progress=False))
    assert seen == {"rows": 640, "steps": 3 * 7}
    fit(model, tiny_splits, TrainConfig(epochs=3, batch_size=100, max_steps=5, device="cpu"))
    assert seen["steps"] == 5
