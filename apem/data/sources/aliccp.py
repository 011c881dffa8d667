"""Ali-CCP in the preprocessed CSV layouts of public recsys pipelines.

- ``aitm20``: the AITM reference pipeline's 20 columns, ``click,purchase`` then 18
  single-valued categorical fields (ids as integers).
- ``rechub33``: torch-rechub's 33 columns, ``click,purchase``, 23 sparse fields and 8 dense
  ``D*`` fields; the dense fields are log-round bucketed into categorical fields by default
  (``dense="bucket"``) or kept as raw floats (``dense="raw"``).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from functools import partial

from apem.data.errors import DataError
from apem.data.pipeline import Layout, build_splits, by_file, parse_columns
from apem.data.reading import read_chunks, read_header
from apem.data.schema import FunnelSplits

STEPS = ("click", "purchase")
AITM_FIELDS = (
    "101", "121", "122", "124", "125", "126", "127", "128", "129",
    "205", "206", "207", "216", "508", "509", "702", "853", "301",
)  # fmt: skip
RECHUB_SPARSE = (
    "101", "121", "122", "124", "125", "126", "127", "128", "129", "205", "206", "207", "210",
    "216", "508", "509", "702", "853", "301", "109_14", "110_14", "127_14", "150_14",
)  # fmt: skip
RECHUB_DENSE = ("D109_14", "D110_14", "D127_14", "D150_14", "D508", "D509", "D702", "D853")
LAYOUTS = {
    "aitm20": STEPS + AITM_FIELDS,
    "rechub33": STEPS + RECHUB_SPARSE + RECHUB_DENSE,
}
SPLIT_WORDS = ("train", "val", "test")


def find_files(directory: str) -> list[str]:
    """The ``*train*.csv``, ``*val*.csv`` and ``*test*.csv`` files of ``directory``."""
    found = []
    for word in SPLIT_WORDS:
        matches = sorted(glob.glob(os.path.join(directory, f"*{word}*.csv*")))
        if len(matches) != 1:
            raise DataError(
                f"expected one *{word}*.csv file, found {[os.path.basename(m) for m in matches]} "
                "(choose with files=(train, valid, test), on the command line "
                '--data-option files=["TRAIN","VALID","TEST"])',
                file=directory,
            )
        found.append(matches[0])
    return found


def detect_layout(path: str) -> str:
    """``aitm20`` or ``rechub33``, from the header of ``path``."""
    header = set(read_header(path))
    for name, columns in LAYOUTS.items():
        if header == set(columns):
            return name
    raise DataError(f"header matches no Ali-CCP layout ({', '.join(LAYOUTS)})", file=path, row=1)


def layout_of(name: str, dense: str) -> Layout:
    """The ``Layout`` of Ali-CCP layout ``name`` with dense fields handled per ``dense``."""
    if name == "aitm20":
        return Layout(STEPS, AITM_FIELDS)
    if dense == "bucket":
        return Layout(STEPS, RECHUB_SPARSE + RECHUB_DENSE, bucketed=RECHUB_DENSE)
    return Layout(STEPS, RECHUB_SPARSE, dense=RECHUB_DENSE)


def load_aliccp(
    path: str,
    *,
    layout: str = "auto",
    dense: str = "bucket",
    files: Sequence[str] | None = None,
    min_count: int = 1,
    drop_inconsistent: bool = False,
    cache_dir: str | None = None,
) -> FunnelSplits:
    """Load Ali-CCP's train / validation / test CSVs.

    Args:
        path: directory holding ``*train*.csv``, ``*val*.csv`` and ``*test*.csv``.
        layout: ``"aitm20"``, ``"rechub33"`` or ``"auto"`` (from the train file's header).
        dense: ``"bucket"`` or ``"raw"``: what becomes of rechub33's ``D*`` fields.
        files: the three files (train, valid, test) explicitly, instead of searching ``path``.
        min_count: ids seen fewer times in the train file map to the OOV id 0.
        drop_inconsistent: drop purchase-without-click rows instead of raising.
        cache_dir: root of the cache (``apem.data.cache``).
    """
    files = list(files) if files is not None else find_files(os.fspath(path))
    if len(files) != 3:
        raise ValueError(f"files must be (train, valid, test), got {len(files)} paths")
    name = detect_layout(files[0]) if layout == "auto" else layout
    if name not in LAYOUTS:
        raise ValueError(f"unknown Ali-CCP layout {layout!r}; valid: auto, {', '.join(LAYOUTS)}")
    if dense not in ("bucket", "raw"):
        raise ValueError(f"dense must be 'bucket' or 'raw', got {dense!r}")
    spec = layout_of(name, dense)
    return build_splits(
        f"aliccp-{name}",
        files,
        spec,
        read=partial(read_chunks, expected=LAYOUTS[name]),
        parse=partial(parse_columns, layout=spec, drop_inconsistent=drop_inconsistent),
        split=by_file((0, 1, 2)),
        min_count=min_count,
        options={"layout": spec.__dict__, "drop_inconsistent": drop_inconsistent},
        cache_dir=cache_dir,
    )
