"""The `apem` command: train, eval, predict and compare funnel models."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from apem.data import DataError, FunnelData, FunnelSplits, load_source
from apem.models import MODEL_NAMES, build_model
from apem.train import (
    CheckpointError,
    NonFiniteLossError,
    TrainConfig,
    check_schema,
    compare,
    evaluate,
    fit,
    load_checkpoint,
    model_from_checkpoint,
    oracle_metrics,
    predict,
    resolve_device,
    seed_everything,
)
from apem.train.report import comparison_table, metrics_table, write_json

# `--data synthetic` is the quick demo, about a minute of APEM on a 2-core CPU: a small funnel
# that a few dozen steps can learn (20 ids per field, click 20 %, conversion 6 %) and a short,
# fast schedule. Other data get TrainConfig's (the paper's) lr and batch size.
QUICK_SYNTHETIC = {
    "n": 60_000,
    "num_fields": 16,
    "num_steps": 2,
    "vocab_size": 20,
    "base_rates": [0.2, 0.06],
}
QUICK_TRAINING = {"epochs": 3, "lr": 4e-3, "batch_size": 512}
SPLITS = ("train", "valid", "test")


class UsageError(Exception):
    """A bad combination of arguments, reported through argparse."""


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _model_list(text: str) -> list[str]:
    names = _comma_list(text)
    unknown = [n for n in names if n not in MODEL_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown model(s) {unknown} (choose from {', '.join(MODEL_NAMES)})"
        )
    return names


def _seed_list(text: str) -> list[int]:
    try:
        return [int(part) for part in _comma_list(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be integers, got {text!r}") from None


def _key_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE parsed as JSON, else kept as a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def _assignment(text: str) -> tuple[str | None, str, Any]:
    """``[MODEL:]KEY=VALUE``: a hyper-parameter, for one model or (no MODEL) for all."""
    key, value = _key_value(text)
    model, colon, key = key.rpartition(":")
    return (model if colon else None), key, value


def _add_data_arguments(parser: argparse.ArgumentParser, default: str | None) -> None:
    group = parser.add_argument_group("data")
    where = "synthetic" if default else "the checkpoint's data"
    group.add_argument(
        "--data",
        default=default,
        help="synthetic, census:PATH, census-pair:PATH, aliccp:PATH, tianchi:DIR or a CSV/Parquet "
        f"path with --labels (default: {where})",
    )
    group.add_argument("--rows", type=int, help="synthetic: number of rows")
    group.add_argument("--fields", type=int, help="synthetic: number of categorical fields")
    group.add_argument("--steps", type=int, help="synthetic: number of funnel steps")
    group.add_argument("--labels", type=_comma_list, help="table: step columns in funnel order")
    group.add_argument("--dense", type=_comma_list, default=[], help="table: numerical columns")
    group.add_argument(
        "--data-option",
        dest="data_options",
        action="append",
        type=_key_value,
        default=[],
        metavar="KEY=VALUE",
        help="another option of the source (synthetic: base_rates=[0.04,0.005], vocab_size=1000, "
        "signal=1.5, ...); VALUE is JSON or a string; repeatable",
    )
    group.add_argument("--data-seed", type=int, default=0, help="seed of generation and splits")
    group.add_argument("--cache-dir", help="where a source may cache its parsed arrays")


def _add_training_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    defaults = TrainConfig()
    quick = "{} on synthetic data, else {}"
    group.add_argument(
        "--epochs",
        type=int,
        help="default: " + quick.format(QUICK_TRAINING["epochs"], defaults.epochs),
    )
    group.add_argument(
        "--lr", type=float, help="default: " + quick.format(QUICK_TRAINING["lr"], defaults.lr)
    )
    group.add_argument(
        "--batch-size",
        type=int,
        help="default: " + quick.format(QUICK_TRAINING["batch_size"], defaults.batch_size),
    )
    group.add_argument("--patience", type=int, default=defaults.patience)
    group.add_argument("--max-steps", type=int, help="stop after this many optimiser steps")
    group.add_argument("--embed-dim", type=int, help="embedding size of every field")
    group.add_argument(
        "--set",
        dest="assignments",
        action="append",
        type=_assignment,
        default=[],
        metavar="[MODEL:]KEY=VALUE",
        help="a model hyper-parameter (VALUE is JSON or a string); repeatable",
    )
    group.add_argument("--eval-batch-size", type=int, default=defaults.eval_batch_size)
    group.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    group.add_argument("--no-progress", action="store_true", help="no progress bar")
    group.add_argument("--quiet", action="store_true", help="no per-epoch log lines")


def _add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument(
        "--num-threads",
        type=int,
        help="torch CPU threads (default: torch's choice; 1 is much faster on a busy machine)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="apem", description="Train, evaluate and compare multi-step conversion models."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train one model (default: APEM, synthetic)")
    train.add_argument("--model", choices=MODEL_NAMES, default="apem")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", help="checkpoint folder (default: runs/MODEL)")
    train.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    train.add_argument("--json", help="write the results to this JSON file")
    _add_device_argument(train)
    _add_data_arguments(train, "synthetic")
    _add_training_arguments(train)
    train.set_defaults(run=_run_train, subparser=train)

    evaluate_ = commands.add_parser("eval", help="score a checkpoint on a split")
    evaluate_.add_argument("checkpoint")
    evaluate_.add_argument("--split", choices=SPLITS, default="test")
    evaluate_.add_argument("--batch-size", type=int, default=8192)
    evaluate_.add_argument("--json", help="write the metrics to this JSON file")
    _add_device_argument(evaluate_)
    _add_data_arguments(evaluate_, None)
    evaluate_.set_defaults(run=_run_eval, subparser=evaluate_)

    predict_ = commands.add_parser("predict", help="write a checkpoint's probabilities")
    predict_.add_argument("checkpoint")
    predict_.add_argument("--output", required=True, help="a .csv or .parquet file")
    predict_.add_argument("--input", help="a CSV/Parquet table to score (default: --split)")
    predict_.add_argument("--split", choices=SPLITS, default="test")
    predict_.add_argument("--batch-size", type=int, default=8192)
    _add_device_argument(predict_)
    _add_data_arguments(predict_, None)
    predict_.set_defaults(run=_run_predict, subparser=predict_)

    compare_ = commands.add_parser("compare", help="several models x seeds on one dataset")
    compare_.add_argument(
        "--models", type=_model_list, default=list(MODEL_NAMES), help="comma-separated"
    )
    compare_.add_argument("--seeds", type=_seed_list, default=[0, 1, 2], help="comma-separated")
    compare_.add_argument("--out", help="keep each run's checkpoints under this folder")
    compare_.add_argument("--json", help="write per-seed results and the summary here")
    _add_device_argument(compare_)
    _add_data_arguments(compare_, "synthetic")
    _add_training_arguments(compare_)
    compare_.set_defaults(run=_run_compare, subparser=compare_)
    return parser


def _data_spec(args: argparse.Namespace, fallback: dict[str, Any] | None) -> dict[str, Any]:
    """The data source and its options, from the arguments or else ``fallback``."""
    given = {"n": args.rows, "num_fields": args.fields, "num_steps": args.steps}
    given = {k: v for k, v in given.items() if v is not None}
    if args.data is None:
        if fallback is None:
            raise UsageError("--data is required: the checkpoint does not name its data")
        if given or args.labels or args.data_options:
            raise UsageError("--rows/--fields/--steps/--labels/--data-option need --data")
        return fallback
    if args.data == "synthetic":
        options = {**QUICK_SYNTHETIC, **given}
        if options["num_steps"] != len(QUICK_SYNTHETIC["base_rates"]):
            del options["base_rates"]  # the generator's own rates for that many steps
    elif given:
        raise UsageError("--rows, --fields and --steps apply to --data synthetic only")
    else:
        options = {}
    options.update(args.data_options)
    return {
        "source": args.data,
        "labels": args.labels,
        "dense": list(args.dense),
        "seed": args.data_seed,
        "cache_dir": args.cache_dir,
        "options": options,
    }


def _load(spec: dict[str, Any]) -> FunnelSplits:
    """The splits of a data spec; a bad source or option is a usage error, bad data a DataError."""
    try:
        return load_source(
            spec["source"],
            labels=spec["labels"],
            dense=tuple(spec["dense"]),
            seed=spec["seed"],
            cache_dir=spec["cache_dir"],
            **spec["options"],
        )
    except DataError:
        raise
    except (ValueError, TypeError) as error:
        raise UsageError(str(error)) from None


def _hparams(args: argparse.Namespace, model: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if args.embed_dim is not None:
        values["embed_dim"] = args.embed_dim
    for scope, key, value in args.assignments:
        if scope is None or scope == model:
            values[key] = value
    return values


def _build(name: str, splits: FunnelSplits, hparams: dict[str, Any]):
    try:
        return build_model(name, splits.schema, **hparams)
    except ValueError as error:
        raise UsageError(f"model {name}: {error}") from None


def _train_config(
    args: argparse.Namespace, spec: dict[str, Any], seed: int, out: str | None
) -> TrainConfig:
    quick = spec["source"] == "synthetic"
    defaults = QUICK_TRAINING if quick else dataclasses.asdict(TrainConfig())
    given = {"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size}
    schedule = {k: defaults[k] if v is None else v for k, v in given.items()}
    return TrainConfig(
        **schedule,
        patience=args.patience,
        seed=seed,
        device=args.device,
        amp=not args.no_amp,
        max_steps=args.max_steps,
        eval_batch_size=args.eval_batch_size,
        checkpoint_dir=out,
        num_threads=args.num_threads,
        progress=not args.no_progress,
    )


def _describe(spec: dict[str, Any], splits: FunnelSplits) -> str:
    schema = splits.schema
    sizes = " / ".join(f"{len(getattr(splits, s)):,}" for s in SPLITS)
    return (
        f"data {spec['source']}: {sizes} rows (train / valid / test), "
        f"{schema.num_fields} fields, steps {' > '.join(schema.steps)}"
    )


def _run_train(args: argparse.Namespace) -> int:
    spec = _data_spec(args, None)
    splits = _load(spec)
    out = args.out or str(Path("runs") / args.model)
    seed_everything(args.seed)
    model = _build(args.model, splits, _hparams(args, args.model))
    config = _train_config(args, spec, args.seed, out)
    resume_from = Path(out) / "last.pt" if args.resume else None
    print(_describe(spec, splits))
    result = fit(model, splits, config, resume_from=resume_from, metadata={"data": spec})
    oracle = oracle_metrics(splits.test)
    print(
        f"\n{args.model}: best epoch {result.best_epoch:g} of {len(result.history)} validations, "
        f"{result.steps} steps, {result.samples_per_s:,.0f} training samples/s"
    )
    print(f"test split at the best epoch (checkpoint {Path(out) / 'best.pt'}):")
    print(metrics_table(result.test, oracle))
    if args.json:
        payload = {
            "model": args.model,
            "model_config": model.config,
            "data": spec,
            "train_config": dataclasses.asdict(config),
            **result.test.to_dict(),
            "oracle_auc": oracle.auc if oracle else None,
            "oracle_conditional_auc": oracle.conditional_auc if oracle else None,
            "valid": result.valid.to_dict(),
            "best_epoch": result.best_epoch,
            "steps": result.steps,
            "stopped_early": result.stopped_early,
            "samples_per_s": result.samples_per_s,
            "history": result.history,
            "checkpoint": str(Path(out) / "best.pt"),
        }
        write_json(args.json, payload)
    return 0


def _checkpoint_and_data(args: argparse.Namespace):
    checkpoint = load_checkpoint(args.checkpoint)
    spec = _data_spec(args, checkpoint.get("metadata", {}).get("data"))
    splits = _load(spec)
    check_schema(checkpoint, splits.schema, args.checkpoint)
    return model_from_checkpoint(checkpoint, args.checkpoint), splits, spec


def _run_eval(args: argparse.Namespace) -> int:
    model, splits, spec = _checkpoint_and_data(args)
    data = getattr(splits, args.split)
    metrics = evaluate(model, data, batch_size=args.batch_size, device=_device(args))
    oracle = oracle_metrics(data)
    print(_describe(spec, splits))
    print(f"{model.name} on the {args.split} split ({len(data):,} rows):")
    print(metrics_table(metrics, oracle))
    if args.json:
        payload = {
            "model": model.name,
            "checkpoint": args.checkpoint,
            "split": args.split,
            **metrics.to_dict(),
            "oracle_auc": oracle.auc if oracle else None,
        }
        write_json(args.json, payload)
    return 0


def _device(args: argparse.Namespace) -> str:
    return str(resolve_device(args.device))


def _read_table(path: str) -> pd.DataFrame:
    if path.endswith(".parquet"):
        return pd.read_parquet(path)
    return pd.read_csv(path)


def _table_split(splits: FunnelSplits, path: str) -> FunnelData:
    """A new table encoded with the training vocabulary (labels unknown: zeros)."""
    if splits.vocab is None:
        raise UsageError(f"--input needs a table data source; {path} cannot be encoded")
    frame = _read_table(path)
    schema = splits.schema
    ids = splits.vocab.encode(frame)
    dense = frame[list(schema.dense)].to_numpy(np.float32) if schema.dense else None
    labels = np.zeros((len(frame), schema.num_steps), dtype=np.uint8)
    return FunnelData(schema, ids, labels, dense)


def _run_predict(args: argparse.Namespace) -> int:
    if not args.output.endswith((".csv", ".parquet")):
        raise UsageError(f"--output must end in .csv or .parquet, got {args.output}")
    model, splits, _ = _checkpoint_and_data(args)
    data = _table_split(splits, args.input) if args.input else getattr(splits, args.split)
    probs = predict(model, data, batch_size=args.batch_size, device=_device(args))
    frame = pd.DataFrame({f"p_{step}": probs[:, i] for i, step in enumerate(data.schema.steps)})
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    if args.output.endswith(".parquet"):
        frame.to_parquet(args.output, index=False)
    else:
        frame.to_csv(args.output, index=False)
    print(f"wrote {len(frame):,} rows ({', '.join(frame.columns)}) to {args.output}")
    return 0


def _run_compare(args: argparse.Namespace) -> int:
    spec = _data_spec(args, None)
    splits = _load(spec)
    hparams = {name: _hparams(args, name) for name in args.models}
    for name in args.models:  # every --set is checked before hours of training start
        _build(name, splits, hparams[name])
    print(_describe(spec, splits))
    config = _train_config(args, spec, 0, None)
    comparison = compare(args.models, args.seeds, splits, config, hparams, checkpoint_root=args.out)
    oracle = oracle_metrics(splits.test)
    print()
    print(comparison_table(comparison))
    if oracle is not None:
        print("oracle test AUC: " + "  ".join(f"{k} {v:.4f}" for k, v in oracle.auc.items()))
    if args.json:
        payload = {
            "data": spec,
            "train_config": dataclasses.asdict(config),
            **comparison.to_dict(),
            "oracle_auc": oracle.auc if oracle else None,
        }
        write_json(args.json, payload)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `apem` command; returns the exit status (2 for bad input, 1 for a failed run)."""
    args = build_parser().parse_args(argv)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    if hasattr(args, "quiet"):  # per-epoch lines of train and compare, on stderr
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger = logging.getLogger("apem")
        logger.handlers[:] = [handler]
        logger.setLevel(logging.WARNING if args.quiet else logging.INFO)
    try:
        return args.run(args)
    except UsageError as error:
        args.subparser.error(str(error))
    except (DataError, CheckpointError) as error:
        print(f"apem: error: {error}", file=sys.stderr)
        return 2
    except NonFiniteLossError as error:
        print(f"apem: error: {error}", file=sys.stderr)
        return 1
