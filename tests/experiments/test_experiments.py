"""Each experiment command on the smoke preset, into a temporary folder: its JSON, its section
of the results page and its figures."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from apem.train import TrainConfig
from experiments import environment, runner
from experiments.__main__ import main
from experiments.comparison import merge_comparisons
from experiments.runner import Variant
from experiments.selector import selection_rates

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RUNS = {
    "models": ["run", "models", "--dataset", "synthetic2"],
    "ablations": ["run", "ablations", "--dataset", "synthetic4"],
    "selector": ["run", "selector", "--dataset", "synthetic2"],
    "efficiency": ["run", "efficiency"],
}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every experiment run once with the smoke preset into one folder."""
    out = tmp_path_factory.mktemp("experiments") / "results"
    for argv in RUNS.values():
        assert main([*argv, "--preset", "smoke", "--out", str(out), "--threads", "1"]) == 0
    return out


def _json(out: Path, name: str) -> dict:
    return json.loads((out / f"{name}.json").read_text())


def _page(out: Path) -> str:
    return out.with_suffix(".md").read_text()


def _assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC, path


def test_every_run_records_its_command_machine_and_date(results: Path) -> None:
    page = _page(results)
    for name, argv in RUNS.items():
        tag = name if name == "efficiency" else f"{name}-{argv[3]}"
        payload = _json(results, tag)
        assert payload["command"].startswith("python -m experiments " + " ".join(argv))
        assert payload["command"] in page
        assert "CPU" in payload["machine"] and "torch" in payload["machine"]
        # the vector width torch's CPU kernels use: timings and rounding depend on it
        assert f"capability {torch.backends.cpu.get_cpu_capability()}" in payload["machine"]
        assert payload["preset"] == "smoke" and payload["wall_s"] > 0
        assert payload["date"].endswith("UTC")


def test_models_table_has_every_model_seed_and_the_oracle(results: Path) -> None:
    payload = _json(results, "models-synthetic2")
    comparison = payload["comparison"]
    models = [m["model"] for m in comparison["models"]]
    assert models == ["single_task", "esmm", "apem"]
    assert comparison["steps"] == ["click", "conversion"]
    for entry in comparison["models"]:
        for step in comparison["steps"]:
            assert len(entry["auc"][step]) == 2  # two smoke seeds
            assert all(0.0 <= a <= 1.0 for a in entry["auc"][step])
        assert 0.0 <= entry["violation_rate_mean"] <= 1.0
        assert payload["selection"][entry["model"]]["hparams"]["dropout"] == 0.0
    apem = comparison["models"][2]
    assert apem["best_other"]["click"] in ("single_task", "esmm")
    assert set(payload["oracle"]["auc"]) == {"click", "conversion"}
    assert payload["scale"]["rows"] == {"train": 2_400, "valid": 300, "test": 300}
    page = _page(results)
    assert "### Model comparison on synthetic2" in page
    assert "| oracle (true P) |" in page and "| **apem** |" in page
    assert "Oracle ceiling" in page
    _assert_png(results / "models-synthetic2.png")


def test_ablations_switch_off_one_part_each(results: Path) -> None:
    payload = _json(results, "ablations-synthetic4")
    assert [m["model"] for m in payload["comparison"]["models"]] == [
        "apem",
        "apem w/o dynamic selector",
        "apem w/o task indicators",
        "apem w/o dependence loss",
    ]
    fixed = payload["fixed"]
    assert fixed["apem w/o dynamic selector"]["dynamic_selector"] is False
    assert fixed["apem w/o task indicators"]["task_indicators"] is False
    assert fixed["apem w/o dependence loss"]["dependence_weight"] == 0.0
    assert payload["comparison"]["steps"] == ["click", "authorize", "conversion"]
    page = _page(results)
    assert "### APEM ablations on synthetic4" in page
    assert "**apem w/o task indicators** against full APEM" in page
    _assert_png(results / "ablations-synthetic4.png")


