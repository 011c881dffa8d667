"""Serving artifacts: every model as .pt2 and .onnx, equal to the model, runnable without apem."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from apem.cli import main
from apem.data.schema import Schema
from apem.export import (
    MANIFEST_FORMAT,
    export_model,
    export_program,
    read_manifest,
    serving_manifest,
    write_artifact,
)
from apem.models import MODEL_NAMES, build_model

SCHEMA = Schema(("site", "hour", "device"), (5, 7, 3), ("click", "conversion"), ("price",))
TINY = {"apem": {"num_layers": 2, "num_inducing": 4}}
TOLERANCE = 1e-5


def tiny_model(name: str):
    torch.manual_seed(0)
    return build_model(name, SCHEMA, embed_dim=4, **TINY.get(name, {})).eval()


def inputs(batch: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.stack(
        [torch.randint(0, size, (batch,), generator=gen) for size in SCHEMA.vocab_sizes], dim=1
    )
    return ids, torch.rand(batch, 1, generator=gen) * 3


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_exports_to_pt2_and_onnx_equal_to_the_model(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = tiny_model(name)
    manifest = serving_manifest(model, None)
    program = export_program(model)  # traced at batch 2; served at other sizes below
    for fmt in ("pt2", "onnx"):
        write_artifact(program, manifest, tmp_path / f"m.{fmt}", fmt)
        assert read_manifest(tmp_path / f"m.{fmt}") == json.loads(json.dumps(manifest))
    served = torch.export.load(tmp_path / "m.pt2").module()
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 5, 33):
        ids, dense = inputs(batch)
        with torch.no_grad():
            want = model(ids, dense).numpy()
            from_pt2 = served(ids, dense).numpy()
        (from_onnx,) = session.run(None, {"ids": ids.numpy(), "dense": dense.numpy()})
        assert from_pt2.shape == from_onnx.shape == (batch, 2)
        np.testing.assert_allclose(from_pt2, want, rtol=0, atol=TOLERANCE)
        np.testing.assert_allclose(from_onnx, want, rtol=0, atol=TOLERANCE)


def test_pt2_runs_where_apem_cannot_be_imported(tmp_path):
    model = tiny_model("apem")
    manifest = export_model(model, tmp_path / "apem.pt2", "pt2")
    ids, dense = inputs(4)
    np.save(tmp_path / "ids.npy", ids.numpy())
    np.save(tmp_path / "dense.npy", dense.numpy())
    script = (
        "import sys; sys.modules['apem'] = sys.modules['apem_kernels'] = None\n"
        "import json, numpy as np, torch\n"
        f"extra = {{'apem.json': ''}}; path = {str(tmp_path)!r}\n"
        "program = torch.export.load(path + '/apem.pt2', extra_files=extra)\n"
        "ids, dense = (torch.from_numpy(np.load(f'{path}/{n}.npy')) for n in ('ids', 'dense'))\n"
        "np.save(path + '/out.npy', program.module()(ids, dense).detach().numpy())\n"
        "print(json.loads(extra['apem.json'])['output']['columns'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2] == str(manifest["output"]["columns"])
    with torch.no_grad():
        want = model(ids, dense).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), want, rtol=0, atol=TOLERANCE)


def test_manifest_describes_the_served_signature():
    manifest = serving_manifest(tiny_model("esmm"), None)
    assert manifest["format"] == MANIFEST_FORMAT and manifest["model"] == "esmm"
    assert manifest["inputs"] == [
        {"name": "ids", "dtype": "int64", "shape": ["batch", 3]},
        {"name": "dense", "dtype": "float32", "shape": ["batch", 1]},
    ]
    assert manifest["output"]["columns"] == ["p_click", "p_conversion"]
    assert manifest["vocab_sizes"] == [5, 7, 3] and manifest["encoding"]["vocabulary"] is None


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"format must be one of \['pt2', 'onnx'\]"):
        export_model(tiny_model("esmm"), tmp_path / "m.tf", "tf")


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    """A single_task checkpoint trained on a CSV that is deleted afterwards, and a new table
    (with a key column the model never saw, and an unseen site) in another folder."""
    root = tmp_path_factory.mktemp("table")
    rows = 200
    table = pd.DataFrame(
        {
            "site": np.array(["a", "b", "07", "NA"] * (rows // 4)),
            "hour": np.arange(rows) % 24,
            "click": (np.arange(rows) % 3 == 0).astype(int),
            "buy": (np.arange(rows) % 9 == 0).astype(int),
        }
    )
    table.to_csv(root / "train.csv", index=False)
    training = ["--epochs", "1", "--batch-size", "64", "--embed-dim", "4", "--device", "cpu"]
    command = ["train", "--model", "single_task", "--data", str(root / "train.csv")]
    command += ["--labels", "click,buy", "--cache-dir", str(root / "cache")]
    assert main([*command, *training, "--no-progress", "--quiet", "--out", str(root / "run")]) == 0
    (root / "train.csv").unlink()
    serving = root / "serving"
    serving.mkdir()
    new = table.head(7).drop(columns=["click", "buy"])
    new.insert(0, "user_id", [f"u{i:03d}" for i in range(7)])
    new.loc[3, "site"] = "zzz"
    new.to_csv(serving / "new.csv", index=False)
    return root / "run" / "best.pt", serving


def test_predict_keeps_key_columns_and_export_serves_the_same_scores(
    table_run, monkeypatch, capsys
):
    checkpoint, serving = table_run
    monkeypatch.chdir(serving)
    args = ["--input", "new.csv", "--keep", "user_id,hour", "--output", "scores.csv"]
    assert main(["predict", str(checkpoint), *args]) == 0
    scores = pd.read_csv("scores.csv", dtype={"user_id": str})
    assert list(scores.columns) == ["user_id", "hour", "p_click", "p_buy"]
    assert scores["user_id"].tolist() == [f"u{i:03d}" for i in range(7)]

    assert main(["export", str(checkpoint), "--output", "model.pt2"]) == 0
    assert "wrote single_task as pt2 to model.pt2" in capsys.readouterr().out
    extra = {"apem.json": ""}
    program = torch.export.load("model.pt2", extra_files=extra)
    manifest = json.loads(extra["apem.json"])
    vocabulary = manifest["encoding"]["vocabulary"]
    assert vocabulary["fields"] == manifest["fields"] == ["site", "hour"]
    # Encode as a server would, from the manifest alone: 1 + the value's position, else 0.
    new = pd.read_csv("new.csv", dtype=str, keep_default_na=False)
    ids = np.stack(
        [
            [values.index(v) + 1 if v in values else 0 for v in new[field]]
            for field, values in zip(vocabulary["fields"], vocabulary["values"], strict=True)
        ],
        axis=1,
    )
    assert ids[3, 0] == 0  # the unseen site is out of vocabulary
    with torch.no_grad():
        served = program.module()(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(served, scores[["p_click", "p_buy"]].to_numpy(), atol=TOLERANCE)


def test_predict_keep_errors(table_run, monkeypatch, capsys):
    checkpoint, serving = table_run
    monkeypatch.chdir(serving)
    with pytest.raises(SystemExit) as exit_:
        main(["predict", str(checkpoint), "--keep", "user_id", "--output", "s.csv"])
    assert exit_.value.code == 2 and "--keep copies columns of --input" in capsys.readouterr().err
    code = main(
        ["predict", str(checkpoint), "--input", "new.csv", "--keep", "order", "--output", "s.csv"]
    )
    assert code == 2
    assert "missing column (asked to keep it)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", str(checkpoint), "--output", "model.bin"])
    assert "--format is needed: model.bin ends in neither .pt2 nor .onnx" in capsys.readouterr().err
