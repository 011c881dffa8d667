import numpy as np
import pandas as pd
import pytest

from apem.data import DataError, convert_tianchi, load_aliccp

FEATURE = "{}\x02{}\x03{}"


def test_convert_then_load(raw_dir, tmp_path):
    report = convert_tianchi(str(raw_dir), str(tmp_path / "out"), min_count=2, valid_fraction=0.2)
    assert report["dropped"] == {"train": 1, "test": 0}
    assert report["rows"] == {"train": 24, "val": 5, "test": 6}
    train = pd.read_csv(report["files"][0])
    assert list(train.columns[:3]) == ["click", "purchase", "101"] and train.shape[1] == 20
    assert (train["purchase"] <= train["click"]).all()
    assert set(train["101"]) == {1, 2}  # both users' common feature joined
    assert set(train["206"]) == {1}  # first of the two 206 ids kept
    assert set(train["216"]) == {0}  # rare id and absent field: OOV
    test = pd.read_csv(report["files"][2])
    assert test["206"].tolist() == [0] * 6 and test["205"].tolist()[3:] == [0] * 3
    splits = load_aliccp(str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"))
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (24, 5, 6)
    np.testing.assert_array_equal(splits.test.labels[:, 0], [1, 1, 1, 0, 0, 0])


def test_unknown_common_index(raw_dir, tmp_path):
    path = raw_dir / "sample_skeleton_test.csv"
    path.write_text(path.read_text() + "99,0,0,nobody,1," + FEATURE.format("205", 1, 1.0) + "\n")
    with pytest.raises(DataError, match="common-feature index") as caught:
        convert_tianchi(str(raw_dir), str(tmp_path / "out"))
    assert (caught.value.row, caught.value.column) == (7, "common_index")


def test_truncated_feature_list(raw_dir, tmp_path):
    path = raw_dir / "sample_skeleton_train.csv"
    path.write_text(path.read_text() + "99,0,0,u1,3," + FEATURE.format("205", 1, 1.0))
    with pytest.raises(DataError, match="feature_count says 3") as caught:
        convert_tianchi(str(raw_dir), str(tmp_path / "out"))
    assert (caught.value.file, caught.value.row) == (str(path), 31)


def test_missing_raw_file(tmp_path):
    with pytest.raises(DataError, match="missing raw Tianchi file"):
        convert_tianchi(str(tmp_path), str(tmp_path / "out"))
