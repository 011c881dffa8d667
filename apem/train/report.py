"""Plain-text tables of metrics and comparisons, as the `apem` command prints them, and their
JSON form."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from apem.train.compare import Comparison
from apem.train.metrics import FunnelMetrics


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; the first column left-aligned, the others right."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _percent(value: float | None, digits: int = 2, sign: bool = False) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:+.{digits}f}%" if sign else f"{value:.{digits}f}%"


def _p_value(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.1e}" if value < 1e-3 else f"{value:.3f}"


def metrics_table(metrics: FunnelMetrics, oracle: FunnelMetrics | None = None) -> str:
    """Per-step AUC, conditional AUC and log-loss, beside the oracle's when known."""
    headers = ["step", "AUC"]
    if oracle is not None:
        headers.append("oracle AUC")
    headers.append("cond. AUC")
    if oracle is not None:
        headers.append("oracle cond.")
    headers.append("logloss")
    rows = []
    for step in metrics.steps:
        row = [step, _number(metrics.auc[step])]
        if oracle is not None:
            row.append(_number(oracle.auc[step]))
        row.append(_number(metrics.conditional_auc.get(step)))
        if oracle is not None:
            row.append(_number(oracle.conditional_auc.get(step)))
        row.append(_number(metrics.logloss[step]))
        rows.append(row)
    table = format_table(headers, rows)
    if metrics.violation_rate is not None:
        rate = _percent(100 * metrics.violation_rate)
        table += f"\nmonotonicity violations (p_i > p_i-1): {rate}"
    return table


def comparison_table(comparison: Comparison) -> str:
    """Mean ± std test AUC per step, gain over Single-Task, p-value against the best other."""
    steps = comparison.steps
    headers = ["model", *(f"{s} AUC" for s in steps), *(f"gain {s}" for s in steps)]
    headers += [*(f"p {s}" for s in steps), "violations", "samples/s"]
    rows = []
    for model in comparison.runs:
        summary = comparison.summary(model)
        gain = summary.gain_pct or {}
        rows.append(
            [
                model,
                *(f"{summary.auc_mean[s]:.4f} ± {summary.auc_std[s]:.4f}" for s in steps),
                *(_percent(gain.get(s), sign=True) for s in steps),
                *(_p_value(summary.p_value[s]) for s in steps),
                _percent(
                    None
                    if summary.violation_rate_mean is None
                    else 100 * summary.violation_rate_mean
                ),
                f"{summary.samples_per_s_mean:,.0f}",
            ]
        )
    seeds = ", ".join(str(s) for s in comparison.seeds)
    notes = [
        f"test AUC over seeds {seeds}; gain = (AUC - AUC_single_task) / AUC_single_task;",
        "p = two-sided paired t-test (pairs: seeds) against the best other model of the step.",
    ]
    return format_table(headers, rows) + "\n" + "\n".join(notes)


def json_ready(value: Any) -> Any:
    """NaN/inf become None; tuples become lists; anything else JSON cannot hold, a string."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def write_json(path: str | Path, payload: dict[str, Any], indent: int = 2) -> None:
    """Write ``payload`` as strict JSON (no NaN), creating the parent folder."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(json_ready(payload), indent=indent, allow_nan=False) + "\n")
