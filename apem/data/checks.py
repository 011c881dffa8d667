"""Whether splits can train a model: every split has rows, validation can rank models."""

from __future__ import annotations

import warnings

import numpy as np

from apem.data.errors import DataError
from apem.data.schema import FunnelSplits

SPLITS = ("train", "valid", "test")


def _single_class_steps(labels: np.ndarray, steps: tuple[str, ...]) -> list[str]:
    positives = np.asarray(labels, dtype=np.int64).sum(axis=0)
    return [s for s, count in zip(steps, positives, strict=True) if count in (0, len(labels))]


def check_trainable(splits: FunnelSplits) -> None:
    """Raise DataError for splits no training can use; warn where training can still go on.

    Errors: a split without rows; a validation split on which every step has a single class
    (no AUC, so no model selection). Warnings: a step with a single class in a split (its
    AUC there is undefined).
    """
    sizes = {name: len(getattr(splits, name)) for name in SPLITS}
    empty = [name for name, n in sizes.items() if n == 0]
    if empty:
        shown = " / ".join(f"{n:,}" for n in sizes.values())
        raise DataError(
            f"the {' and '.join(empty)} split{'s' if len(empty) > 1 else ''} "
            f"{'have' if len(empty) > 1 else 'has'} no rows ({shown} rows in train / valid / "
            "test): training needs rows in all three (more data, or other split fractions)",
            file=splits.metadata.get("files", [None])[0],
        )
    steps = splits.schema.steps
    for name in SPLITS:
        single = _single_class_steps(getattr(splits, name).labels, steps)
        if name == "valid" and len(single) == len(steps):
            raise DataError(
                f"no step has both classes in the validation split ({sizes['valid']:,} rows), "
                "so no validation AUC can pick the best epoch: more data, or a larger "
                "valid_fraction",
                file=splits.metadata.get("files", [None])[0],
            )
        if single:
            warnings.warn(
                f"the {name} split ({sizes[name]:,} rows) has a single class for step(s) "
                f"{single}: their AUC there is undefined",
                stacklevel=3,
            )
