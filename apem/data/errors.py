"""The one exception every loader raises for bad input, pointing at the offending cell."""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data, located as precisely as the reader can.

    Attributes:
        file: path of the offending file, or None.
        row: 1-based line number in ``file`` (1 is the header of a CSV with one; for Parquet,
            the 1-based row number), or None when the problem is not one row's.
        column: the offending column's name, or None.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.file = file
        self.row = row
        self.column = column
        self.reason = message
        where = [str(file)] if file is not None else []
        if row is not None:
            where.append(f"line {row}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
