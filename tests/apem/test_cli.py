"""The `apem` command in-process through ``main([...])`` on tiny synthetic funnels."""

import contextlib
import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from apem.cli import main
from apem.models import MODEL_NAMES

TINY_DATA = [
    "--rows", "800", "--fields", "6",
    "--data-option", "base_rates=[0.3, 0.12]",
    "--data-option", "vocab_size=20",
    "--data-option", "signal=2.0",
]  # fmt: skip
TINY_TRAINING = [
    "--epochs", "2", "--batch-size", "64", "--lr", "0.01", "--embed-dim", "4",
    "--set", "tower_hidden=[8]", "--device", "cpu", "--no-progress", "--quiet",
]  # fmt: skip
STEPS = ["click", "conversion"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One `apem train` of ESMM: (checkpoint folder, its --json payload, its stdout)."""
    out = tmp_path_factory.mktemp("run")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(
            ["train", "--model", "esmm", *TINY_DATA, *TINY_TRAINING]
            + ["--out", str(out), "--json", str(out / "result.json")]
        )
    assert code == 0
    return out, json.loads((out / "result.json").read_text()), stdout.getvalue()


def test_train_prints_auc_beside_the_oracle(trained):
    _, _, stdout = trained
    assert "AUC  oracle AUC  cond. AUC  oracle cond.  logloss" in stdout
    assert "data synthetic: 640 / 80 / 80 rows" in stdout
    assert "monotonicity violations" in stdout


def test_train_json_contents(trained):
    out, payload, _ = trained
    assert payload["model"] == "esmm"
    assert list(payload["auc"]) == STEPS and all(v > 0.6 for v in payload["auc"].values())
    assert list(payload["conditional_auc"]) == ["conversion"]
    assert list(payload["oracle_auc"]) == STEPS
    assert payload["oracle_auc"]["click"] > payload["auc"]["click"] - 0.05
    assert payload["samples_per_s"] > 0
    assert len(payload["history"]) == 2
    assert payload["model_config"]["tower_hidden"] == [8]
    assert payload["data"]["options"]["vocab_size"] == 20
    assert payload["checkpoint"] == str(out / "best.pt")


def test_eval_reproduces_the_training_report(trained, tmp_path, capsys):
    out, payload, _ = trained
    assert main(["eval", str(out / "best.pt"), "--json", str(tmp_path / "eval.json")]) == 0
    evaluated = json.loads((tmp_path / "eval.json").read_text())
    assert evaluated["auc"] == payload["auc"]
    assert evaluated["conditional_auc"] == payload["conditional_auc"]
    assert evaluated["split"] == "test" and evaluated["model"] == "esmm"
    assert "esmm on the test split (80 rows)" in capsys.readouterr().out


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_predict_writes_a_column_per_step(trained, tmp_path, suffix):
    out, _, _ = trained
    target = tmp_path / f"preds.{suffix}"
    assert main(["predict", str(out / "best.pt"), "--split", "valid", "--output", str(target)]) == 0
    frame = pd.read_csv(target) if suffix == "csv" else pd.read_parquet(target)
    assert list(frame.columns) == ["p_click", "p_conversion"]
    assert len(frame) == 80
    assert ((frame > 0) & (frame < 1)).all().all()
    assert (frame["p_conversion"] <= frame["p_click"]).all()  # ESMM's product rule


def test_predict_scores_a_new_table_with_the_training_vocabulary(tmp_path):
    table = pd.DataFrame(
        {
            "site": np.array(["a", "b", "c", "d"] * 50),
            "hour": np.arange(200) % 24,
            "click": (np.arange(200) % 3 == 0).astype(int),
            "buy": (np.arange(200) % 9 == 0).astype(int),
        }
    )
    table.to_csv(tmp_path / "train.csv", index=False)
    table.head(5).drop(columns=["click", "buy"]).assign(site="zzz").to_csv(
        tmp_path / "new.csv", index=False
    )
    data = ["--data", str(tmp_path / "train.csv"), "--labels", "click,buy"]
    args = ["--model", "single_task", "--cache-dir", str(tmp_path / "cache")]
    assert main(["train", *args, *data, *TINY_TRAINING, "--out", str(tmp_path / "run")]) == 0
    output = tmp_path / "new_preds.csv"
    command = ["predict", str(tmp_path / "run" / "best.pt"), "--input", str(tmp_path / "new.csv")]
    assert main([*command, "--output", str(output)]) == 0
    assert pd.read_csv(output).shape == (5, 2)


def test_resume_continues_to_the_uninterrupted_result(tmp_path):
    common = ["train", "--model", "shared_bottom", *TINY_DATA, *TINY_TRAINING]
    common += ["--set", "dropout=0.2"]
    assert main([*common, "--out", str(tmp_path / "a"), "--json", str(tmp_path / "a.json")]) == 0
    assert main([*common, "--epochs", "1", "--out", str(tmp_path / "b")]) == 0
    resumed = [
        *common,
        "--out",
        str(tmp_path / "b"),
        "--resume",
        "--json",
        str(tmp_path / "b.json"),
    ]
    assert main(resumed) == 0
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "ab")
    assert a["auc"] == b["auc"] and a["logloss"] == b["logloss"]


def test_synthetic_data_gets_the_quick_schedule_and_tables_the_paper_defaults(tmp_path):
    quick = tmp_path / "quick.json"
    args = ["train", "--model", "esmm", "--rows", "2000", "--steps", "3", "--max-steps", "1"]
    assert main([*args, "--quiet", "--out", str(tmp_path / "q"), "--json", str(quick)]) == 0
    payload = json.loads(quick.read_text())
    assert {k: payload["train_config"][k] for k in ("epochs", "lr", "batch_size")} == {
        "epochs": 3, "lr": 4e-3, "batch_size": 512
    }  # fmt: skip
    assert "base_rates" not in payload["data"]["options"]  # the generator's rates for 3 steps
    assert list(payload["auc"]) == ["click", "step2", "conversion"]

    table = tmp_path / "t.csv"
    table.write_text("site,click,buy\n" + "a,1,1\nb,1,0\nc,0,0\n" * 20)
    paper = tmp_path / "paper.json"
    args = ["train", "--model", "esmm", "--data", str(table), "--labels", "click,buy"]
    args += ["--max-steps", "1", "--cache-dir", str(tmp_path / "cache")]
    assert main([*args, "--quiet", "--out", str(tmp_path / "p"), "--json", str(paper)]) == 0
    config = json.loads(paper.read_text())["train_config"]
    assert (config["epochs"], config["lr"], config["batch_size"]) == (10, 1e-3, 1024)


def test_default_model_is_apem(tmp_path):
    small = ["--set", "num_layers=1", "--set", "num_inducing=4", "--max-steps", "2"]
    json_path = tmp_path / "apem.json"
    args = ["train", *TINY_DATA, *TINY_TRAINING, *small, "--out", str(tmp_path)]
    assert main([*args, "--json", str(json_path)]) == 0
    payload = json.loads(json_path.read_text())
    assert payload["model"] == "apem" and payload["steps"] == 2


def test_compare_table_and_json(tmp_path, capsys):
    json_path = tmp_path / "compare.json"
    args = ["compare", "--models", "single_task,esmm", "--seeds", "0,1"]
    assert main([*args, *TINY_DATA, *TINY_TRAINING, "--json", str(json_path)]) == 0
    stdout = capsys.readouterr().out
    assert "click AUC" in stdout and "gain conversion" in stdout and " ± " in stdout
    assert "oracle test AUC" in stdout
    payload = json.loads(json_path.read_text())
    entries = {entry["model"]: entry for entry in payload["models"]}
    assert list(entries) == ["single_task", "esmm"]
    for entry in entries.values():
        assert entry["seeds"] == [0, 1]
        assert all(len(v) == 2 for v in entry["auc"].values())
        assert len(entry["conditional_auc"]["conversion"]) == 2
        assert len(entry["samples_per_s"]) == 2
        assert entry["auc_mean"]["click"] == pytest.approx(np.mean(entry["auc"]["click"]))
    assert entries["single_task"]["gain_pct"] == {"click": 0.0, "conversion": 0.0}
    assert entries["esmm"]["best_other"] == {"click": "single_task", "conversion": "single_task"}
    assert set(payload["oracle_auc"]) == set(STEPS)


def test_unknown_model_lists_the_valid_ones(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--model", "gbdt"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'gbdt'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["compare", "--models", "apem,gbdt"])
    err = capsys.readouterr().err
    assert "unknown model(s) ['gbdt']" in err and ", ".join(MODEL_NAMES) in err


def test_unknown_hyper_parameter_lists_the_valid_ones(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--model", "esmm", *TINY_DATA, "--set", "depth=3"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown hyper-parameter(s) ['depth']" in err and "tower_hidden" in err


def test_synthetic_options_need_synthetic_data(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--data", "table.csv", "--labels", "a,b", "--rows", "10"])
    assert "apply to --data synthetic only" in capsys.readouterr().err


def test_data_errors_surface_unchanged(tmp_path, capsys):
    (tmp_path / "bad.csv").write_text("site,click,buy\na,1,0\nb,0,1\n")
    code = main(["train", "--data", str(tmp_path / "bad.csv"), "--labels", "click,buy"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("apem: error: ") and "line 3, column 'buy'" in err
    assert "Traceback" not in err


def test_checkpoint_on_other_data_is_a_clear_error(trained, capsys):
    out, _, _ = trained
    code = main(["eval", str(out / "best.pt"), "--data", "synthetic", "--rows", "300"])
    assert code == 2
    assert "was trained on another schema (fields:" in capsys.readouterr().err


def test_python_dash_m_apem_help():
    done = subprocess.run(
        [sys.executable, "-m", "apem", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert all(command in done.stdout for command in ("train", "eval", "predict", "compare"))


def test_compile_flag_takes_an_optional_backend():
    from apem.cli import build_parser

    parse = build_parser().parse_args
    assert parse(["train"]).compile is False
    assert parse(["train", "--compile"]).compile is True
    assert parse(["train", "--compile", "aot_eager"]).compile == "aot_eager"
    with pytest.raises(SystemExit):
        parse(["train", "--compile", "no_such_backend"])


@pytest.mark.parametrize(("cores", "expected"), [(1, 1), (2, 1), (3, None), (16, None)])
def test_one_thread_by_default_on_two_cores_or_fewer(monkeypatch, cores, expected):
    from apem import cli

    monkeypatch.setattr(cli.os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert cli.default_num_threads() == expected


def test_train_diagnostics_prints_and_stores_per_layer_statistics(tmp_path):
    stdout = io.StringIO()
    apem = ["--set", "num_layers=2", "--set", "num_inducing=4", "--epochs", "1"]
    with contextlib.redirect_stdout(stdout):
        code = main(
            ["train", *TINY_DATA, *TINY_TRAINING, *apem, "--diagnostics"]
            + ["--out", str(tmp_path), "--json", str(tmp_path / "result.json")]
        )
    assert code == 0
    text = stdout.getvalue()
    assert "attention diagnostics at initialisation" in text
    assert "attention diagnostics at the best epoch" in text
    diagnostics = json.loads((tmp_path / "result.json").read_text())["diagnostics"]
    for moment in ("initialisation", "trained"):
        assert [d["layer"] for d in diagnostics[moment]] == [1, 2]
        assert 0 <= diagnostics[moment][0]["entropy"] <= 1
    assert "the towers' input at the best epoch" in text
    assert [r["step"] for r in diagnostics["towers"]] == ["click", "conversion"]


def test_train_diagnostics_needs_a_model_with_attention(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(
            ["train", "--model", "esmm", *TINY_DATA, *TINY_TRAINING, "--diagnostics"]
            + ["--out", str(tmp_path)]
        )
    assert stop.value.code == 2
    assert "--diagnostics inspects APEM's attention; esmm has none" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # refused before anything was written