def test_selector_curves_and_selection_rates(results: Path) -> None:
    payload = _json(results, "selector-synthetic2")
    curves = payload["figure5"]
    u = np.array(curves["u"])
    assert curves["gamma"] == {"1": 9.9998, "25000": 5.0, "100000": 0.001}
    late = np.array(curves["f"]["100000"])
    assert np.all(late[u < -1e-3] == 0.0) and np.all(late[u > 1e-3] == 1.0)  # a hard step
    early = np.array(curves["f"]["1"])
    assert early[np.argmin(np.abs(u))] == pytest.approx(0.5)
    inside = np.abs(u) < 4.99  # γ/2 = 4.9999 at step 1
    assert np.all(np.diff(early) >= 0)
    assert np.all((early[inside] > 0) & (early[inside] < 1)) and early[u >= 5].min() == 1.0
    rates = payload["figure7a"]
    assert sum(rates["histogram"]["counts"]) == rates["test_rows"] == 300
    assert rates["train_steps"] == 5  # 2,400 rows at batch 512, one epoch
    assert rates["gamma"] == pytest.approx(1e-3)  # the run-length schedule's floor at its end
    assert len(rates["per_layer_mean_rate"]) == 2  # the smoke APEM has 2 layers
    attention = payload["attention"]
    assert list(attention) == ["default", "paper"]
    for result in attention.values():
        assert result["hparams"]["num_layers"] == 2  # the smoke APEM
        for moment in ("initialisation", "trained"):
            assert [d["layer"] for d in result[moment]] == [1, 2]
            assert all(0 <= d["entropy"] <= 1 for d in result[moment])
        assert [r["step"] for r in result["towers"]] == ["click", "conversion"]
    by_seed = payload["attention_by_seed"]
    assert list(by_seed) == ["0", "1"]  # the smoke preset's seeds
    assert by_seed["0"]["trained"] == attention["default"]["trained"]  # the first seed, reused
    assert by_seed["1"]["trained"] != by_seed["0"]["trained"]
    assert set(by_seed["1"]["test_auc"]) == {"click", "conversion"}
    page = _page(results)
    assert "Does the attention do its job?" in page
    assert "The default variant trained once per seed (2 seeds" in page
    assert page.count("| mean ± std | ") == 1
    assert "What the trained towers take from each part of their input" in page
    _assert_png(results / "attention-entropy.png")
    assert "Figure 5" in page and "Figure 7a" in page
    _assert_png(results / "figure5-smooth-step.png")
    _assert_png(results / "figure7a-selection-rates.png")


def test_efficiency_measures_every_model(results: Path) -> None:
    payload = _json(results, "efficiency")
    rows = {m["model"]: m for m in payload["models"]}
    assert list(rows) == ["single_task", "esmm", "apem"]
    for row in rows.values():
        assert row["train_epoch_s"] > 0 and row["inference_s"] > 0
        assert row["size_mb"] >= row["parameters"] * 4 / 2**20  # fp32 weights, plus buffers
    page = _page(results)
    assert "### Efficiency (Figure 8 analogue)" in page
    assert f"| apem | {rows['apem']['parameters']:,} |" in page
    _assert_png(results / "figure8-efficiency.png")


def test_selection_rate_counts_u_at_or_above_half_gamma() -> None:
    u = np.array([[3.0, 1.0, 0.99, -5.0], [1.0, 1.0, 1.0, 1.0]])
    rates = selection_rates([u], gamma=2.0)
    assert rates["per_layer_mean_rate"] == [pytest.approx((2 / 4 + 1) / 2)]
    assert rates["share_all_zero"] == 0.0
    assert rates["median_rate_at_floor_gamma"] == pytest.approx((3 / 4 + 1) / 2)
    assert sum(rates["histogram"]["counts"]) == 2


def test_variant_points_cross_the_grid_over_the_fixed_values() -> None:
    variant = Variant("x", "apem", {"num_layers": 2}, {"dropout": [0.0, 0.1], "num_inducing": [8]})
    assert variant.points() == [
        {"num_layers": 2, "dropout": 0.0, "num_inducing": 8},
        {"num_layers": 2, "dropout": 0.1, "num_inducing": 8},
    ]


