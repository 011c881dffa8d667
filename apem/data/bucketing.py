"""Log-round bucketing of numerical features into categorical values (DESIGN.md §2)."""

from __future__ import annotations

import numpy as np


def log_round(values: np.ndarray) -> np.ndarray:
    """Bucket numbers: ``floor(ln(x)^2)`` for x > 2, else ``int(x)`` (truncation toward 0).

    Args:
        values: (n,) finite floats.

    Returns:
        (n,) int64 buckets.
    """
    values = np.asarray(values, dtype=np.float64)
    large = values > 2
    buckets = np.trunc(values)
    buckets[large] = np.floor(np.log(values[large]) ** 2)
    return buckets.astype(np.int64)
