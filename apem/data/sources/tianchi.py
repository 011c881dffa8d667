"""Convert the raw Tianchi Ali-CCP dump into the 20-column AITM layout.

Raw layout (comma separated, no header):

- ``sample_skeleton_{train,test}.csv``: ``sample_id, click, buy, common_index, feature_count,
  features``;
- ``common_features_{train,test}.csv``: ``common_index, feature_count, features``;

where ``features`` is ``field\\x02id\\x03value`` items joined by ``\\x01``. A sample's fields are
its own features plus those of its common-feature row (its own value wins). Cleaning, as in the
AITM reference pipeline: rows with a purchase and no click are dropped; per field, ids seen
fewer than ``min_count`` times in the training rows become id 0 (out of vocabulary, as are
absent fields); kept ids are renumbered 1, 2, ... by decreasing training frequency.
Validation rows are a seeded ``valid_fraction`` of the train skeleton (in file order).

Everything is chunked: per-field ids live in on-disk spools, never as Python objects per row.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from apem.data.errors import DataError
from apem.data.reading import Chunk, binary, read_chunks
from apem.data.sources.aliccp import AITM_FIELDS, STEPS
from apem.data.spool import Spool

SKELETON = ("sample_id", "click", "buy", "common_index", "feature_count", "features")
COMMON = ("common_index", "feature_count", "features")
ITEM = r"^(?P<field>[^\x02]*)\x02(?P<id>[^\x03]*)\x03"
MISSING = -1
OUTPUT_NAMES = ("ali_ccp_train.csv", "ali_ccp_val.csv", "ali_ccp_test.csv")
WRITE_BLOCK_ROWS = 1 << 20


def raw_files(raw_dir: str) -> list[str]:
    """The four raw files, in the order skeleton/common for train then test."""
    names = [
        f"{kind}_{part}.csv"
        for part in ("train", "test")
        for kind in ("sample_skeleton", "common_features")
    ]
    paths = [os.path.join(raw_dir, name) for name in names]
    for path in paths:
        if not os.path.isfile(path):
            raise DataError("missing raw Tianchi file", file=path)
    return paths


def parse_features(chunk: Chunk) -> np.ndarray:
    """The AITM fields' raw ids of each row of ``chunk``: (m, 18) int64, -1 where absent.

    A field listed twice in a row keeps its first id.
    """
    lists = pc.split_pattern(chunk.columns["features"], "\x01")
    declared = declared_counts(chunk)
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(lengths != declared)
    if bad.size:
        raise chunk.error(
            f"{lengths[bad[0]]} features where feature_count says {declared[bad[0]]} "
            "(a truncated line?)",
            bad[0],
            "features",
        )
    items = pc.extract_regex(pc.list_flatten(lists), ITEM)
    parents = pc.list_parent_indices(lists).to_numpy(zero_copy_only=False)
    malformed = np.flatnonzero(pc.is_null(items).to_numpy(zero_copy_only=False))
    if malformed.size:
        raise chunk.error(
            "feature not of the form field\\x02id\\x03value", parents[malformed[0]], "features"
        )
    position = pc.index_in(items.field("field"), value_set=pa.array(AITM_FIELDS))
    used = pc.is_valid(position)
    rows = parents[used.to_numpy(zero_copy_only=False)]
    cols = position.filter(used).to_numpy(zero_copy_only=False)
    id_text = items.field("id").filter(used)
    try:
        ids = pc.cast(id_text, pa.int64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        ok = pc.match_substring_regex(id_text, r"^-?\d+$").to_numpy(zero_copy_only=False)
        first = int(np.flatnonzero(~ok)[0])
        raise chunk.error(
            f"non-integer feature id {id_text[first].as_py()!r}", rows[first], "features"
        ) from None
    key = rows * len(AITM_FIELDS) + cols
    _, first = np.unique(key, return_index=True)
    out = np.full((len(chunk), len(AITM_FIELDS)), MISSING, np.int64)
    out.reshape(-1)[key[first]] = ids[first]
    return out


def declared_counts(chunk: Chunk) -> np.ndarray:
    """The ``feature_count`` column as (m,) int64."""
    try:
        return pc.cast(chunk.columns["feature_count"], pa.int64()).to_numpy(zero_copy_only=False)
    except pa.ArrowInvalid:
        raise chunk.error("non-integer feature count", None, "feature_count") from None


def read_common(path: str) -> tuple[pa.Array, np.ndarray]:
    """Common-feature rows: their (c,) index strings and (c, 18) int64 raw ids."""
    keys, ids = [], []
    for chunk in read_chunks(path, names=COMMON):
        keys.append(chunk.columns["common_index"])
        ids.append(parse_features(chunk))
    return pa.concat_arrays(keys), np.concatenate(ids)


def read_samples(skeleton: str, common: str) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """Blocks of (labels (m, 2) uint8, raw ids (m, 18) int64, rows dropped) of a skeleton file."""
    common_keys, common_ids = read_common(common)
    for chunk in read_chunks(skeleton, names=SKELETON):
        labels = np.stack([binary(chunk, "click"), binary(chunk, "buy")], axis=1)
        own = parse_features(chunk)
        where = pc.index_in(chunk.columns["common_index"], value_set=common_keys)
        unknown = np.flatnonzero(pc.is_null(where).to_numpy(zero_copy_only=False))
        if unknown.size:
            raise chunk.error(
                f"common-feature index not in {os.path.basename(common)}",
                unknown[0],
                "common_index",
            )
        shared = common_ids[where.to_numpy(zero_copy_only=False)]
        ids = np.where(own != MISSING, own, shared)
        keep = labels[:, 0] >= labels[:, 1]
        yield labels[keep], ids[keep], int((~keep).sum())


def fit_id_maps(
    ids: np.ndarray, train_rows: np.ndarray, min_count: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per field, (sorted kept raw ids, their new ids 1..k by decreasing training frequency)."""
    maps = []
    for f in range(ids.shape[1]):
        column = np.asarray(ids[train_rows, f])
        values, counts = np.unique(column[column != MISSING], return_counts=True)
        kept = counts >= min_count
        values, counts = values[kept], counts[kept]
        new_ids = np.empty(values.size, np.int64)
        new_ids[np.lexsort((values, -counts))] = np.arange(1, values.size + 1)
        maps.append((values, new_ids))
    return maps


