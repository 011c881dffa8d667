"""Chunked reading of CSV / Parquet files, with every problem located by file, line and column.

Files are read by pyarrow in blocks of rows (never a Python loop over rows). CSV cells are
read as strings and converted by the column helpers below, which raise ``DataError`` naming the
first offending cell.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import stat
import zlib
from collections.abc import Callable, Iterator, Sequence
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
PARQUET_SUFFIXES = (".parquet", ".pq")
FLOAT32_MAX = float(np.finfo(np.float32).max)
READ_ERRORS = (OSError, EOFError, zlib.error, UnicodeDecodeError, pa.ArrowException)


@dataclass
class Chunk:
    """Consecutive data rows of one file.

    Attributes:
        path: the file.
        first_line: 1-based line number of the chunk's first row, counting one line per row
            (row number for Parquet).
        columns: column name -> (m,) pyarrow array (strings for CSV).
        locate: maps such a count to the physical line (blank lines and quoted line breaks
            included); called only to report an error. None: the count is the line.
    """

    path: str
    first_line: int
    columns: dict[str, pa.Array]
    locate: Callable[[int], int] | None = None

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def error(
        self, message: str, offset: int | None = None, column: str | None = None
    ) -> DataError:
        """A ``DataError`` at row ``offset`` (0-based within the chunk) of ``column``."""
        row = None if offset is None else self.first_line + int(offset)
        if row is not None and self.locate is not None:
            row = self.locate(row)
        return DataError(message, file=self.path, row=row, column=column)


def is_parquet(path: str) -> bool:
    """Whether ``path`` names a Parquet file (by its suffix, in any case)."""
    return path.lower().endswith(PARQUET_SUFFIXES)


def _open_binary(path: str):
    return gzip.open(path, "rb") if path.lower().endswith(".gz") else open(path, "rb")


def check_readable(path: str) -> None:
    """Raise DataError unless ``path`` is a readable, non-empty regular file."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise DataError("no such file", file=path) from None
    except OSError as error:
        raise DataError(f"cannot read ({error.strerror})", file=path) from None
    if stat.S_ISDIR(info.st_mode):
        raise DataError("is a directory, expected a file", file=path)
    if not stat.S_ISREG(info.st_mode):
        raise DataError("not a regular file (a FIFO, socket or device)", file=path)
    if not os.access(path, os.R_OK):
        raise DataError("cannot read (permission denied)", file=path)
    if info.st_size == 0:
        raise DataError("empty file", file=path)


def _first_invalid_utf8(path: str) -> DataError | None:
    """A DataError at the first line of ``path`` that is not UTF-8, or None."""
    with _open_binary(path) as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                return DataError(
                    f"not UTF-8 text (byte 0x{line[error.start]:02x} at character "
                    f"{error.start + 1}); save the file as UTF-8",
                    file=path,
                    row=number,
                )
    return None


def _read_error(path: str, error: Exception) -> DataError:
    """The DataError for a failure of the underlying reader on ``path``."""
    if is_parquet(path):
        return DataError(f"not a readable Parquet file ({error})", file=path)
    gzipped = path.lower().endswith(".gz")
    if gzipped and isinstance(error, (OSError, EOFError, zlib.error)):
        return DataError(f"corrupt or truncated gzip file ({error})", file=path)
    try:
        located = _first_invalid_utf8(path)
    except READ_ERRORS as inner:
        return DataError(f"cannot read ({inner})", file=path)
    return located or DataError(f"cannot read ({error})", file=path)


def read_header(path: str, delimiter: str = ",") -> list[str]:
    """The column names on the first line of a CSV (CSV quoting honoured, spaces stripped).

    Raises:
        DataError: an unreadable file, an empty first line, text that is not UTF-8, or a
            column name given twice.
    """
    check_readable(path)
    try:
        with _open_binary(path) as handle:
            raw = handle.readline()
    except READ_ERRORS as error:
        raise _read_error(path, error) from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError("UTF-16 text; save the file as UTF-8", file=path, row=1)
    try:
        line = raw.decode("utf-8-sig").rstrip("\r\n")
    except UnicodeDecodeError:
        raise _read_error(path, ValueError("header")) from None
    if not line.strip():
        raise DataError("empty file (no header line)", file=path, row=1)
    header = [name.strip() for name in next(csv.reader([line], delimiter=delimiter))]
    check_unique(path, header)
    return header


def check_unique(path: str, header: Sequence[str]) -> None:
    """Raise DataError (line 1) at the first column name that appears twice."""
    seen: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if name in seen:
            raise DataError(
                f"duplicate column name (columns {seen[name]} and {position})",
                file=path,
                row=1,
                column=name,
            )
        seen[name] = position


