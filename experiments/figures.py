"""PNG figures drawn from the experiments' JSON payloads (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def comparison_figure(payload: dict[str, Any], path: Path, title: str) -> Path:
    """Mean ± std test AUC per step and row, with the oracle's AUC as a dashed line."""
    comparison = payload["comparison"]
    steps, models = comparison["steps"], comparison["models"]
    fig, axes = plt.subplots(1, len(steps), figsize=(4.2 * len(steps), 3.6), squeeze=False)
    for ax, step in zip(axes[0], steps, strict=True):
        labels = [m["model"] for m in models]
        means = [m["auc_mean"][step] for m in models]
        stds = [m["auc_std"][step] for m in models]
        colors = ["tab:red" if label == "apem" else "tab:blue" for label in labels]
        ax.barh(labels, means, xerr=stds, color=colors, alpha=0.8)
        low = min(means) - 3 * max(max(stds), 1e-3)
        oracle = (payload.get("oracle") or {}).get("auc", {}).get(step)
        high = max(means + ([oracle] if oracle else [])) + 0.005
        if oracle:
            ax.axvline(oracle, color="black", linestyle="--", label=f"oracle {oracle:.4f}")
            ax.legend(loc="lower right", fontsize=7)
        ax.set_xlim(low, min(high, 1.0))
        ax.set_title(f"{step}: test AUC", fontsize=9)
        ax.invert_yaxis()
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def smooth_step_figure(curves: dict[str, Any], path: Path) -> Path:
    """Figure 5: f_D(u; γ) at the recorded training steps."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for step, values in curves["f"].items():
        gamma = curves["gamma"][step]
        ax.plot(curves["u"], values, label=f"step {int(step):,} (γ = {gamma:g})")
    ax.set_xlabel("u (selector output)")
    ax.set_ylabel("z = f_D(u; γ)")
    ax.set_title("Smooth step f_D along the γ schedule", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def selection_rate_figure(rates: dict[str, Any], path: Path, title: str) -> Path:
    """Figure 7a: histogram of per-sample selection rates (share of z = 1) on the test split."""
    counts, edges = rates["histogram"]["counts"], rates["histogram"]["edges"]
    total = max(sum(counts), 1)
    fig, ax = plt.subplots(figsize=(5, 3.4))
    widths = [b - a for a, b in zip(edges[:-1], edges[1:], strict=True)]
    ax.bar(edges[:-1], [100 * c / total for c in counts], width=widths, align="edge",
           edgecolor="black", alpha=0.8)  # fmt: skip
    ax.set_xlabel("selection rate (share of the K inducing points with z = 1)")
    ax.set_ylabel("% of test samples")
    ax.set_xlim(0, 1)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def efficiency_figure(models: list[dict[str, Any]], path: Path) -> Path:
    """Figure 8: (a) training time per epoch and inference time, (b) parameters' size."""
    labels = [m["model"] for m in models]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    positions = range(len(labels))
    left.bar([p - 0.2 for p in positions], [m["train_epoch_s"] for m in models], width=0.4,
             label="training, one epoch")  # fmt: skip
    left.bar([p + 0.2 for p in positions], [m["inference_s"] for m in models], width=0.4,
             label="inference, test split")  # fmt: skip
    left.set_ylabel("seconds (log scale)")
    left.set_yscale("log")
    left.set_title("(a) time", fontsize=9)
    left.legend(fontsize=8)
    right.bar(labels, [m["size_mb"] for m in models], color="tab:green")
    right.set_ylabel("MB (state dict)")
    right.set_title("(b) size", fontsize=9)
    for ax in (left, right):
        ax.set_xticks(list(positions))
        ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
    return _save(fig, path)


def attention_entropy_figure(attention: dict[str, Any], path: Path) -> Path:
    """Normalised ASRG attention entropy per layer (1 = uniform, a mean-pool), each variant at
    initialisation and trained."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    bars = [
        (f"{variant}, {moment}", [d["entropy"] for d in result[key]])
        for variant, result in attention.items()
        for moment, key in (("init", "initialisation"), ("trained", "trained"))
    ]
    width = 0.8 / len(bars)
    for i, (label, values) in enumerate(bars):
        layers = [layer + 1 + (i - (len(bars) - 1) / 2) * width for layer in range(len(values))]
        ax.bar(layers, values, width=width, label=label, edgecolor="black", alpha=0.85)
    ax.axhline(1.0, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("layer")
    ax.set_ylabel("normalised attention entropy")
    ax.set_ylim(0, 1.05)
    ax.set_xticks(range(1, len(bars[0][1]) + 1))
    ax.legend(fontsize=7, loc="lower left")
    return _save(fig, path)
