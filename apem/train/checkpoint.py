"""Training checkpoints: self-contained, checked on load, written atomically.

A checkpoint is a plain dict of tensors and primitives (loadable with ``weights_only=True``):

    format, model: {name, config, state}, schema: Schema as a dict, optimizer: state dict,
    train_config: TrainConfig as a dict, progress: trainer counters and history,
    rng: {torch, cuda, numpy, python}, metadata: caller's JSON-ready dict (e.g. the data source),
    data: {vocabulary (None for synthetic ids), bucketing, source, fingerprint} (``data_section``),
    checksums: {tensors: {path: CRC-32}, rest: CRC-32 of everything else}

``load_checkpoint`` verifies every checksum and refuses non-finite weights, so a flipped bit or
a diverged model is an error, never a plausible number.
"""

from __future__ import annotations

import dataclasses
import os
import random
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from apem.data.fingerprint import fingerprint, fingerprint_difference
from apem.data.schema import FunnelSplits, Schema
from apem.data.vocabulary import Vocabulary
from apem.models import build_model
from apem.models.registry import MODELS

FORMAT = "apem-checkpoint-2"
LAST = "last.pt"
BEST = "best.pt"
TEMPORARY = ".{name}.{pid}.tmp"


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


def data_section(splits: FunnelSplits) -> dict[str, Any]:
    """What a checkpoint keeps of its training data: enough to encode new data and to tell
    whether it meets the same data again (JSON-ready).

    vocabulary: ``Vocabulary.to_json()`` (None when ids are the raw values, as in synthetic
    data); bucketing: the log-round bucketed fields; source: the conversion facts (source,
    files, options, ...); fingerprint: ``apem.data.fingerprint.fingerprint(splits)``.
    """
    vocab = splits.vocab
    source = {k: v for k, v in splits.metadata.items() if k != "cache"}
    return {
        "vocabulary": None if vocab is None else vocab.to_json(),
        "bucketing": {"method": "log_round", "fields": list(vocab.bucketed) if vocab else []},
        "source": source,
        "fingerprint": fingerprint(splits),
    }


def checkpoint_vocabulary(checkpoint: dict[str, Any]) -> Vocabulary | None:
    """The vocabularies a checkpoint's model was trained with (None for raw-id data)."""
    saved = checkpoint["data"]["vocabulary"]
    return None if saved is None else Vocabulary.from_json(saved)


def check_data(checkpoint: dict[str, Any], splits: FunnelSplits, source: str | Path) -> None:
    """Raise :class:`CheckpointError` unless ``splits`` are the checkpoint's training data.

    Compares the schema, the vocabularies (each value must keep its id) and the fingerprint
    (row counts and sampled rows of every split); the message says what differs.
    """
    check_schema(checkpoint, splits.schema, source)
    saved = checkpoint["data"]
    differences = []
    if (saved["vocabulary"] is None) != (splits.vocab is None):
        differences.append("raw ids on one side, vocabularies on the other")
    elif splits.vocab is not None:
        vocabulary = checkpoint_vocabulary(checkpoint).difference(splits.vocab)
        if vocabulary:
            differences.append(f"vocabularies: {vocabulary}, so ids would mean other values")
    rows = fingerprint_difference(saved["fingerprint"], fingerprint(splits))
    if rows:
        differences.insert(0, rows)
    if differences:
        raise CheckpointError(
            f"the data differ from those checkpoint {source} was trained on "
            f"({'; '.join(differences)}); to score other data with this checkpoint's "
            "vocabularies, pass --input FILE (eval or predict)"
        )