def _physical_line(path: str, delimiter: str, header_rows: int, count: int) -> int:
    """The line where data row number ``count`` (counting one line per row) starts."""
    target = count - header_rows - 1  # 0-based data row
    with _open_binary(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")
        reader = csv.reader(text, delimiter=delimiter)
        for _ in range(header_rows):
            next(reader, None)
        index, start = 0, reader.line_num + 1
        for record in reader:
            if record:  # pyarrow skips empty lines
                if index == target:
                    return start
                index += 1
            start = reader.line_num + 1
    return count


def _find_line(path: str, text: str) -> tuple[int, bool]:
    """1-based number of the first line equal to ``text``, and whether it is the file's last."""
    target = text.encode().rstrip(b"\r\n")
    found = None
    with _open_binary(path) as handle:
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
            ``.parquet``/``.pq`` (suffixes in any case).
        expected: the exact set of columns the file must hold (header checked against it), or
            None to accept any header.
        names: column names of a header-less CSV.
        delimiter: CSV field separator (one character).
        block_bytes: CSV bytes per chunk.

    Raises:
        DataError: a missing, unreadable, empty, corrupt or non-UTF-8 file, missing, extra or
            duplicate columns, a line with the wrong number of fields (a truncated last line
            included), or no data rows.
    """
    path = os.fspath(path)
    check_readable(path)
    if is_parquet(path):
        chunks = _parquet_chunks(path, expected)
    else:
        chunks = _csv_chunks(path, expected, names, delimiter, block_bytes)
    seen = False
    try:
        for chunk in chunks:
            if len(chunk):
                seen = True
                yield chunk
    except DataError:
        raise
    except READ_ERRORS as error:
        raise _read_error(path, error) from None
    if not seen:
        raise DataError("no data rows", file=path)


def _check_header(path: str, header: Sequence[str], expected: Sequence[str] | None) -> None:
    check_unique(path, header)
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

    def locate(count: int) -> int:
        return _physical_line(path, delimiter, skip, count)

    # gzip through Python's module, which (unlike pyarrow's) raises on a truncated stream
    source = _open_binary(path) if path.lower().endswith(".gz") else path
    reader = pacsv.open_csv(
        source,
        read_options=pacsv.ReadOptions(
            column_names=header, skip_rows=skip, block_size=block_bytes, use_threads=True
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=delimiter, newlines_in_values=True, invalid_row_handler=on_invalid
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            null_values=[],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    try:
        for batch in reader:
            if invalid:
                raise _invalid_row(path, header, invalid[0])
            columns = {name: batch.column(i) for i, name in enumerate(header)}
            yield Chunk(path, line, columns, locate)
            line += batch.num_rows
    finally:
        if source is not path:
            source.close()
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
    """Column ``column`` as (m,) trimmed strings; an empty or null cell raises DataError.

    Strings, numbers, booleans, dates and times are categories (their text); nested or binary
    columns raise DataError.
    """
    values = chunk.columns[column]
    if not pa.types.is_string(values.type):
        try:
            values = pc.cast(values, pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise chunk.error(
                f"a {values.type} column cannot be a categorical field (strings, numbers, "
                "booleans, dates and times can)",
                column=column,
            ) from None
    values = pc.utf8_trim_whitespace(values)
    empty = pc.or_kleene(pc.is_null(values), pc.equal(values, ""))
    if pc.any(empty).as_py():
        first = int(np.flatnonzero(empty.to_numpy(zero_copy_only=False))[0])
        raise chunk.error("missing value (empty cell)", first, column)
    return values


def numeric(chunk: Chunk, column: str) -> np.ndarray:
    """Column ``column`` as (m,) float64; empty, NaN, infinite or non-numeric cells raise."""
    values = chunk.columns[column]
    if not (pa.types.is_string(values.type) or _is_number(values.type)):
        raise chunk.error(f"a {values.type} column is not numerical", column=column)
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
    infinite = np.flatnonzero(np.isinf(out))
    if infinite.size:
        raise chunk.error(f"non-finite value {out[infinite[0]]}", infinite[0], column)
    return out


def _is_number(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)


def float32_column(chunk: Chunk, column: str) -> np.ndarray:
    """A raw dense column as (m,) float32; ``numeric``'s errors, or a value beyond float32."""
    values = numeric(chunk, column)
    beyond = np.flatnonzero(np.abs(values) > FLOAT32_MAX)
    if beyond.size:
        raise chunk.error(
            f"value {values[beyond[0]]:g} is beyond float32's range (±{FLOAT32_MAX:.3g})",
            beyond[0],
            column,
        )
    return values.astype(np.float32)


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
            "(drop such rows with drop_inconsistent=True, on the command line "
            "--data-option drop_inconsistent=true)",
            bad[0],
            steps[later],
        )
