"""Serving artifacts: a funnel model as a ``torch.export`` program (.pt2) or an ONNX graph.

Each artifact holds the graph and the weights (the kernels' torch backend, aten ops only, so
running it needs torch or onnxruntime but not apem) and a JSON manifest of what a server must know
to feed it: the inputs (``ids`` (batch, F) int64 and, with dense fields, ``dense`` (batch, D)
float32; the batch is dynamic), the output ``probabilities`` (batch, S) float32 in step order,
and the encoding of raw rows into ids (the vocabularies, the log-round bucketing, OOV id 0).

The manifest travels inside the file: in a .pt2 as the extra file ``apem.json``
(``torch.export.load(path, extra_files={"apem.json": ""})``), in an .onnx as the metadata
property ``apem`` (``InferenceSession(path).get_modelmeta().custom_metadata_map["apem"]``).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from apem.data.vocabulary import Vocabulary
from apem.models.base import FunnelModel
from apem_kernels.backend import Backend, BackendChoice

MANIFEST_FORMAT = "apem-export-1"
MANIFEST_NAME = "apem.json"
ONNX_METADATA_KEY = "apem"
FORMATS = ("pt2", "onnx")
BUCKETING = "log-round: floor(ln(x)^2) for x > 2, else trunc(x); then looked up as a string"


def serving_manifest(model: FunnelModel, vocabulary: Vocabulary | None) -> dict[str, Any]:
    """What a server needs besides the graph: inputs, output columns, the id encoding."""
    schema = model.schema
    inputs = [{"name": "ids", "dtype": "int64", "shape": ["batch", schema.num_fields]}]
    if schema.num_dense:
        inputs.append({"name": "dense", "dtype": "float32", "shape": ["batch", schema.num_dense]})
    return {
        "format": MANIFEST_FORMAT,
        "model": model.name,
        "config": model.config,
        "steps": list(schema.steps),
        "sequential": schema.sequential,
        "inputs": inputs,
        "output": {
            "name": "probabilities",
            "dtype": "float32",
            "shape": ["batch", schema.num_steps],
            "columns": [f"p_{step}" for step in schema.steps],
        },
        "fields": list(schema.fields),
        "vocab_sizes": list(schema.vocab_sizes),
        "dense": list(schema.dense),
        "encoding": {
            "oov_id": 0,
            "vocabulary": vocabulary.to_json() if vocabulary is not None else None,
            "bucketing": BUCKETING if vocabulary is not None and vocabulary.bucketed else None,
            "note": (
                "ids[:, f] = 1 + the position of the row's value of fields[f] in "
                "vocabulary.values[f], 0 when absent"
                if vocabulary is not None
                else "the ids are the data's own codes in [0, vocab_sizes[f])"
            ),
        },
    }


def example_inputs(model: FunnelModel, batch: int = 2) -> tuple[Tensor, ...]:
    """Zero inputs of the served signature: ids (batch, F) int64 and dense (batch, D) if any."""
    device = next(model.parameters()).device
    ids = torch.zeros(batch, model.schema.num_fields, dtype=torch.long, device=device)
    if not model.schema.num_dense:
        return (ids,)
    return ids, torch.zeros(batch, model.schema.num_dense, device=device)


def export_program(model: FunnelModel) -> torch.export.ExportedProgram:
    """The model's inference forward as an ExportedProgram with a dynamic batch dimension.

    The model is put in eval mode and its kernels on the torch backend (aten ops only)."""
    model.eval()
    for module in model.modules():
        if isinstance(module, BackendChoice):
            module.backend = Backend.TORCH
    inputs = example_inputs(model)
    batch = torch.export.Dim("batch", min=1)
    dynamic = tuple({0: batch} for _ in inputs)
    with torch.no_grad():
        return torch.export.export(model, inputs, dynamic_shapes=dynamic)


def export_model(
    model: FunnelModel, path: str | Path, fmt: str, vocabulary: Vocabulary | None = None
) -> dict[str, Any]:
    """Write ``model`` with its manifest to ``path`` as ``fmt`` ("pt2" or "onnx").

    Returns the manifest written.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {list(FORMATS)}, got {fmt!r}")
    manifest = serving_manifest(model, vocabulary)
    write_artifact(export_program(model), manifest, path, fmt)
    return manifest


def write_artifact(
    program: torch.export.ExportedProgram, manifest: dict[str, Any], path: str | Path, fmt: str
) -> None:
    """Write an exported program and its manifest to ``path`` as ``fmt``, atomically."""
    text = json.dumps(manifest)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The writers look at the suffix: the temporary file keeps it.
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        if fmt == "pt2":
            torch.export.save(program, temporary, extra_files={MANIFEST_NAME: text})
        else:
            _save_onnx(program, manifest, temporary, text)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _save_onnx(
    program: torch.export.ExportedProgram, manifest: dict, path: Path, text: str
) -> None:
    if importlib.util.find_spec("onnxscript") is None:
        raise ImportError("ONNX export needs onnxscript and onnx: pip install 'apem[onnx]'")
    names = [spec["name"] for spec in manifest["inputs"]]
    onnx_program = torch.onnx.export(
        program,
        input_names=names,
        output_names=[manifest["output"]["name"]],
        dynamo=True,
        verbose=False,
    )
    onnx_program.model.metadata_props[ONNX_METADATA_KEY] = text
    onnx_program.save(path)


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of a .pt2 artifact (torch only) or an .onnx one (needs onnxruntime)."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return json.loads(session.get_modelmeta().custom_metadata_map[ONNX_METADATA_KEY])
    extra = {MANIFEST_NAME: ""}
    torch.export.load(path, extra_files=extra)
    return json.loads(extra[MANIFEST_NAME])
