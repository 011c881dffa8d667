"""Chunked reading of CSV / Parquet files, with every problem located by file, line and column.

Files are read by pyarrow in blocks of rows (never a Python loop over rows). CSV cells are
read as strings and converted by the column helpers below, which raise ``DataError`` naming the
first offending cell.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from apem.data.errors import DataError

BLOCK_BYTES = 16 << 20
PARQUET_BATCH_ROWS = 1 << 20


@dataclass
class Chunk:
    """Consecutive data rows of one file.

    Attributes:
        path: the file.
        first_line: 1-based line number of the chunk's first row (row number for Parquet).
        columns: column name -> (m,) pyarrow array (strings for CSV).
    """

    path: str
    first_line: int
    columns: dict[str, pa.Array]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def error(
        self, message: str, offset: int | None = None, column: str | None = None
    ) -> DataError:
        """A ``DataError`` at row ``offset`` (0-based within the chunk) of ``column``."""
        row = None if offset is None else self.first_line + int(offset)
        return DataError(message, file=self.path, row=row, column=column)


def _open_text(path: str):
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def _first_line(path: str) -> bytes:
    with _open_text(path) as handle:
        return handle.readline()


def read_header(path: str, delimiter: str = ",") -> list[str]:
    """The column names on the first line of a CSV (quotes and spaces stripped)."""
    line = _first_line(path).decode().rstrip("\r\n")
    if not line.strip():
        raise DataError("empty file (no header line)", file=path, row=1)
    return [name.strip().strip('"') for name in line.split(delimiter)]


def _find_line(path: str, text: str) -> tuple[int, bool]:
    """1-based number of the first line equal to ``text``, and whether it is the file's last."""
    target = text.encode().rstrip(b"\r\n")
    found = None
    with _open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if found is None and line.rstrip(b"\r\n") == target:
                found = number
            last = number
    return (found or last), found == last