def _structure(value: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    """``value`` with each tensor replaced by its dtype and shape; the tensors go to ``tensors``."""
    if isinstance(value, torch.Tensor):
        tensors[path] = value
        return ("tensor", str(value.dtype), tuple(value.shape))
    if isinstance(value, dict):
        return [(repr(k), _structure(v, f"{path}.{k}", tensors)) for k, v in value.items()]
    if isinstance(value, (list, tuple)):
        items = [_structure(v, f"{path}[{i}]", tensors) for i, v in enumerate(value)]
        return (type(value).__name__, items)
    return value


def _crc(tensor: torch.Tensor) -> int:
    data = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
    return zlib.crc32(data)


def checksums(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """CRC-32 of every tensor's bytes (by path, e.g. ``model.state.tower.0.weight``) and of
    the rest of the checkpoint (its structure, every number and string)."""
    tensors: dict[str, torch.Tensor] = {}
    body = {k: v for k, v in checkpoint.items() if k != "checksums"}
    rest = zlib.crc32(repr(_structure(body, "", tensors)).encode())
    return {"tensors": {k.lstrip("."): _crc(t) for k, t in tensors.items()}, "rest": rest}


def _verify(checkpoint: dict[str, Any], path: str | Path) -> None:
    saved = checkpoint.get("checksums")
    if saved is None:
        raise CheckpointError(f"checkpoint {path} has no checksums (a damaged or altered file)")
    current = checksums(checkpoint)
    bad = [k for k, crc in current["tensors"].items() if saved["tensors"].get(k) != crc]
    bad += [k for k in saved["tensors"] if k not in current["tensors"]]
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise CheckpointError(
            f"checkpoint {path} is corrupt: {shown} fail their checksums (bit rot or a "
            "damaged copy)"
        )
    if current["rest"] != saved["rest"]:
        raise CheckpointError(
            f"checkpoint {path} is corrupt: its non-tensor content fails its checksum"
        )
    state = checkpoint.get("model", {}).get("state", {})
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            count = int((~torch.isfinite(tensor)).sum())
            raise CheckpointError(
                f"checkpoint {path} holds non-finite weights ({name}: {count} NaN/inf values); "
                "a model that diverged cannot be evaluated or resumed"
            )


def save_checkpoint(path: str | Path, checkpoint: dict[str, Any]) -> None:
    """Write ``checkpoint`` (with its checksums) to ``path`` atomically: a temporary file
    beside it, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(TEMPORARY.format(name=path.name, pid=os.getpid()))
    checkpoint = {**checkpoint, "checksums": checksums(checkpoint)}
    try:
        with open(temporary, "wb") as handle:
            torch.save(checkpoint, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Delete the temporary files that killed writers left in ``directory``; return them."""
    removed = []
    for candidate in Path(directory).glob(TEMPORARY.format(name="*.pt", pid="*")):
        pid = candidate.name.rsplit(".", 2)[-2]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint onto the CPU and verify it.

    Raises:
        CheckpointError: the file is missing, not an apem checkpoint (or of an older format),
            fails a checksum, or holds non-finite weights.
    """
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except IsADirectoryError:
        raise CheckpointError(f"checkpoint {path} is a directory, not a .pt file") from None
    except Exception as error:
        raise CheckpointError(f"{path} is not a readable apem checkpoint: {error}") from None
    if not isinstance(checkpoint, dict) or not str(checkpoint.get("format")).startswith(
        "apem-checkpoint"
    ):
        raise CheckpointError(f"{path} is not an apem checkpoint (expected format {FORMAT})")
    if checkpoint["format"] != FORMAT:
        raise CheckpointError(
            f"{path} is an {checkpoint['format']} checkpoint; this apem reads {FORMAT} (retrain)"
        )
    _verify(checkpoint, path)
    return checkpoint


def warn_if_stale_best(checkpoint: dict[str, Any], path: str | Path) -> None:
    """Warn when ``path`` is a ``best.pt`` older than the best its ``last.pt`` records: a run
    killed between the two writes (``--resume`` rewrites ``best.pt``)."""
    path = Path(path)
    last = path.with_name(LAST)
    if path.name != BEST or not last.exists():
        return
    try:
        recorded = load_checkpoint(last)["progress"]["best_step"]
    except CheckpointError:
        return
    if recorded > checkpoint["progress"]["step"]:
        warnings.warn(
            f"{path} is from step {checkpoint['progress']['step']}, but {last} records a better "
            f"model at step {recorded} (the run stopped between the two writes): resume the run "
            f"to rewrite {BEST}, or score {last}",
            stacklevel=2,
        )


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


def saved_config(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's hyper-parameters, with the options its model gained since (the
    model's ``added_options``) at the values that applied when it was written."""
    saved = checkpoint["model"]
    added = MODELS[saved["name"]].added_options if saved["name"] in MODELS else {}
    return {**added, **saved["config"]}


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
    config = saved_config(checkpoint)
    differing = sorted(
        key for key in set(config) | set(model.config) if config.get(key) != model.config.get(key)
    )
    if differing:
        details = ", ".join(
            f"{k}: checkpoint {config.get(k)!r} vs model {model.config.get(k)!r}" for k in differing
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
    model = build_model(checkpoint["model"]["name"], schema, **saved_config(checkpoint))
    load_model_state(model, checkpoint, schema, source)
    return model
