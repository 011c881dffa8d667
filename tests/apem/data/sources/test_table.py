import os

import numpy as np
import pandas as pd
import pytest

from apem.data import FunnelSplits, Vocabulary, load_table, log_round
from apem.data.splitting import permutation_split


def decoded(splits: FunnelSplits, split: str, field: str) -> list[str]:
    """The raw values behind a split's ids of ``field`` ('<OOV>' for id 0)."""
    f = splits.schema.fields.index(field)
    values = ["<OOV>"] + splits.vocab.values[f]
    return [values[i] for i in getattr(splits, split).ids[:, f]]


def rows_of(splits: FunnelSplits, frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The frame's rows of each split, recovered from the seeded permutation."""
    parts = permutation_split(len(frame), seed=0)
    return {
        name: frame.iloc[rows] for name, rows in zip(("train", "valid", "test"), parts, strict=True)
    }


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".csv.gz"])
def test_round_trip(tmp_path, funnel_frame, suffix):
    path = str(tmp_path / f"log{suffix}")
    if suffix == ".parquet":
        funnel_frame.to_parquet(path)
    else:
        funnel_frame.to_csv(path, index=False)
    splits = load_table(path, ["click", "buy"], dense=["x"], cache_dir=str(tmp_path / "cache"))
    assert splits.schema.steps == ("click", "buy")
    assert splits.schema.fields == ("a", "b", "x")
    assert sum(len(s) for s in (splits.train, splits.valid, splits.test)) == 200
    expected = rows_of(splits, funnel_frame)
    for name, frame in expected.items():
        part = getattr(splits, name)
        np.testing.assert_array_equal(part.labels, frame[["click", "buy"]].to_numpy())
        if name == "train":  # min_count=1: every training value is in the vocabulary
            assert decoded(splits, name, "a") == frame["a"].tolist()
            assert decoded(splits, name, "b") == frame["b"].astype(str).tolist()
            assert decoded(splits, name, "x") == log_round(frame["x"]).astype(str).tolist()
        np.testing.assert_array_equal(part.ids, splits.vocab.encode(frame))
    assert splits.train.ids.dtype == np.int32 and splits.train.labels.dtype == np.uint8
    assert isinstance(splits.train.ids, np.memmap)


def test_ids_are_ranked_by_training_frequency(tmp_path, funnel_frame):
    path = str(tmp_path / "log.csv")
    funnel_frame.to_csv(path, index=False)
    splits = load_table(path, ["click", "buy"], cache_dir=str(tmp_path))
    counts = np.bincount(splits.train.ids[:, 0])
    assert (np.diff(counts[1:]) <= 0).all()
    assert splits.vocab.values[0][0] == "red"


def test_dense_raw_and_min_count(tmp_path, funnel_frame):
    path = str(tmp_path / "log.csv")
    funnel_frame.to_csv(path, index=False)
    splits = load_table(
        path, ["click", "buy"], dense=["x"], dense_mode="raw", min_count=5, cache_dir=str(tmp_path)
    )
    assert splits.schema.fields == ("a", "b") and splits.schema.dense == ("x",)
    expected = rows_of(splits, funnel_frame)["test"]
    np.testing.assert_allclose(splits.test.dense[:, 0], expected["x"], rtol=1e-6)
    assert "rare" not in splits.vocab.values[0]  # seen < 5 times in train: OOV
    assert (splits.vocab.encode(pd.DataFrame({"a": ["rare"], "b": [100]}))[:, 0] == 0).all()


def test_cache_is_reused_and_invalidated_when_the_file_changes(tmp_path, funnel_frame):
    path = str(tmp_path / "log.csv")
    funnel_frame.to_csv(path, index=False)
    cache = str(tmp_path / "cache")
    first = load_table(path, ["click", "buy"], cache_dir=cache)
    again = load_table(path, ["click", "buy"], cache_dir=cache)
    assert again.metadata["cache"] == first.metadata["cache"]
    funnel_frame.iloc[:100].to_csv(path, index=False)
    os.utime(path, ns=(1, 1))
    changed = load_table(path, ["click", "buy"], cache_dir=cache)
    assert changed.metadata["cache"] != first.metadata["cache"]
    assert len(changed.train) + len(changed.valid) + len(changed.test) == 100


def test_seed_changes_the_split(tmp_path, funnel_frame):
    path = str(tmp_path / "log.csv")
    funnel_frame.to_csv(path, index=False)
    a = load_table(path, ["click", "buy"], seed=0, cache_dir=str(tmp_path))
    b = load_table(path, ["click", "buy"], seed=1, cache_dir=str(tmp_path))
    assert not np.array_equal(a.test.labels, b.test.labels) or not np.array_equal(
        a.test.ids, b.test.ids
    )


def test_drop_inconsistent_reports_the_count(tmp_path, funnel_frame):
    frame = funnel_frame.copy()
    frame.loc[[3, 17, 40], ["click", "buy"]] = [0, 1]
    path = str(tmp_path / "log.csv")
    frame.to_csv(path, index=False)
    with pytest.warns(UserWarning, match="dropped 3 rows"):
        splits = load_table(path, ["click", "buy"], drop_inconsistent=True, cache_dir=str(tmp_path))
    assert splits.metadata["dropped_inconsistent"] == 3
    assert len(splits.train) + len(splits.valid) + len(splits.test) == 197


def test_independent_tasks_are_not_checked(tmp_path, funnel_frame):
    frame = funnel_frame.copy()
    frame.loc[3, ["click", "buy"]] = [0, 1]
    path = str(tmp_path / "log.csv")
    frame.to_csv(path, index=False)
    splits = load_table(path, ["click", "buy"], sequential=False, cache_dir=str(tmp_path))
    assert not splits.schema.sequential


def test_vocabulary_json_round_trip(tmp_path, funnel_frame):
    path = str(tmp_path / "log.csv")
    funnel_frame.to_csv(path, index=False)
    splits = load_table(path, ["click", "buy"], dense=["x"], cache_dir=str(tmp_path))
    saved = Vocabulary.load(os.path.join(splits.metadata["cache"], "vocab.json"))
    assert saved.to_json() == splits.vocab.to_json()
    unseen = pd.DataFrame({"a": ["purple", "red"], "b": [999, 100], "x": [1e9, 0.5]})
    ids = saved.encode(unseen)
    assert ids[0].tolist()[:2] == [0, 0] and ids[1, 0] > 0
    assert (ids < np.array(splits.schema.vocab_sizes)).all()
