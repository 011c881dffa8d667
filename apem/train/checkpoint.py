"""Training checkpoints: atomic writes, RNG capture, and loading with clear mismatch errors.

A checkpoint is a plain dict of tensors and primitives (loadable with ``weights_only=True``):

    format, model: {name, config, state}, schema: Schema as a dict, optimizer: state dict,
    train_config: TrainConfig as a dict, progress: trainer counters and history,
    rng: {torch, cuda, numpy, python}, metadata: caller's JSON-ready dict (e.g. the data source)
"""

from __future__ import annotations

import dataclasses
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from apem.data.schema import Schema
from apem.models import build_model

FORMAT = "apem-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or that does not fit the model or data it meets."""


def schema_to_dict(schema: Schema) -> dict[str, Any]:
    values = dataclasses.asdict(schema)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def schema_from_dict(values: dict[str, Any]) -> Schema:
    return Schema(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def capture_rng() -> dict[str, Any]:
    """The global RNG states of torch (CPU and CUDA), numpy and Python."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": random.getstate(),
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng`."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached"],
        )
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> None:
    """Write ``checkpoint`` to ``path`` atomically: a temporary file beside it, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            torch.save(checkpoint, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint onto the CPU; :class:`CheckpointError` if it is not one of ours."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except Exception as error:
        raise CheckpointError(f"{path} is not a readable apem checkpoint: {error}") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an apem checkpoint (expected format {FORMAT})")
    return checkpoint


def _schema_difference(saved: Schema, current: Schema) -> str | None:
    for name in ("fields", "vocab_sizes", "steps", "dense", "sequential"):
        a, b = getattr(saved, name), getattr(current, name)
        if a != b:
            return f"{name}: checkpoint has {_short(a)}, the data has {_short(b)}"
    return None


def _short(value: Any, limit: int = 8) -> str:
    if isinstance(value, tuple) and len(value) > limit:
        return f"{list(value[:limit])}... ({len(value)} items)"
    return repr(list(value) if isinstance(value, tuple) else value)


def check_schema(checkpoint: dict[str, Any], schema: Schema, source: str | Path) -> None:
    """Raise :class:`CheckpointError` unless the checkpoint was trained on ``schema``."""
    difference = _schema_difference(schema_from_dict(checkpoint["schema"]), schema)
    if difference:
        raise CheckpointError(f"checkpoint {source} was trained on another schema ({difference})")


def load_model_state(
    model: nn.Module, checkpoint: dict[str, Any], schema: Schema, source: str | Path
) -> None:
    """Load the checkpoint's weights into ``model`` (a FunnelModel built for ``schema``).

    Raises:
        CheckpointError: the checkpoint holds another model, other hyper-parameters or another
            schema, naming what differs.
    """
    check_model_state(model, checkpoint, schema, source)
    model.load_state_dict(checkpoint["model"]["state"])


def check_model_state(
    model: nn.Module, checkpoint: dict[str, Any], schema: Schema, source: str | Path
) -> None:
    """Raise a CheckpointError unless the checkpoint's weights fit ``model`` and ``schema``."""
    saved = checkpoint["model"]
    if saved["name"] != model.name:
        raise CheckpointError(
            f"checkpoint {source} holds a '{saved['name']}' model, not '{model.name}'"
        )
    check_schema(checkpoint, schema, source)
    differing = sorted(
        key
        for key in set(saved["config"]) | set(model.config)
        if saved["config"].get(key) != model.config.get(key)
    )
    if differing:
        details = ", ".join(
            f"{k}: checkpoint {saved['config'].get(k)!r} vs model {model.config.get(k)!r}"
            for k in differing
        )
        raise CheckpointError(f"checkpoint {source} has other hyper-parameters ({details})")
    expected, state = model.state_dict(), saved["state"]
    problems = [
        *(f"missing {k}" for k in sorted(expected.keys() - state.keys())),
        *(f"unexpected {k}" for k in sorted(state.keys() - expected.keys())),
        *(
            f"{k} has shape {tuple(state[k].shape)}, the model {tuple(expected[k].shape)}"
            for k in sorted(expected.keys() & state.keys())
            if state[k].shape != expected[k].shape
        ),
    ]
    if problems:
        shown = "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "")
        raise CheckpointError(f"checkpoint {source} does not fit the model: {shown}")


def model_from_checkpoint(checkpoint: dict[str, Any], source: str | Path) -> nn.Module:
    """Rebuild the checkpoint's model (name, hyper-parameters, schema) with its weights."""
    schema = schema_from_dict(checkpoint["schema"])
    saved = checkpoint["model"]
    model = build_model(saved["name"], schema, **saved["config"])
    load_model_state(model, checkpoint, schema, source)
    return model
