"""Validation of hyper-parameters: each check names the argument and what was expected."""

from __future__ import annotations

import math
from collections.abc import Sequence


def positive_int(name: str, value: object) -> int:
    """``value`` as an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def layer_sizes(name: str, value: object, *, nonempty: bool = False) -> list[int]:
    """``value`` as a list of hidden-layer widths (integers >= 1; empty unless ``nonempty``)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"{name} must be a list of integers >= 1, got {value!r}")
    if nonempty and not value:
        raise ValueError(f"{name} must list at least one layer width, got {value!r}")
    return [positive_int(f"{name}[{i}]", v) for i, v in enumerate(value)]


def non_negative(name: str, value: object) -> float:
    """``value`` as a finite float >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def dropout_rate(name: str, value: object) -> float:
    """``value`` as a probability in [0, 1)."""
    rate = non_negative(name, value)
    if rate >= 1:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return rate


def one_of(name: str, value: object, options: Sequence[str]) -> str:
    """``value`` as one of the strings in ``options``."""
    if value not in options:
        raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")
    return value  # type: ignore[return-value]


def step_weights(value: object, num_steps: int) -> list[float]:
    """Per-step loss weights w_i: ``None`` for all ones, else ``num_steps`` numbers >= 0."""
    if value is None:
        return [1.0] * num_steps
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"step_weights must be a list of {num_steps} numbers, got {value!r}")
    if len(value) != num_steps:
        raise ValueError(
            f"step_weights must have one weight per step ({num_steps}), got {len(value)}"
        )
    return [non_negative(f"step_weights[{i}]", w) for i, w in enumerate(value)]


def flag(name: str, value: object) -> bool:
    """``value`` as a bool (only True or False are accepted)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return value
