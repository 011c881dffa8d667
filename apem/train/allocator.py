"""glibc's malloc settings for a CPU training process.

A training step on the CPU allocates and frees the same few hundred megabytes of activations and
gradients every step. With glibc's defaults, blocks above a dynamic threshold are mmap-ed and
unmapped, and free memory at the top of the heap is given back to the kernel, so steps keep
touching fresh pages: a page fault each. docs/design.md ("The CPU allocator") has the measurements.
"""

from __future__ import annotations

import ctypes
import os

# mallopt's parameter numbers (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3

SETTINGS = {
    _M_MMAP_THRESHOLD: 32 << 20,  # blocks under 32 MiB come from the heap (glibc's dynamic cap)
    _M_TRIM_THRESHOLD: 256 << 20,  # keep up to 256 MiB of free heap instead of returning it
    _M_TOP_PAD: 64 << 20,  # grow the heap 64 MiB at a time
}


def on_glibc() -> bool:
    """Whether this process runs on glibc (whose malloc ``mallopt`` tunes)."""
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (AttributeError, ValueError):
        return False


def _user_tuned() -> bool:
    """Whether the environment sets glibc's malloc options itself (then they are left alone)."""
    return "GLIBC_TUNABLES" in os.environ or any(name.startswith("MALLOC_") for name in os.environ)


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep freed memory for reuse (``SETTINGS``); process-wide, call it once
    at start-up, before the first large tensor. Returns whether the settings were applied: False
    off glibc, or where ``GLIBC_TUNABLES`` or a ``MALLOC_*`` variable is set."""
    if not on_glibc() or _user_tuned():
        return False
    mallopt = ctypes.CDLL(None).mallopt
    return all(mallopt(option, value) == 1 for option, value in SETTINGS.items())
