import numpy as np
import pandas as pd
import pytest

from apem.data import load_aliccp
from apem.data.sources.aliccp import AITM_FIELDS, LAYOUTS, RECHUB_DENSE


def write_split_files(directory, columns, rows=(60, 20, 20), seed=0):
    rng = np.random.default_rng(seed)
    frames = {}
    for split, n in zip(("train", "val", "test"), rows, strict=True):
        click = rng.integers(0, 2, n)
        frame = pd.DataFrame({"click": click, "purchase": click * rng.integers(0, 2, n)})
        for column in columns[2:]:
            if column.startswith("D"):
                frame[column] = rng.exponential(5.0, n).round(4)
            else:
                frame[column] = rng.integers(0, 8, n)
        frame.to_csv(directory / f"ali_ccp_{split}_sample.csv", index=False)
        frames[split] = frame
    return frames


@pytest.mark.parametrize("layout", ["aitm20", "rechub33"])
def test_round_trip_each_layout(tmp_path, layout):
    frames = write_split_files(tmp_path, LAYOUTS[layout])
    splits = load_aliccp(str(tmp_path), cache_dir=str(tmp_path / "cache"))
    assert splits.schema.steps == ("click", "purchase")
    assert splits.schema.num_fields == (18 if layout == "aitm20" else 31)
    for name, split in (("train", splits.train), ("valid", splits.valid), ("test", splits.test)):
        frame = frames["val" if name == "valid" else name]
        np.testing.assert_array_equal(split.labels, frame[["click", "purchase"]].to_numpy())
        np.testing.assert_array_equal(split.ids, splits.vocab.encode(frame))
    assert splits.schema.fields[: len(AITM_FIELDS)] == AITM_FIELDS or layout == "rechub33"


def test_rechub_dense_raw(tmp_path):
    frames = write_split_files(tmp_path, LAYOUTS["rechub33"])
    splits = load_aliccp(str(tmp_path), dense="raw", cache_dir=str(tmp_path / "cache"))
    assert splits.schema.dense == RECHUB_DENSE and splits.schema.num_fields == 23
    np.testing.assert_allclose(splits.test.dense, frames["test"][list(RECHUB_DENSE)], rtol=1e-6)


def test_explicit_files_and_layout(tmp_path):
    write_split_files(tmp_path, LAYOUTS["aitm20"])
    files = [str(tmp_path / f"ali_ccp_{s}_sample.csv") for s in ("train", "val", "test")]
    splits = load_aliccp(None, files=files, layout="aitm20", cache_dir=str(tmp_path / "c"))
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (60, 20, 20)


def test_real_sample(shared_data_dir, tmp_path):
    splits = load_aliccp(f"{shared_data_dir}/ali-ccp-sample", cache_dir=str(tmp_path))
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (100, 50, 50)
    assert splits.schema.num_fields == 31
    assert (np.diff(splits.train.labels.astype(int), axis=1) <= 0).all()
    raw = load_aliccp(f"{shared_data_dir}/ali-ccp-sample", dense="raw", cache_dir=str(tmp_path))
    assert raw.train.dense.shape == (100, 8)
