"""``load_source``: the CLI's ``--data`` string -> splits."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence

from apem.data import cache
from apem.data.schema import FunnelSplits
from apem.data.sources.aliccp import load_aliccp
from apem.data.sources.census import load_census_funnel, load_census_pair
from apem.data.sources.synthetic import make_funnel, synthetic_splits
from apem.data.sources.table import load_table
from apem.data.sources.tianchi import OUTPUT_NAMES, convert_tianchi, raw_files

SOURCES = (
    "synthetic",
    "census:PATH",
    "census-pair:PATH",
    "aliccp:DIR",
    "tianchi:RAW_DIR",
    "PATH.csv|.parquet",
)
TABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq", ".txt")


def load_source(
    source: str,
    *,
    labels: Sequence[str] | None = None,
    dense: Sequence[str] | str = (),
    seed: int = 0,
    cache_dir: str | None = None,
    **options,
) -> FunnelSplits:
    """Resolve a data source string.

    - ``"synthetic"``: ``synthetic_splits(seed=seed, **options)`` (``n`` defaults to 10^6);
    - ``"census:PATH"`` / ``"census-pair:PATH"``: the census funnel / MMoE pair;
    - ``"aliccp:DIR"``: ``load_aliccp(DIR, **options)``; ``dense`` may be ``"bucket"``/``"raw"``;
    - ``"tianchi:RAW_DIR"``: ``convert_tianchi`` into the cache (once), then ``load_aliccp``;
      options ``min_count`` and ``valid_fraction`` go to the conversion;
    - a CSV/Parquet path: ``load_table(path, labels, dense=dense, seed=seed, **options)``.

    Raises:
        ValueError: an unknown source (the message lists the valid ones), an option the source
            does not take (the message lists those it takes), or a table without ``labels``.
    """
    kind, _, path = source.partition(":")
    if kind == "aliccp" and not isinstance(dense, str) and len(dense) == 1:
        dense = dense[0]  # the CLI's `--dense raw` arrives as a one-element list
    _refuse_unused(source, kind, labels=labels, dense=dense, seed=seed)
    _refuse_unknown(source, kind, options)
    if source == "synthetic":
        return synthetic_splits(options.pop("n", 1_000_000), seed=seed, **options)
    if kind == "census" and path:
        return load_census_funnel(path, cache_dir=cache_dir, **options)
    if kind == "census-pair" and path:
        return load_census_pair(path, cache_dir=cache_dir, **options)
    if kind == "aliccp" and path:
        return load_aliccp(path, dense=dense or "bucket", cache_dir=cache_dir, **options)
    if kind == "tianchi" and path:
        convert = {k: options.pop(k) for k in ("min_count", "valid_fraction") if k in options}
        out_dir = cache.entry_path("tianchi", raw_files(path), {**convert, "seed": seed}, cache_dir)
        if not all(os.path.isfile(os.path.join(out_dir, name)) for name in OUTPUT_NAMES):
            convert_tianchi(path, out_dir, seed=seed, **convert)
        return load_aliccp(out_dir, layout="aitm20", cache_dir=cache_dir, **options)
    if source.lower().endswith(TABLE_SUFFIXES):
        if not labels:
            raise ValueError(
                f"{source}: a table source needs its label columns in funnel order (--labels "
                "click,buy; labels=[...] in Python)"
            )
        return load_table(source, labels, dense=dense, seed=seed, cache_dir=cache_dir, **options)
    raise ValueError(f"unknown data source {source!r}; valid: {', '.join(SOURCES)}")


def _refuse_unused(source: str, kind: str, *, labels, dense, seed: int) -> None:
    """ValueError for an option that the source would otherwise ignore silently."""
    named = source == "synthetic" or kind in ("census", "census-pair", "aliccp", "tianchi")
    unused = []
    if labels and named:
        unused.append("labels")
    if dense and named and kind != "aliccp":
        unused.append("dense")
    if seed != 0 and kind in ("census", "census-pair", "aliccp"):
        unused.append("seed")
    if unused:
        raise ValueError(
            f"{source}: {', '.join(unused)} does not apply to this source (its steps, fields and "
            "split are fixed)"
        )


# The options each kind of source takes through ``**options`` (the others are named arguments).
_TAKEN = {"labels", "dense", "seed", "cache_dir", "path"}


def _parameters(*functions: Callable) -> set[str]:
    names = set()
    for function in functions:
        for name, parameter in inspect.signature(function).parameters.items():
            if parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                names.add(name)
    return names - _TAKEN


def _accepted(source: str, kind: str) -> set[str] | None:
    if source == "synthetic":
        return _parameters(synthetic_splits, make_funnel)
    if kind in ("census", "census-pair"):
        return set()
    if kind == "aliccp":
        return _parameters(load_aliccp)
    if kind == "tianchi":
        return (_parameters(load_aliccp) - {"layout", "files"}) | {"valid_fraction"}
    if source.lower().endswith(TABLE_SUFFIXES):
        return _parameters(load_table)
    return None  # an unknown source: reported as such


def _refuse_unknown(source: str, kind: str, options: dict) -> None:
    """ValueError for an option (``--data-option``) that the source does not take."""
    accepted = _accepted(source, kind)
    unknown = sorted(set(options) - accepted) if accepted is not None else []
    if unknown:
        valid = ", ".join(sorted(accepted)) or "none"
        raise ValueError(
            f"{source}: unknown option(s) {unknown} (--data-option); this source takes: {valid}"
        )
