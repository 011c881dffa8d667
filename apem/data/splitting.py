"""Seeded train / validation / test cuts of a permutation (the census README's recipe)."""

from __future__ import annotations

import numpy as np


def permutation_split(
    n: int, seed: int, valid_fraction: float = 0.1, test_fraction: float = 0.1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of train, validation and test, each in permutation order.

    ``perm = default_rng(seed).permutation(n)``; train is ``perm[:int(a n)]`` with
    ``a = 1 - valid_fraction - test_fraction``, validation ``perm[int(a n):int(b n)]`` with
    ``b = 1 - test_fraction``, test the rest. Each array is (rows,) int64.
    """
    if not (0 <= valid_fraction and 0 <= test_fraction and valid_fraction + test_fraction < 1):
        raise ValueError(
            f"split fractions must be >= 0 and sum below 1, got valid={valid_fraction} "
            f"test={test_fraction}"
        )
    perm = np.random.default_rng(seed).permutation(n)
    train_end = int((1.0 - valid_fraction - test_fraction) * n)
    valid_end = int((1.0 - test_fraction) * n)
    return perm[:train_end], perm[train_end:valid_end], perm[valid_end:]
