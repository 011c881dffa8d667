"""On-disk cache of converted splits: .npy matrices (memory-mapped on load) plus JSON metadata.

Layout of one entry ``<root>/<name>-<key>/``::

    schema.json  vocab.json  meta.json
    train/ids.npy  train/labels.npy  [train/dense.npy]   (same for valid/ and test/)

``key`` hashes the source files' absolute paths, sizes and modification times together with
the loader options, so editing or replacing a file (or changing an option) builds a new entry.
``root`` is ``cache_dir`` when given, else ``$APEM_CACHE_DIR``, else ``~/.cache/apem``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict

import numpy as np

from apem.data.errors import DataError
from apem.data.schema import FunnelData, FunnelSplits, Schema
from apem.data.vocabulary import Vocabulary

FORMAT_VERSION = 2
SPLITS = ("train", "valid", "test")


def cache_root(cache_dir: str | None = None) -> str:
    """The directory holding cache entries (see the module docstring)."""
    if cache_dir is not None:
        return os.fspath(cache_dir)
    return os.environ.get("APEM_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "apem"
    )


def entry_path(name: str, files: Sequence[str], options: dict, cache_dir: str | None) -> str:
    """Path of the cache entry for ``files`` converted with ``options``."""
    stats = []
    for path in files:
        info = os.stat(path)
        stats.append([os.path.abspath(path), info.st_size, info.st_mtime_ns])
    blob = json.dumps([FORMAT_VERSION, name, stats, options], sort_keys=True, default=str)
    key = hashlib.sha256(blob.encode()).hexdigest()[:16]
    return os.path.join(cache_root(cache_dir), f"{name}-{key}")


def make_root(directory: str) -> None:
    """Create the cache directory ``directory``; DataError if a file or missing rights stop it."""
    try:
        os.makedirs(directory, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise DataError("the cache directory is a file, not a directory", file=directory) from None
    except OSError as error:
        raise DataError(
            f"cannot create the cache directory ({error.strerror})", file=directory
        ) from None


@contextmanager
def building(path: str) -> Iterator[str]:
    """A scratch directory that becomes ``path`` only if the block completes."""
    scratch = f"{path}.partial-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    try:
        yield scratch
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    if os.path.isdir(path):  # another process finished the same entry first
        shutil.rmtree(scratch, ignore_errors=True)
    else:
        os.replace(scratch, path)


def write_json(path: str, data: dict) -> None:
    with open(path, "w") as handle:
        json.dump(data, handle, indent=1)


def write_schema(directory: str, schema: Schema, vocab: Vocabulary, meta: dict) -> None:
    write_json(os.path.join(directory, "schema.json"), asdict(schema))
    vocab.save(os.path.join(directory, "vocab.json"))
    write_json(os.path.join(directory, "meta.json"), meta)


def open_array(directory: str, split: str, name: str, dtype, shape) -> np.ndarray:
    """A new writable memory-mapped ``<directory>/<split>/<name>.npy``."""
    os.makedirs(os.path.join(directory, split), exist_ok=True)
    return np.lib.format.open_memmap(
        os.path.join(directory, split, f"{name}.npy"), mode="w+", dtype=dtype, shape=shape
    )


def load_splits(path: str) -> FunnelSplits:
    """Memory-map a finished cache entry."""
    with open(os.path.join(path, "schema.json")) as handle:
        fields = json.load(handle)
    schema = Schema(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    with open(os.path.join(path, "meta.json")) as handle:
        meta = json.load(handle)
    parts = {}
    for split in SPLITS:
        arrays = {}
        for name in ("ids", "labels", "dense"):
            file = os.path.join(path, split, f"{name}.npy")
            arrays[name] = np.load(file, mmap_mode="r") if os.path.exists(file) else None
        parts[split] = FunnelData(schema, arrays["ids"], arrays["labels"], arrays["dense"])
    vocab = Vocabulary.load(os.path.join(path, "vocab.json"))
    return FunnelSplits(**parts, vocab=vocab, metadata={**meta, "cache": path})