def test_a_grid_point_s_training_fields_set_the_run_s_config_and_the_rest_build_the_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[dict, TrainConfig]] = []

    def fit_seed(
        name: str, hparams: dict, splits: None, config: TrainConfig, seed: int
    ) -> tuple[str, str]:
        calls.append((hparams, config))
        return "model", "result"

    monkeypatch.setattr(runner, "fit_seed", fit_seed)
    point = {"dropout": 0.1, "lr": 4e-3}
    assert runner.train_once("esmm", point, None, TrainConfig(), 0)[:2] == ("model", "result")
    ((hparams, config),) = calls
    assert hparams == {"dropout": 0.1}
    assert config.lr == 4e-3 and config.batch_size == TrainConfig().batch_size


def test_lr_grid_searches_the_learning_rate_per_model_and_the_page_says_so(
    tmp_path: Path,
) -> None:
    out = tmp_path / "results"
    argv = ["run", "models", "--dataset", "synthetic2", "--models", "single_task,esmm"]
    argv += ["--seeds", "0", "--lr-grid", "1e-3,1e-2", "--preset", "smoke"]
    assert main([*argv, "--out", str(out), "--threads", "1"]) == 0
    payload = _json(out, "models-synthetic2")
    for label in ("single_task", "esmm"):
        assert payload["grid"][label] == {"dropout": [0.0], "lr": [1e-3, 1e-2]}
        trials = payload["selection"][label]["trials"]
        assert [t["hparams"]["lr"] for t in trials] == [1e-3, 1e-2]
        assert trials[0]["valid_mean_auc"] != trials[1]["valid_mean_auc"]
    assert "Adam lr searched per model over [0.001, 0.01]" in _page(out)
    with pytest.raises(SystemExit):
        main([*argv[:-3], "--lr-grid", "0,1e-3", "--out", str(out)])


def test_merging_a_merged_payload_keeps_the_provenance_of_each_run(results: Path) -> None:
    old = _json(results, "models-synthetic2")
    later = {"command": "python -m experiments run models --models esmm --merge", "rows": ["esmm"]}
    new = {**copy.deepcopy(old), "command": "python -m experiments run models", "merged": [later]}
    merged = merge_comparisons(old, new)
    first, second = merged["merged"]
    assert first["rows"] == ["single_task", "apem"] and first["command"] == new["command"]
    assert second == later


def test_merge_adds_rows_to_a_comparison_of_the_same_schedule_and_recomputes_the_tests(
    results: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    out.mkdir()
    (out / "models-synthetic2.json").write_bytes((results / "models-synthetic2.json").read_bytes())
    argv = ["run", "models", "--dataset", "synthetic2", "--models", "apem_paper", "--merge"]
    assert main([*argv, "--preset", "smoke", "--out", str(out), "--threads", "1"]) == 0
    payload = _json(out, "models-synthetic2")
    entries = {m["model"]: m for m in payload["comparison"]["models"]}
    assert list(entries) == ["single_task", "esmm", "apem", "apem_paper"]
    assert payload["fixed"]["apem_paper"]["variant"] == "paper"
    assert (
        entries["apem"]["auc"]
        == _json(results, "models-synthetic2")["comparison"]["models"][2]["auc"]
    )
    assert entries["apem_paper"]["best_other"]["click"] in ("single_task", "esmm", "apem")
    (merged,) = payload["merged"]
    assert merged["rows"] == ["apem_paper"] and "--merge" in merged["command"]
    assert "Rows apem_paper added by" in _page(out) and "apem_paper:" in _page(out)
    with pytest.raises(SystemExit, match="seeds"):
        main([*argv, "--preset", "smoke", "--seeds", "0", "--out", str(out), "--threads", "1"])
    with pytest.raises(SystemExit, match=r"training .*'epochs': 1, .* != .*'epochs': 2, "):
        main([*argv, "--preset", "smoke", "--epochs", "2", "--out", str(out), "--threads", "1"])


def test_the_cpu_model_is_read_from_cpuinfo_else_from_platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: X\nmodel name\t: Some CPU 9 @ 2GHz\n\n")
    assert environment.cpu_model(info) == "Some CPU 9 @ 2GHz"
    monkeypatch.setattr(environment.platform, "processor", lambda: "")
    assert environment.cpu_model(tmp_path / "missing") is None
    monkeypatch.setattr(environment.platform, "processor", lambda: "x86_64")
    assert environment.cpu_model(tmp_path / "missing") == "x86_64"
