"""Kernel choice: one enum passed from the model down to every op."""

from __future__ import annotations

import functools
from enum import Enum

import torch


class Backend(str, Enum):
    """Which implementation runs an op.

    ``TRITON``: the fused kernels (CUDA tensors, or CPU tensors under ``TRITON_INTERPRET=1``).
    ``TORCH``: the reference composition of PyTorch ops, any device.
    ``AUTO``: ``TRITON`` for CUDA tensors when triton imports, ``TORCH`` otherwise.
    """

    AUTO = "auto"
    TRITON = "triton"
    TORCH = "torch"

    @classmethod
    def parse(cls, value: Backend | str) -> Backend:
        """``value`` (enum or its string value) as a ``Backend``, or a ValueError listing them:
        the one check every backend argument and attribute goes through."""
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(repr(b.value) for b in cls)
            raise ValueError(f"backend must be one of {valid}, got {value!r}") from None


@functools.cache
def triton_available() -> bool:
    """True when ``import triton`` works (it is imported lazily, never at package import)."""
    try:
        import triton  # noqa: F401
    except Exception:  # a broken driver can raise more than ImportError
        return False
    return True


class BackendChoice:
    """Mixin for modules: a ``backend`` attribute, validated when set, that forward passes on."""

    @property
    def backend(self) -> Backend:
        """Which implementation ``forward`` runs; set with a ``Backend`` or its string value."""
        return self._backend

    @backend.setter
    def backend(self, value: Backend | str) -> None:
        self._backend = Backend.parse(value)


def resolve_backend(backend: Backend | str, *tensors: torch.Tensor) -> Backend:
    """Turn ``backend`` (enum or its string value) into TRITON or TORCH for these tensors."""
    choice = Backend.parse(backend)
    if choice is Backend.AUTO:
        on_cuda = any(t.is_cuda for t in tensors)
        return Backend.TRITON if on_cuda and triton_available() else Backend.TORCH
    if choice is Backend.TRITON and not triton_available():
        raise RuntimeError("backend='triton' was requested but triton does not import here")
    return choice
