"""The `apem` command: train, eval, predict and compare funnel models."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from apem.data import DataError, FunnelSplits, load_source
from apem.data.scoring import EncodedTable, encode_table
from apem.export import FORMATS, export_model
from apem.models import MODEL_NAMES, build_model
from apem.train import (
    CheckpointError,
    NonFiniteLossError,
    TrainConfig,
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
from apem.train.allocator import keep_freed_memory
from apem.train.checkpoint import (
    BEST,
    LAST,
    check_data,
    checkpoint_vocabulary,
    warn_if_stale_best,
)
from apem.train.compare import run_directory
from apem.train.diagnostics import (
    diagnose,
    diagnostics_table,
    tower_reliance,
    tower_reliance_table,
)
from apem.train.distributed import init_from_environment, leave, world
from apem.train.evaluation import EVAL_BATCH_DEFAULT
from apem.train.loggers import CSVLogger, RunLogger, TensorBoardLogger
from apem.train.optim import LR_SCHEDULES, OPTIMIZERS
from apem.train.report import comparison_table, metrics_table, write_json
from apem.train.step import compile_backend

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
OUTPUT_SUFFIXES = (".csv", ".parquet")


class UsageError(Exception):
    """A bad combination of arguments, reported through argparse."""


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def _compile_backend(text: str) -> str:
    try:
        return compile_backend(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _device_name(text: str) -> str:
    """``auto`` or a torch device that this machine has."""
    if text == "auto":
        return text
    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(
            f"unknown device {text!r} (cpu, cuda, cuda:N or auto)"
        ) from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise argparse.ArgumentTypeError(f"{text}: CUDA is not available on this machine")
        if device.index is not None and device.index >= count:
            raise argparse.ArgumentTypeError(f"{text}: this machine has {count} CUDA device(s)")
    elif device.type != "cpu":
        raise argparse.ArgumentTypeError(f"unsupported device {text!r} (cpu, cuda, cuda:N or auto)")
    return text


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
    group.add_argument("--rows", type=_positive_int, help="synthetic: number of rows")
    group.add_argument(
        "--fields", type=_positive_int, help="synthetic: number of categorical fields"
    )
    group.add_argument("--steps", type=_positive_int, help="synthetic: number of funnel steps")
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
        type=_positive_int,
        help="default: " + quick.format(QUICK_TRAINING["epochs"], defaults.epochs),
    )
    group.add_argument(
        "--lr",
        type=_positive_float,
        help="default: " + quick.format(QUICK_TRAINING["lr"], defaults.lr),
    )
    group.add_argument(
        "--batch-size",
        type=_positive_int,
        help="default: " + quick.format(QUICK_TRAINING["batch_size"], defaults.batch_size),
    )
    group.add_argument("--patience", type=_non_negative_int, default=defaults.patience)
    group.add_argument(
        "--max-steps", type=_positive_int, help="stop after this many optimiser steps"
    )
    group.add_argument("--embed-dim", type=_positive_int, help="embedding size of every field")
    group.add_argument(
        "--set",
        dest="assignments",
        action="append",
        type=_assignment,
        default=[],
        metavar="[MODEL:]KEY=VALUE",
        help="a model hyper-parameter (VALUE is JSON or a string); repeatable",
    )
    group.add_argument(
        "--eval-batch-size", type=_positive_int, help=f"default: {EVAL_BATCH_DEFAULT}"
    )
    group.add_argument("--no-amp", action="store_true", help="no bf16 autocast on CUDA")
    group.add_argument(
        "--compile",
        nargs="?",
        const=True,
        default=False,
        type=_compile_backend,
        metavar="BACKEND",
        help="torch.compile the training step as one graph (backend: inductor unless given)",
    )
    group.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default=defaults.optimizer)
    group.add_argument("--weight-decay", type=_non_negative_float, default=defaults.weight_decay)
    group.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        default=defaults.lr_schedule,
        help="after the warm-up: constant, or a half cosine to 0 over the run",
    )
    group.add_argument(
        "--warmup-steps", type=_non_negative_int, default=defaults.warmup_steps,
        help="linear learning-rate warm-up over this many steps",
    )  # fmt: skip
    group.add_argument(
        "--grad-clip", type=_positive_float, help="clip the gradients' global L2 norm to this"
    )
    group.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress within epochs (a bar on a terminal, else a line every 50 steps)",
    )
    group.add_argument("--quiet", action="store_true", help="no per-epoch log lines")


def _add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device", type=_device_name, default="auto", help="cpu, cuda, cuda:N or auto"
    )
    parser.add_argument(
        "--num-threads",
        type=_positive_int,
        default=default_num_threads(),
        help="torch CPU threads (default: 1 on a machine with 2 cores or fewer, where a second "
        "thread fighting other jobs stalls training; else torch's choice)",
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
    train.add_argument(
        "--overwrite", action="store_true", help="replace the checkpoints OUT already holds"
    )
    train.add_argument("--json", help="write the results to this JSON file")
    train.add_argument("--log-csv", help="append one row per validation to this CSV file")
    train.add_argument(
        "--tensorboard",
        metavar="DIR",
        help='TensorBoard event files here (pip install "apem[tensorboard]")',
    )
    train.add_argument(
        "--diagnostics",
        action="store_true",
        help="APEM: per-layer attention entropy, selector spread and representation variance "
        "on a validation subsample, before and after training",
    )
    _add_device_argument(train)
    _add_data_arguments(train, "synthetic")
    _add_training_arguments(train)
    train.set_defaults(run=_run_train, subparser=train)

    evaluate_ = commands.add_parser("eval", help="score a checkpoint on a split")
    evaluate_.add_argument("checkpoint")
    evaluate_.add_argument("--split", choices=SPLITS, default="test")
    evaluate_.add_argument(
        "--input", help="score this labelled CSV/Parquet table as new data instead of --split"
    )
    evaluate_.add_argument(
        "--batch-size", type=_positive_int, help=f"default: {EVAL_BATCH_DEFAULT}"
    )
    evaluate_.add_argument("--json", help="write the metrics to this JSON file")
    _add_device_argument(evaluate_)
    _add_data_arguments(evaluate_, None)
    evaluate_.set_defaults(run=_run_eval, subparser=evaluate_)

    predict_ = commands.add_parser("predict", help="write a checkpoint's probabilities")
    predict_.add_argument("checkpoint")
    predict_.add_argument("--output", required=True, help="a .csv or .parquet file")
    predict_.add_argument("--input", help="a CSV/Parquet table to score (default: --split)")
    predict_.add_argument("--split", choices=SPLITS, default="test")
    predict_.add_argument("--batch-size", type=_positive_int, help=f"default: {EVAL_BATCH_DEFAULT}")
    predict_.add_argument(
        "--keep",
        type=_comma_list,
        action="extend",
        default=[],
        metavar="COL",
        help="copy these --input columns (e.g. keys) into the output, before the p_ columns",
    )
    _add_device_argument(predict_)
    _add_data_arguments(predict_, None)
    predict_.set_defaults(run=_run_predict, subparser=predict_)

    export_ = commands.add_parser(
        "export", help="write a checkpoint as a self-contained serving graph (.pt2 or .onnx)"
    )
    export_.add_argument("checkpoint")
    export_.add_argument("--output", required=True, help="the artifact's path")
    export_.add_argument(
        "--format", choices=FORMATS, help="pt2 (torch.export) or onnx (default: the suffix)"
    )
    export_.set_defaults(run=_run_export, subparser=export_, num_threads=None)

    compare_ = commands.add_parser("compare", help="several models x seeds on one dataset")
    compare_.add_argument(
        "--models", type=_model_list, default=list(MODEL_NAMES), help="comma-separated"
    )
    compare_.add_argument("--seeds", type=_seed_list, default=[0, 1, 2], help="comma-separated")
    compare_.add_argument("--out", help="keep each run's checkpoints under this folder")
    compare_.add_argument(
        "--overwrite", action="store_true", help="replace the checkpoints OUT already holds"
    )
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


def _check_scopes(args: argparse.Namespace, models: Sequence[str]) -> None:
    """UsageError for a ``--set MODEL:KEY=VALUE`` whose MODEL is not trained."""
    for scope, key, value in args.assignments:
        if scope is not None and scope not in models:
            raise UsageError(
                f"--set {scope}:{key}={json.dumps(value)} targets model {scope!r}, which is not "
                f"among the models trained ({', '.join(models)})"
            )


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
        compile=args.compile,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        lr_schedule=args.lr_schedule,
        warmup_steps=args.warmup_steps,
        grad_clip=args.grad_clip,
    )


def default_num_threads() -> int | None:
    """1 when this process may use 2 cores or fewer, else None (torch's choice)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 1 if (cores or 1) <= 2 else None


@contextlib.contextmanager
def _run_loggers(args: argparse.Namespace) -> Iterator[list[RunLogger]]:
    """The CSV and TensorBoard loggers the arguments ask for (rank 0 only), closed after."""
    loggers: list[RunLogger] = []
    if world()[0] == 0:
        if args.log_csv:
            loggers.append(CSVLogger(args.log_csv))
        if args.tensorboard:
            try:
                loggers.append(TensorBoardLogger(args.tensorboard))
            except ImportError as error:
                raise UsageError(str(error)) from None
    try:
        yield loggers
    finally:
        for logger in loggers:
            logger.close()


def _describe(spec: dict[str, Any], splits: FunnelSplits) -> str:
    schema = splits.schema
    sizes = " / ".join(f"{len(getattr(splits, s)):,}" for s in SPLITS)
    return (
        f"data {spec['source']}: {sizes} rows (train / valid / test), "
        f"{schema.num_fields} fields, steps {' > '.join(schema.steps)}"
    )


def _held_checkpoints(directories: Sequence[Path]) -> list[Path]:
    return [d / name for d in directories for name in (LAST, BEST) if (d / name).exists()]


def _check_out(directories: Sequence[Path], resume: bool | None, overwrite: bool) -> list[Path]:
    """The checkpoints that ``--overwrite`` will delete; UsageError unless the flags allow
    what the directories hold (nothing is ever replaced without ``--overwrite``). ``resume``
    is None where the command has no ``--resume``."""
    held = _held_checkpoints(directories)
    if resume and overwrite:
        raise UsageError("--resume continues the checkpoint that --overwrite would replace")
    if resume:
        missing = [d / LAST for d in directories if not (d / LAST).exists()]
        if missing:
            raise UsageError(f"--resume: there is no {missing[0]} to continue")
        return []
    if held and not overwrite:
        resumable = "--resume to continue that run or " if resume is not None else ""
        raise UsageError(
            f"--out already holds {', '.join(map(str, held[:3]))}; pass {resumable}--overwrite "
            "to replace it"
        )
    return held


def _run_train(args: argparse.Namespace) -> int:
    out = args.out or str(Path("runs") / args.model)
    replaced = _check_out([Path(out)], args.resume, args.overwrite)
    _check_scopes(args, [args.model])
    spec = _data_spec(args, None)
    splits = _load(spec)
    seed_everything(args.seed)
    model = _build(args.model, splits, _hparams(args, args.model))
    if args.diagnostics and not hasattr(model, "trace"):
        raise UsageError(f"--diagnostics inspects APEM's attention; {args.model} has none")
    config = _train_config(args, spec, args.seed, out)
    resume_from = Path(out) / LAST if args.resume else None
    main = world()[0] == 0  # under torchrun, rank 0 alone writes and prints
    if main:
        for path in replaced:
            path.unlink()
        print(_describe(spec, splits))
    before = (
        diagnose(model, splits.valid) if main and args.diagnostics and not args.resume else None
    )
    with _run_loggers(args) as loggers:
        result = fit(
            model, splits, config, resume_from=resume_from, metadata={"data": spec},
            loggers=loggers,
        )  # fmt: skip
    if not main:
        return 0
    after = diagnose(model, splits.valid) if args.diagnostics else None
    towers = tower_reliance(model, splits.valid) if args.diagnostics else None
    oracle = oracle_metrics(splits.test)
    print(
        f"\n{args.model}: best epoch {result.best_epoch:g} of {len(result.history)} validations, "
        f"{result.steps} steps, {result.samples_per_s:,.0f} training samples/s"
    )
    print(f"test split at the best epoch (checkpoint {Path(out) / 'best.pt'}):")
    print(metrics_table(result.test, oracle))
    for moment, layers in (("initialisation", before), ("the best epoch", after)):
        if layers is not None:
            print(f"\nattention diagnostics at {moment} (validation subsample):")
            print(diagnostics_table(layers))
    if towers is not None:
        print("\nthe towers' input at the best epoch, one part at its mean (validation subsample):")
        print(tower_reliance_table(towers))
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
        if after is not None:
            payload["diagnostics"] = {
                "initialisation": None if before is None else [d.to_dict() for d in before],
                "trained": [d.to_dict() for d in after],
                "towers": [r.to_dict() for r in towers],
            }
        write_json(args.json, payload)
    return 0


def _checkpoint_and_data(args: argparse.Namespace):
    """The checkpoint's model and the split ``--split`` of its data, checked to be the data it
    was trained on."""
    checkpoint = load_checkpoint(args.checkpoint)
    warn_if_stale_best(checkpoint, args.checkpoint)
    spec = _data_spec(args, checkpoint.get("metadata", {}).get("data"))
    splits = _load(spec)
    check_data(checkpoint, splits, args.checkpoint)
    model = model_from_checkpoint(checkpoint, args.checkpoint)
    return model, getattr(splits, args.split), _describe(spec, splits)


def _checkpoint_and_input(args: argparse.Namespace, labels: bool | None, keep: Sequence[str] = ()):
    """The checkpoint's model and the table ``--input`` encoded with its vocabularies (and the
    columns ``keep`` as they are)."""
    if args.data or args.rows or args.fields or args.steps or args.labels or args.data_options:
        raise UsageError(
            "--input is read with the checkpoint's vocabularies; --data and its "
            "options do not apply"
        )
    checkpoint = load_checkpoint(args.checkpoint)
    warn_if_stale_best(checkpoint, args.checkpoint)
    vocab = checkpoint_vocabulary(checkpoint)
    if vocab is None:
        raise UsageError(
            f"--input: {args.checkpoint} was trained on synthetic ids, which have no vocabulary "
            "to encode a table with"
        )
    model = model_from_checkpoint(checkpoint, args.checkpoint)
    table = encode_table(args.input, vocab, model.schema, labels=labels, keep=keep)
    return model, table


def _describe_input(path: str, table: EncodedTable) -> str:
    worst = max(table.oov_rate, key=table.oov_rate.get)
    mean = sum(table.oov_rate.values()) / len(table.oov_rate)
    return (
        f"{path}: {len(table.data):,} rows of new data, encoded with the checkpoint's "
        f"vocabularies; out of vocabulary: {100 * mean:.1f} % of cells "
        f"(most in field {worst!r}: {100 * table.oov_rate[worst]:.1f} %)"
    )


def _run_eval(args: argparse.Namespace) -> int:
    if args.input:
        model, table = _checkpoint_and_input(args, labels=True)
        data, where, description = table.data, args.input, _describe_input(args.input, table)
    else:
        model, data, description = _checkpoint_and_data(args)
        where = f"the {args.split} split"
    metrics = evaluate(model, data, batch_size=args.batch_size, device=_device(args))
    oracle = oracle_metrics(data)
    print(description)
    print(f"{model.name} on {where} ({len(data):,} rows):")
    print(metrics_table(metrics, oracle))
    if args.json:
        payload = {
            "model": model.name,
            "checkpoint": args.checkpoint,
            "split": None if args.input else args.split,
            "input": args.input,
            **metrics.to_dict(),
            "oracle_auc": oracle.auc if oracle else None,
        }
        write_json(args.json, payload)
    return 0


def _device(args: argparse.Namespace) -> str:
    return str(resolve_device(args.device))


def _run_predict(args: argparse.Namespace) -> int:
    if not args.output.lower().endswith(OUTPUT_SUFFIXES):
        raise UsageError(f"--output must end in .csv or .parquet, got {args.output}")
    keep = list(dict.fromkeys(args.keep))
    kept = {}
    if args.input:
        model, table = _checkpoint_and_input(args, labels=False, keep=keep)
        data = table.data
        kept = {name: column.to_pandas() for name, column in table.kept.items()}
        print(_describe_input(args.input, table))
    elif keep:
        raise UsageError("--keep copies columns of --input; give --input FILE")
    else:
        model, data, _ = _checkpoint_and_data(args)
    names = [f"p_{step}" for step in data.schema.steps]
    clash = [name for name in kept if name in names]
    if clash:
        raise UsageError(f"--keep {clash[0]}: the output already has a column of that name")
    probs = predict(model, data, batch_size=args.batch_size, device=_device(args))
    frame = pd.DataFrame({**kept, **{name: probs[:, i] for i, name in enumerate(names)}})
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    if args.output.lower().endswith(".parquet"):
        frame.to_parquet(args.output, index=False)
    else:
        frame.to_csv(args.output, index=False)
    print(f"wrote {len(frame):,} rows ({', '.join(frame.columns)}) to {args.output}")
    return 0


def _run_export(args: argparse.Namespace) -> int:
    fmt = args.format or Path(args.output).suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise UsageError(f"--format is needed: {args.output} ends in neither .pt2 nor .onnx")
    checkpoint = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(checkpoint, args.checkpoint)
    try:
        manifest = export_model(model, args.output, fmt, checkpoint_vocabulary(checkpoint))
    except ImportError as error:
        raise UsageError(str(error)) from None
    inputs = ", ".join(
        f"{i['name']} (batch, {i['shape'][1]}) {i['dtype']}" for i in manifest["inputs"]
    )
    size = Path(args.output).stat().st_size
    print(
        f"wrote {model.name} as {fmt} to {args.output} ({size:,} bytes): {inputs} -> "
        f"probabilities (batch, {model.num_steps}) {', '.join(manifest['output']['columns'])}"
    )
    return 0


def _run_compare(args: argparse.Namespace) -> int:
    runs = [run_directory(args.out, m, s) for m in args.models for s in args.seeds if args.out]
    replaced = _check_out(runs, resume=None, overwrite=args.overwrite)
    _check_scopes(args, args.models)
    spec = _data_spec(args, None)
    splits = _load(spec)
    hparams = {name: _hparams(args, name) for name in args.models}
    for name in args.models:  # every --set is checked before hours of training start
        _build(name, splits, hparams[name])
    print(_describe(spec, splits))
    for path in replaced:
        path.unlink()
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


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"apem: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `apem` command; returns the exit status (2 for bad input, 1 for a failed run)."""
    args = build_parser().parse_args(argv)
    keep_freed_memory()
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    if hasattr(args, "quiet"):  # per-epoch lines of train and compare, on stderr
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger = logging.getLogger("apem")
        logger.handlers[:] = [handler]
        logger.setLevel(logging.WARNING if args.quiet else logging.INFO)
    try:
        if args.command == "train":  # under torchrun: one data-parallel rank
            args.device = init_from_environment(args.device)
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return args.run(args)
    except UsageError as error:
        args.subparser.error(str(error))
    except (DataError, CheckpointError) as error:
        print(f"apem: error: {error}", file=sys.stderr)
        return 2
    except NonFiniteLossError as error:
        print(f"apem: error: {error}", file=sys.stderr)
        return 1
    finally:
        leave()
