"""glibc's malloc settings (apem.train.allocator), each in a fresh interpreter: they are
process-wide."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from apem.train.allocator import on_glibc

# Allocate and free two 24 MiB blocks five times; print whether the settings took and the page
# faults of rounds 2-5. With glibc's defaults the 48 MiB of free heap top is trimmed each round
# (trim threshold twice the dynamic mmap threshold), so every round faults its pages in again.
PROBE = """
import resource, sys
from apem.train.allocator import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "tuned" else None
faults = []
for _ in range(5):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [bytearray(24 << 20), bytearray(24 << 20)]
    del blocks
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(applied, sum(faults[1:]))
"""

PAGES_PER_ROUND = 2 * (24 << 20) // 4096


pytestmark = pytest.mark.skipif(not on_glibc(), reason="glibc's malloc only")


def _probe(mode: str, **env: str) -> tuple[str, int]:
    own = {
        k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES" and not k.startswith("MALLOC_")
    }
    environment = own | env
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=True,
    )
    applied, faults = done.stdout.split()
    return applied, int(faults)


def test_freed_memory_is_reused_instead_of_faulted_in_again():
    applied, tuned = _probe("tuned")
    assert applied == "True"
    assert tuned < 0.1 * 4 * PAGES_PER_ROUND
    _, plain = _probe("plain")
    assert plain > 0.5 * 4 * PAGES_PER_ROUND


def test_the_users_own_malloc_settings_are_left_alone():
    applied, faults = _probe("tuned", GLIBC_TUNABLES="glibc.malloc.trim_threshold=1048576")
    assert applied == "False"
    assert faults > 0.5 * 4 * PAGES_PER_ROUND