def read_chunks(
    path: str,
    *,
    expected: Sequence[str] | None = None,
    names: Sequence[str] | None = None,
    delimiter: str = ",",
    block_bytes: int = BLOCK_BYTES,
) -> Iterator[Chunk]:
    """Yield the rows of a CSV (optionally gzipped) or Parquet file in chunks.

    Args:
        path: ``.csv``/``.txt``/``.gz`` (CSV with a header line unless ``names`` is given) or
            ``.parquet``/``.pq``.
        expected: the exact set of columns the file must hold (header checked against it), or
            None to accept any header.
        names: column names of a header-less CSV.
        delimiter: CSV field separator (one character).
        block_bytes: CSV bytes per chunk.

    Raises:
        DataError: missing file, empty file, missing/extra columns, a line with the wrong number
            of fields (a truncated last line included), or no data rows.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError("no such file", file=path)
    if os.path.getsize(path) == 0:
        raise DataError("empty file", file=path)
    if path.endswith((".parquet", ".pq")):
        chunks = _parquet_chunks(path, expected)
    else:
        chunks = _csv_chunks(path, expected, names, delimiter, block_bytes)
    seen = False
    for chunk in chunks:
        if len(chunk):
            seen = True
            yield chunk
    if not seen:
        raise DataError("no data rows", file=path)


def _check_header(path: str, header: Sequence[str], expected: Sequence[str] | None) -> None:
    if expected is None:
        return
    missing = [c for c in expected if c not in header]
    if missing:
        raise DataError(
            f"missing column (header has {list(header)})", file=path, row=1, column=missing[0]
        )
    extra = [c for c in header if c not in expected]
    if extra:
        raise DataError(
            f"unexpected column (expected {list(expected)})", file=path, row=1, column=extra[0]
        )


def _csv_chunks(path, expected, names, delimiter, block_bytes) -> Iterator[Chunk]:
    if names is None:
        header = read_header(path, delimiter)
        _check_header(path, header, expected)
        skip, line = 1, 2
    else:
        header, skip, line = list(names), 0, 1
    invalid = []

    def on_invalid(row) -> str:
        invalid.append(row)
        return "skip"

    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(
            column_names=header, skip_rows=skip, block_size=block_bytes, use_threads=True
        ),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header}, strings_can_be_null=False
        ),
    )
    for batch in reader:
        if invalid:
            raise _invalid_row(path, header, invalid[0])
        yield Chunk(path, line, {name: batch.column(i) for i, name in enumerate(header)})
        line += batch.num_rows
    if invalid:
        raise _invalid_row(path, header, invalid[0])


def _invalid_row(path: str, header: Sequence[str], row) -> DataError:
    number, last = _find_line(path, row.text)
    if row.actual_columns < row.expected_columns:
        column = header[row.actual_columns] if row.actual_columns < len(header) else None
        what = "truncated last line" if last else "missing column values"
        message = f"{what}: {row.actual_columns} fields where {row.expected_columns} are expected"
    else:
        column = f"#{row.expected_columns + 1} (beyond the {row.expected_columns} named)"
        message = (
            f"extra column: {row.actual_columns} fields where {row.expected_columns} are expected"
        )
    return DataError(message, file=path, row=number, column=column)


def _parquet_chunks(path: str, expected) -> Iterator[Chunk]:
    handle = pq.ParquetFile(path)
    header = handle.schema_arrow.names
    _check_header(path, header, expected)
    line = 1
    for batch in handle.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        yield Chunk(path, line, {name: batch.column(i) for i, name in enumerate(header)})
        line += batch.num_rows


def categorical(chunk: Chunk, column: str) -> pa.Array:
    """Column ``column`` as (m,) trimmed strings; an empty or null cell raises DataError."""
    values = chunk.columns[column]
    if not pa.types.is_string(values.type):
        values = pc.cast(values, pa.string())
    values = pc.utf8_trim_whitespace(values)
    empty = pc.or_kleene(pc.is_null(values), pc.equal(values, ""))
    if pc.any(empty).as_py():
        first = int(np.flatnonzero(empty.to_numpy(zero_copy_only=False))[0])
        raise chunk.error("missing value (empty cell)", first, column)
    return values


def numeric(chunk: Chunk, column: str) -> np.ndarray:
    """Column ``column`` as (m,) float64; empty, NaN or non-numeric cells raise DataError."""
    values = chunk.columns[column]
    try:
        numbers = pc.cast(values, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        text = pd.Series(values.to_numpy(zero_copy_only=False), dtype=object)
        coerced = pd.to_numeric(text.str.strip(), errors="coerce")
        bad = np.flatnonzero(coerced.isna().to_numpy() & (text.str.strip() != "").to_numpy())
        if bad.size:
            raise chunk.error(f"non-numeric value {text.iloc[bad[0]]!r}", bad[0], column) from None
        numbers = pa.array(coerced.to_numpy(dtype=np.float64), from_pandas=True)
    out = numbers.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    missing = np.isnan(out)
    if missing.any():
        raise chunk.error("missing value (empty or NaN)", int(np.flatnonzero(missing)[0]), column)
    return out


def binary(chunk: Chunk, column: str) -> np.ndarray:
    """Label column ``column`` as (m,) uint8; anything but 0/1 raises DataError."""
    values = numeric(chunk, column)
    bad = np.flatnonzero((values != 0) & (values != 1))
    if bad.size:
        raise chunk.error(
            f"non-binary label {values[bad[0]]:g} (labels are 0 or 1)", bad[0], column
        )
    return values.astype(np.uint8)


def funnel_violations(labels: np.ndarray) -> np.ndarray:
    """(m,) bool: rows of ``labels`` (m, steps) with a step 1 after a step 0."""
    return (np.diff(labels.astype(np.int8), axis=1) > 0).any(axis=1)


def check_funnel(chunk: Chunk, labels: np.ndarray, steps: Sequence[str]) -> None:
    """Raise DataError at the first row of ``labels`` (m, steps) breaking the funnel order."""
    bad = np.flatnonzero(funnel_violations(labels))
    if bad.size:
        row = labels[bad[0]]
        later = int(np.flatnonzero(np.diff(row.astype(np.int8)) > 0)[0]) + 1
        raise chunk.error(
            f"step {steps[later]!r} is 1 while earlier step {steps[later - 1]!r} is 0 "
            "(pass drop_inconsistent=True to drop such rows)",
            bad[0],
            steps[later],
        )