def apply_id_maps(ids: np.ndarray, maps: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Raw ids (m, 18) -> new ids (m, 18) int64, 0 where not kept."""
    out = np.zeros(ids.shape, np.int64)
    for f, (values, new_ids) in enumerate(maps):
        if values.size == 0:
            continue
        pos = np.minimum(np.searchsorted(values, ids[:, f]), values.size - 1)
        found = values[pos] == ids[:, f]
        out[found, f] = new_ids[pos[found]]
    return out


def write_csv(path: str, labels: np.ndarray, ids: np.ndarray, rows: np.ndarray, maps) -> None:
    """Write ``rows`` of (labels, ids) to ``path`` in the AITM layout (via a partial file)."""
    names = list(STEPS + AITM_FIELDS)
    schema = pa.schema([(name, pa.int64()) for name in names])
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with (
        open(path + ".partial", "wb") as handle,
        pacsv.CSVWriter(handle, schema, write_options=options) as writer,
    ):
        handle.write((",".join(names) + "\n").encode())
        for start in range(0, rows.size, WRITE_BLOCK_ROWS):
            block = rows[start : start + WRITE_BLOCK_ROWS]
            values = np.concatenate(
                [labels[block].astype(np.int64), apply_id_maps(ids[block], maps)], axis=1
            )
            writer.write_table(pa.table(list(values.T), schema=schema))
    os.replace(path + ".partial", path)


def convert_tianchi(
    raw_dir: str,
    out_dir: str,
    *,
    min_count: int = 10,
    valid_fraction: float = 0.1,
    seed: int = 0,
) -> dict:
    """Convert the raw dump in ``raw_dir`` to ``out_dir/ali_ccp_{train,val,test}.csv``.

    Returns a report: ``files`` (train, val, test paths), ``rows`` per output file and
    ``dropped`` (purchase-without-click rows) per input split.
    """
    os.makedirs(out_dir, exist_ok=True)
    skeleton_train, common_train, skeleton_test, common_test = raw_files(os.fspath(raw_dir))
    parts = {}
    for part, skeleton, common in (
        ("train", skeleton_train, common_train),
        ("test", skeleton_test, common_test),
    ):
        labels = Spool(os.path.join(out_dir, f"{part}-labels.bin"), np.uint8, len(STEPS))
        ids = Spool(os.path.join(out_dir, f"{part}-ids.bin"), np.int64, len(AITM_FIELDS))
        dropped = 0
        for block_labels, block_ids, block_dropped in read_samples(skeleton, common):
            labels.append(block_labels)
            ids.append(block_ids)
            dropped += block_dropped
        parts[part] = (labels, ids, dropped)
    train_labels, train_ids = parts["train"][0].array(), parts["train"][1].array()
    test_labels, test_ids = parts["test"][0].array(), parts["test"][1].array()
    n = train_labels.shape[0]
    is_valid = np.zeros(n, bool)
    is_valid[np.random.default_rng(seed).permutation(n)[: int(valid_fraction * n)]] = True
    train_rows, valid_rows = np.flatnonzero(~is_valid), np.flatnonzero(is_valid)
    maps = fit_id_maps(train_ids, train_rows, min_count)
    files = [os.path.join(out_dir, name) for name in OUTPUT_NAMES]
    write_csv(files[0], train_labels, train_ids, train_rows, maps)
    write_csv(files[1], train_labels, train_ids, valid_rows, maps)
    write_csv(files[2], test_labels, test_ids, np.arange(test_labels.shape[0]), maps)
    del train_labels, train_ids, test_labels, test_ids
    for labels, ids, _ in parts.values():
        labels.remove()
        ids.remove()
    return {
        "files": files,
        "rows": {
            "train": int(train_rows.size),
            "val": int(valid_rows.size),
            "test": int(parts["test"][0].rows),
        },
        "dropped": {part: value[2] for part, value in parts.items()},
    }
