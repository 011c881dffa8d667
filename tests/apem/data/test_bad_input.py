"""Every bad input raises DataError naming the file, the 1-based line and the column."""

import gzip
import os
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
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


def random_rows(count: int) -> str:
    """Rows that do not compress to nothing, so that half a gzip stream is a truncated one."""
    rng = np.random.default_rng(0)
    clicks, values = rng.integers(0, 2, count), rng.integers(0, 10**6, count)
    return "".join(f"{c},0,v{v},{v / 7:.3f}\n" for c, v in zip(clicks, values, strict=True))


def gz_truncated(path):
    blob = gzip.compress((HEADER + random_rows(5000)).encode())
    path.write_bytes(blob[: len(blob) // 2])


def gz_garbled(path):
    blob = gzip.compress((HEADER + random_rows(5000)).encode())
    path.write_bytes(blob[:20] + bytes(100) + blob[120:])


def parquet(**columns):
    def write(path):
        pq.write_table(pa.table({"click": [1, 0] * 10, "buy": [0, 0] * 10, **columns}), path)

    return write


def text(content: str, encoding: str = "utf-8"):
    return lambda path: path.write_bytes(content.encode(encoding))


# (file name, writer, load_table options, message, line, column): every bad file a DataError
# naming the file, and the line and column where there is one.
BAD_FILES = [
    ("t.csv.gz", gz_truncated, {}, "corrupt or truncated gzip file", None, None),
    ("g.csv.gz", gz_garbled, {}, "corrupt or truncated gzip file", None, None),
    ("n.csv.gz", text("not gzip\n"), {}, "corrupt or truncated gzip file", None, None),
    ("c.parquet", text("PAR1 not really"), {}, "not a readable Parquet file", None, None),
    ("l.parquet", parquet(a=[[1, 2], [3]] * 10), {}, "list<.*cannot be a categorical", None, "a"),
    (
        "s.parquet",
        parquet(a=pa.array(range(20), pa.timestamp("s"))),
        {"dense": ["a"]},
        r"timestamp\[m?s\] column is not numerical",
        None,
        "a",
    ),
    ("latin.csv", text(HEADER + GOOD + "1,0,caf\xe9,1\n", "latin-1"), {}, "not UTF-8", 5, None),
    ("utf16.csv", text(HEADER + GOOD, "utf-16"), {}, "UTF-16 text", 1, None),
    ("blank.csv", text(HEADER + GOOD + "\n\n2,0,red,1\n"), {}, "non-binary", 7, "click"),
    ("quote.csv", text(HEADER + '1,0,"r\ne\nd",1\n2,0,a,1\n'), {}, "non-binary", 5, "click"),
    ("bom.csv", text("\ufeff" + HEADER + GOOD + "2,0,red,1\n"), {}, "non-binary", 5, "click"),
    ("dup.csv", text("click,buy,a,a\n" + GOOD), {}, r"duplicate column name \(columns 3", 1, "a"),
    ("inf.csv", text(HEADER + GOOD + "1,0,red,inf\n"), {"dense": ["x"]}, "non-finite", 5, "x"),
    (
        "raw.csv",
        text(HEADER + GOOD + "1,0,red,-inf\n"),
        {"dense": ["x"], "dense_mode": "raw"},
        "non-finite value -inf",
        5,
        "x",
    ),
    (
        "big.csv",
        text(HEADER + GOOD + "1,0,red,1e39\n"),
        {"dense": ["x"], "dense_mode": "raw"},
        "beyond float32's range",
        5,
        "x",
    ),
]


@pytest.mark.parametrize(
    ("name", "write", "options", "message", "row", "column"),
    BAD_FILES,
    ids=[case[0] for case in BAD_FILES],
)
def test_bad_files(tmp_path, name, write, options, message, row, column):
    path = tmp_path / name
    write(path)
    with pytest.raises(DataError, match=message) as caught:
        load_table(str(path), ["click", "buy"], cache_dir=str(tmp_path / "cache"), **options)
    assert (caught.value.file, caught.value.row, caught.value.column) == (str(path), row, column)


def make_fifo(path):
    os.mkfifo(path)


def test_what_is_not_a_readable_file_is_named(tmp_path, monkeypatch):
    cases = {"dir.csv": os.mkdir, "fifo.csv": make_fifo}
    messages = {"dir.csv": "is a directory", "fifo.csv": "not a regular file (a FIFO"}
    for name, make in cases.items():
        make(tmp_path / name)
        with pytest.raises(DataError, match=re.escape(messages[name])):
            load(str(tmp_path / name))
    locked = tmp_path / "locked.csv"
    locked.write_text(HEADER + GOOD)
    monkeypatch.setattr(os, "access", lambda path, mode: path != str(locked))  # root reads all
    with pytest.raises(DataError, match=r"cannot read \(permission denied\)"):
        load(str(locked))


def test_extensions_are_case_insensitive_and_header_quotes_are_csv(tmp_path, funnel_frame):
    upper = tmp_path / "LOG.PARQUET"
    funnel_frame.to_parquet(upper)
    splits = load_table(str(upper), ["click", "buy"], cache_dir=str(tmp_path / "c"))
    assert splits.schema.fields == ("a", "b", "x")
    quoted = tmp_path / "q.csv"
    quoted.write_text('click,buy,"a,b",x\n' + GOOD * 4)
    splits = load_table(str(quoted), ["click", "buy"], cache_dir=str(tmp_path / "c"))
    assert splits.schema.fields == ("a,b", "x")


def test_parquet_timestamps_and_booleans_are_categorical_fields(tmp_path):
    path = tmp_path / "typed.parquet"
    stamps = pa.array([i % 3 for i in range(40)], pa.timestamp("s"))
    flags = pa.array([i % 2 == 0 for i in range(40)])
    pq.write_table(
        pa.table({"click": [1, 0] * 20, "buy": [0, 0] * 20, "a": stamps, "b": flags}), path
    )
    splits = load_table(str(path), ["click", "buy"], cache_dir=str(tmp_path / "c"))
    assert splits.schema.fields == ("a", "b") and splits.schema.vocab_sizes == (4, 3)


def test_a_bom_is_not_part_of_the_first_name(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(("\ufeff" + HEADER + GOOD * 4).encode())
    assert load(str(path)).schema.steps == ("click", "buy")


@pytest.mark.parametrize(
    ("labels", "dense", "message"),
    [
        (["click", "click"], [], r"labels \(--labels\) name \['click'\] more than once"),
        (["click", "buy"], ["x", "x"], r"dense \(--dense\) name \['x'\] more than once"),
        (["click", "buy"], ["buy"], r"\['buy'\] cannot be both a label"),
    ],
)
def test_columns_named_twice_are_refused(write_text, labels, dense, message):
    path = write_text("t.csv", HEADER + GOOD)
    with pytest.raises(ValueError, match=message):
        load_table(path, labels, dense=dense, cache_dir=path + ".cache")


def test_a_cache_dir_that_is_a_file_is_a_data_error(write_text, tmp_path):
    path = write_text("t.csv", HEADER + GOOD)
    blocker = tmp_path / "cache-file"
    blocker.write_text("")
    with pytest.raises(DataError, match="the cache directory is a file") as caught:
        load_table(path, ["click", "buy"], cache_dir=str(blocker))
    assert caught.value.file == str(blocker)


def open_files() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files in /proc")
def test_a_data_error_during_conversion_leaves_no_file_open(write_text):
    path = write_text("bad.csv", HEADER + GOOD + "2,0,red,1\n")
    before = open_files()
    with pytest.raises(DataError) as caught:
        load(path)
    assert caught.value.row == 5
    assert open_files() == before  # while the traceback keeps the converter's frames alive
