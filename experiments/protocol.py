"""The results page's protocol section (presets and grids, written down) and its list of what
has not yet run at the issue's full protocol, both computed from the code and the JSON files."""

from __future__ import annotations

from typing import Any

from experiments.datasets import PAPER_DATASETS
from experiments.presets import PRESETS

# Command-line options that shrink a preset's protocol.
OVERRIDES = ("--seeds", "--grid first", "--grid=first", "--models")
# (experiment, dataset) pairs the issue asks for; None: the experiment has no dataset choice.
EXPECTED: tuple[tuple[str, str | None], ...] = (
    *(("models", d) for d in PAPER_DATASETS),
    ("ablations", None),
    ("selector", None),
    ("efficiency", None),
)


def protocol_lines() -> list[str]:
    """One table row per preset, then every preset's grid."""
    lines = [
        "## Protocol",
        "",
        "Every model: Adam, lr 10⁻³ (the paper's; a section whose scale line says so searched it "
        "per model with `--lr-grid`, crossed with the model's grid), batch 1024, embedding 18 "
        "(the paper's Table 2); APEM: "
        "L = 4, M = 2 heads, K = 64 inducing points, one linear selector layer, towers of "
        "360-200-80 (ESMM's) on T_i^L ⊕ flatten(H), T's LayerNorm gain starting at 0.05 "
        "(`task_gain`); the `paper` variant: one layer of 64 on T_i^L alone, gain 1. "
        "Model selection on the validation split only: each grid point is trained with the first "
        "seed, the best validation mean step AUC wins, then the other seeds run at that point; "
        "early stopping keeps the epoch with the best validation mean AUC. The test split only "
        "reports.",
        "",
        "| preset | seeds | synthetic rows | epochs (patience) | models |",
        "|---|---|---|---|---|",
    ]
    for preset in PRESETS.values():
        rows = ", ".join(f"{k} {v:,}" for k, v in preset.rows.items())
        lines.append(
            f"| {preset.name} | {len(preset.seeds)} | {rows} | ≤ {preset.train['epochs']} "
            f"({preset.train['patience']}) | {', '.join(preset.models)} |"
        )
    lines.append("")
    for preset in PRESETS.values():
        lines.append(f"Grid of `{preset.name}`: " + _grid_text(preset.grid))
        lines.append("")
    return lines


def _grid_text(grid: dict[str, dict[str, list[Any]]]) -> str:
    if not any(grid.values()):
        return "none: every model at its defaults"
    return "; ".join(
        f"{model} " + " × ".join(f"{k} ∈ {values}" for k, values in knobs.items())
        for model, knobs in grid.items()
    )


def _key(payload: dict[str, Any]) -> tuple[str, str | None]:
    experiment = payload["experiment"]
    return experiment, payload.get("dataset") if experiment == "models" else None


def owed_lines(payloads: list[dict[str, Any]]) -> list[str]:
    """What the issue asks for that has not run at ``--preset full`` without overrides, with
    every run that stands in for it."""
    full = {
        _key(p)
        for p in payloads
        if p["preset"] == "full" and not any(flag in p["command"] for flag in OVERRIDES)
    }
    lines = ["## Not yet run at the full protocol", ""]
    for key in EXPECTED:
        if key in full:
            continue
        name = key[0] + (f" on {key[1]}" if key[1] else "")
        stand_ins = [f"`{p['command']}`" for p in payloads if _key(p) == key]
        status = "only " + ", ".join(stand_ins) + " ran" if stand_ins else "not run at all"
        lines.append(f"- {name}: {status}.")
    if not any("GPU " in p["machine"] for p in payloads if p["experiment"] == "efficiency"):
        lines.append("- efficiency on a GPU (the fused Triton kernels): needs a GPU session.")
    return lines + [""]
