"""``python -m experiments run NAME --preset P --out DIR`` and ``python -m experiments render``.

``run`` writes ``DIR/<NAME>[-<dataset>].json`` with its figures beside it, then re-renders
``DIR.md`` (``docs/results`` -> ``docs/results.md``) from every JSON in DIR.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from apem.train.allocator import keep_freed_memory
from apem.train.report import write_json
from experiments.comparison import merge_comparisons, run_comparison
from experiments.datasets import DATASETS
from experiments.efficiency import run_efficiency
from experiments.environment import provenance
from experiments.presets import MODELS, PRESETS, first_points
from experiments.render import render
from experiments.selector import run_selector

EXPERIMENTS = ("models", "ablations", "departures", "selector", "efficiency")
DEFAULT_DATASET = {
    "models": "census",
    "ablations": "census",
    "departures": "census",
    "selector": "census",
}


def _parts(text: str) -> list[str]:
    """The non-empty items of a comma-separated option value."""
    return [part.strip() for part in text.split(",") if part.strip()]


def _seeds(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in _parts(text))


def _rates(text: str) -> list[float]:
    rates = [float(part) for part in _parts(text)]
    if not rates or not all(math.isfinite(rate) and rate > 0 for rate in rates):
        raise argparse.ArgumentTypeError(f"learning rates must be positive, got {text!r}")
    return rates


def _models(text: str) -> tuple[str, ...]:
    names = tuple(_parts(text))
    unknown = sorted(set(names) - set(MODELS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown model(s) {unknown}; valid: {', '.join(MODELS)}")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m experiments", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one experiment and re-render the results page")
    run.add_argument("name", choices=EXPERIMENTS)
    run.add_argument("--preset", choices=sorted(PRESETS), default="small")
    run.add_argument("--dataset", choices=DATASETS, help="all but efficiency")
    run.add_argument("--out", default="docs/results", help="folder of the JSON and PNG files")
    run.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's)")
    run.add_argument(
        "--seeds", type=_seeds, help="override the preset's seeds (comma-separated) to fit a budget"
    )
    run.add_argument(
        "--models", type=_models, help="override the preset's Table 3 models (comma-separated)"
    )
    run.add_argument(
        "--epochs", type=int, help="override the preset's epoch cap (early stopping still applies)"
    )
    run.add_argument("--patience", type=int, help="override the preset's early-stopping patience")
    run.add_argument(
        "--grid",
        choices=("all", "first"),
        default="all",
        help="first: train only the first point of every grid (the defaults) to fit a budget",
    )
    run.add_argument(
        "--lr-grid",
        type=_rates,
        help="search the learning rate too, per model, over these values (comma-separated), "
        "crossed with every model's grid",
    )
    run.add_argument(
        "--merge",
        action="store_true",
        help="models/ablations: add (or replace) these rows in the existing JSON instead of "
        "writing a new one (same dataset, rows and seeds)",
    )
    page = commands.add_parser("render", help="write OUT.md from the JSON files in OUT")
    page.add_argument("--out", default="docs/results")
    return parser


def run_experiment(args: argparse.Namespace, argv: Sequence[str] | None) -> Path:
    """Run ``args.name`` and write its JSON payload; return the JSON's path."""
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = PRESETS[args.preset]
    if args.seeds:
        preset = dataclasses.replace(preset, seeds=args.seeds)
    if args.models:
        preset = dataclasses.replace(preset, models=args.models)
    schedule = {"epochs": args.epochs, "patience": args.patience}
    train = {k: v for k, v in schedule.items() if v is not None}
    if train:
        preset = dataclasses.replace(preset, train={**preset.train, **train})
    if args.grid == "first":
        preset = dataclasses.replace(preset, grid=first_points(preset.grid))
    if args.lr_grid:
        grid = {model: {**axes, "lr": args.lr_grid} for model, axes in preset.grid.items()}
        preset = dataclasses.replace(preset, grid=grid)
    meta = provenance(None if argv is None else list(argv), torch.get_num_threads())
    started = time.perf_counter()
    payload: dict[str, Any]
    if args.name == "efficiency":
        if args.dataset:
            raise SystemExit("efficiency always runs on synthetic2; drop --dataset")
        payload, tag = run_efficiency(preset), "efficiency"
    else:
        dataset = args.dataset or DEFAULT_DATASET[args.name]
        if args.name == "selector":
            payload = run_selector(dataset, preset)
        else:
            payload = run_comparison(args.name, dataset, preset)
        tag = f"{args.name}-{dataset}"
    payload = {
        "experiment": args.name,
        "preset": preset.name,
        **meta,
        "wall_s": time.perf_counter() - started,
        **payload,
    }
    path = Path(args.out) / f"{tag}.json"
    if args.merge:
        if args.name in ("selector", "efficiency") or not path.exists():
            raise SystemExit(f"--merge adds rows to an existing comparison JSON; no {path}")
        try:
            payload = merge_comparisons(json.loads(path.read_text()), payload)
        except ValueError as error:
            raise SystemExit(f"{path}: {error}") from None
    write_json(path, payload, indent=1)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m experiments``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = build_parser().parse_args(argv)
    if args.command == "run":
        keep_freed_memory()
        print(f"wrote {run_experiment(args, argv)}")
    print(f"wrote {render(Path(args.out))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
