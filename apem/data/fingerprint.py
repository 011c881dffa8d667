"""Fingerprints of a dataset, so that a checkpoint can tell whether it meets its training data.

A fingerprint holds the row count of every split, a SHA-256 of a bounded sample of the split
arrays (``SAMPLE_ROWS`` evenly spaced rows of ids, labels and dense values of each split), and
for each source file its size, modification time and a SHA-256 of ``SAMPLE_BLOCKS`` evenly
spaced blocks of its bytes (the first and last included). Two datasets differ when their row
counts or array samples differ; file facts only explain how. A change that keeps every count
and every sampled row (an edited cell in an unsampled row that leaves the vocabularies alone)
is not seen.
"""

from __future__ import annotations

import hashlib
import os
from datetime import datetime, timezone
from typing import Any

import numpy as np

from apem.data.schema import FunnelData, FunnelSplits

SAMPLE_ROWS = 4096
SAMPLE_BLOCKS = 16
BLOCK_BYTES = 1 << 16
SPLITS = ("train", "valid", "test")


def _sample_rows(data: FunnelData) -> np.ndarray:
    n = len(data)
    return np.unique(np.linspace(0, n - 1, min(n, SAMPLE_ROWS)).astype(np.int64))


def _array_digest(splits: FunnelSplits) -> str:
    digest = hashlib.sha256()
    for name in SPLITS:
        data = getattr(splits, name)
        rows = _sample_rows(data)
        for array in (data.ids, data.labels, data.dense):
            if array is not None:
                sample = np.ascontiguousarray(np.asarray(array)[rows])
                digest.update(f"{name}{sample.dtype}{array.shape}".encode())
                digest.update(sample.tobytes())
    return digest.hexdigest()


def file_fingerprint(path: str) -> dict[str, Any]:
    """Size, modification time (ns) and sampled-content SHA-256 of the file ``path``."""
    info = os.stat(path)
    digest = hashlib.sha256()
    size = info.st_size
    starts = np.unique(np.linspace(0, max(size - BLOCK_BYTES, 0), SAMPLE_BLOCKS).astype(np.int64))
    with open(path, "rb") as handle:
        for start in starts:
            handle.seek(int(start))
            digest.update(handle.read(BLOCK_BYTES))
    return {
        "path": os.path.abspath(path),
        "size": size,
        "mtime_ns": info.st_mtime_ns,
        "sample_sha256": digest.hexdigest(),
    }


def fingerprint(splits: FunnelSplits) -> dict[str, Any]:
    """The fingerprint of ``splits`` (see the module docstring); JSON-ready."""
    files = splits.metadata.get("files", [])
    return {
        "rows": {name: len(getattr(splits, name)) for name in SPLITS},
        "sample_sha256": _array_digest(splits),
        "files": [file_fingerprint(f) for f in files if os.path.isfile(f)],
    }


def _when(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _file_changes(saved: list[dict], current: list[dict]) -> list[str]:
    now = {f["path"]: f for f in current}
    changes = []
    for before in saved:
        after = now.get(before["path"])
        if after is None:
            changes.append(f"{before['path']} is gone")
            continue
        facts = []
        if after["size"] != before["size"]:
            facts.append(f"size {before['size']:,} -> {after['size']:,} bytes")
        if after["mtime_ns"] != before["mtime_ns"]:
            facts.append(f"modified {_when(before['mtime_ns'])} -> {_when(after['mtime_ns'])}")
        if after["sample_sha256"] != before["sample_sha256"]:
            facts.append("sampled content differs")
        if facts:
            changes.append(f"{before['path']}: {', '.join(facts)}")
    saved_paths = {f["path"] for f in saved}
    changes += [f"{path} is new" for path in now if path not in saved_paths]
    return changes


def fingerprint_difference(saved: dict[str, Any], current: dict[str, Any]) -> str | None:
    """What differs between two fingerprints' data (None when the data are the same)."""
    rows = [
        f"{name} rows {saved['rows'][name]:,} -> {current['rows'][name]:,}"
        for name in SPLITS
        if saved["rows"][name] != current["rows"][name]
    ]
    if not rows and saved["sample_sha256"] == current["sample_sha256"]:
        return None
    facts = rows or ["the sampled rows differ"]
    facts += _file_changes(saved.get("files", []), current.get("files", []))
    return "; ".join(facts)
