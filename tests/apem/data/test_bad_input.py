"""Every bad input raises DataError naming the file, the 1-based line and the column."""

import gzip

import pytest

from apem.data import DataError, load_aliccp, load_table

HEADER = "click,buy,a,x\n"
GOOD = "1,0,red,1.5\n0,0,blue,3\n1,1,red,7\n"


def load(path, **kw):
    return load_table(path, ["click", "buy"], dense=["x"], cache_dir=str(path) + ".cache", **kw)


@pytest.mark.parametrize(
    ("text", "row", "column", "message"),
    [
        (HEADER + GOOD + "2,0,red,1\n", 5, "click", "non-binary"),
        (HEADER + GOOD + "yes,0,red,1\n", 5, "click", "non-numeric"),
        (HEADER + GOOD + ",0,red,1\n", 5, "click", "missing value"),
        (HEADER + GOOD + "0,1,red,1\n", 5, "buy", "earlier step 'click' is 0"),
        (HEADER + GOOD + "1,0,red,abc\n", 5, "x", "non-numeric value 'abc'"),
        (HEADER + GOOD + "1,0,red,nan\n", 5, "x", "NaN"),
        (HEADER + GOOD + "1,0,,2\n", 5, "a", "empty cell"),
        (HEADER + GOOD + "1,0,red\n" + GOOD, 5, "x", "missing column values"),
        (HEADER + GOOD + "1,0,red,1,9\n" + GOOD, 5, "#5 (beyond the 4 named)", "extra column"),
        (HEADER + GOOD + "1,0,re", 5, "x", "truncated last line"),
    ],
)
def test_bad_cells(write_text, text, row, column, message):
    path = write_text("bad.csv", text)
    with pytest.raises(DataError, match=message) as caught:
        load(path)
    assert (caught.value.file, caught.value.row, caught.value.column) == (path, row, column)
    assert f"line {row}" in str(caught.value) and path in str(caught.value)


def test_error_row_counts_lines_across_chunks(tmp_path):
    path = tmp_path / "big.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(HEADER + GOOD * 20_000 + "1,0,red\n")
    with pytest.raises(DataError, match="truncated last line") as caught:
        load(str(path))
    assert caught.value.row == 60_002


def test_missing_and_unexpected_columns(write_text, tmp_path):
    path = write_text("cols.csv", "click,a,x\n1,red,1\n")
    with pytest.raises(DataError, match="missing column") as caught:
        load(path)
    assert (caught.value.row, caught.value.column) == (1, "buy")
    header = (
        "click,purchase,101,121,122,124,125,126,127,128,129,205,206,207,216,508,509,702,853,301"
    )
    for split in ("train", "val", "test"):
        (tmp_path / f"ali_ccp_{split}.csv").write_text(header + ",extra\n" + "0," * 20 + "0\n")
    with pytest.raises(DataError, match="matches no Ali-CCP layout"):
        load_aliccp(str(tmp_path), cache_dir=str(tmp_path / "c"))
    with pytest.raises(DataError, match="unexpected column") as caught:
        load_aliccp(str(tmp_path), layout="aitm20", cache_dir=str(tmp_path / "c"))
    assert (caught.value.row, caught.value.column) == (1, "extra")


@pytest.mark.parametrize(("text", "message"), [("", "empty file"), (HEADER, "no data rows")])
def test_empty_files(write_text, text, message):
    path = write_text("empty.csv", text)
    with pytest.raises(DataError, match=message) as caught:
        load(path)
    assert caught.value.file == path


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load(str(tmp_path / "absent.csv"))


def test_nothing_is_cached_after_an_error(write_text, tmp_path):
    path = write_text("bad.csv", HEADER + GOOD + "2,0,red,1\n")
    with pytest.raises(DataError):
        load(path)
    cache = tmp_path / "bad.csv.cache"
    assert not cache.exists() or not any(p.is_dir() for p in cache.iterdir())
