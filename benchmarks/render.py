"""Render pytest-benchmark JSON files into a Markdown report, a PNG plot and a short table.

    python -m benchmarks.render RESULT.json [MORE.json ...] --out DIR [--name bench]

writes ``DIR/bench.md`` (run description, the issue's targets, every kernel and model row) and
``DIR/bench.png`` (samples/s and roofline share against batch size for the headline attention
case, and training samples/s of every model), then prints the short table: targets, the
headline case at every batch size, and model training at the largest batch.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HEADLINE = {"op": "attention_block", "shape": "paper", "mode": "fwd_bwd", "dtype": "bf16"}
HEADLINE_BATCH = 65_536
IMPL_ORDER = ("triton", "triton_r128", "eager", "compile", "sdpa", "flex", "torch")


def load(paths: Iterable[Path]) -> tuple[list[dict], dict]:
    """Timed rows (``extra_info`` plus the JSON's median) and the first file's run description."""
    rows, meta = [], {}
    for path in paths:
        data = json.loads(Path(path).read_text())
        if not meta:
            meta = {**data.get("machine_info", {}), "datetime": data.get("datetime", "?")}
        rows += [b["extra_info"] for b in data["benchmarks"] if "median_s" in b["extra_info"]]
    return rows, meta


def _find(rows: list[dict], **match) -> dict | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def _si(value: float) -> str:
    for scale, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def _seconds(value: float) -> str:
    for scale, unit in ((1.0, "s"), (1e-3, "ms")):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-6:.3g} µs"


def _cell(row: dict, key: str, fmt) -> str:
    return fmt(row[key]) if row.get(key) is not None else "–"


def _table(header: list[str], lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(out + ["| " + " | ".join(line) + " |" for line in lines])


def targets(rows: list[dict]) -> str:
    """Issue #11's targets (H200) against what the rows measured: the fused block's fwd+bwd
    ≥ 5× eager and ≥ 2× torch.compile, its floor time ≥ 25 % of its measured time."""
    case = {**HEADLINE, "kind": "kernel", "batch": HEADLINE_BATCH}
    fused = _find(rows, **case, impl="triton")
    apem = _find(
        rows, kind="model", model="apem", impl="triton", phase="train", batch=HEADLINE_BATCH
    )
    checks = []
    for other, goal in (("eager", 5.0), ("compile", 2.0)):
        base = _find(rows, **case, impl=other)
        ratio = base["median_s"] / fused["median_s"] if fused and base else None
        checks.append((f"fused attention fwd+bwd vs {other}", ratio, goal, "×"))
    share = 100 * fused["roofline_share"] if fused and fused.get("roofline_share") else None
    checks.append(("fused attention fwd+bwd: byte floor time / measured", share, 25.0, "%"))
    speed = apem["samples_per_s"] if apem else None
    checks.append(("APEM (triton) training samples/s", speed, 1e6, ""))
    lines = []
    for label, value, goal, unit in checks:
        shown = "not measured" if value is None else f"{_si(value)}{unit}"
        verdict = "–" if value is None else ("yes" if value >= goal else "no")
        lines.append([label, f"≥ {_si(goal)}{unit}", shown, verdict])
    title = f"Targets (batch {HEADLINE_BATCH:,}, paper shape, bf16 kernels; set for an H200)"
    return f"{title}\n\n" + _table(["target", "goal", "measured", "holds"], lines)


def _impl_rank(row: dict) -> int:
    return IMPL_ORDER.index(row["impl"]) if row["impl"] in IMPL_ORDER else len(IMPL_ORDER)


def kernel_table(rows: list[dict]) -> str:
    """One row per (batch, implementation) of one kernel case, with the speed-up over eager."""
    header = ["batch", "impl", "median", "samples/s", "GB/s", "% copy BW", "peak MB", "× eager"]
    lines = []
    for r in sorted(rows, key=lambda r: (r["batch"], _impl_rank(r))):
        eager = _find(rows, batch=r["batch"], impl="eager")
        speedup = f"{eager['median_s'] / r['median_s']:.2f}" if eager else "–"
        lines.append(
            [
                f"{r['batch']:,}",
                r["impl"],
                _seconds(r["median_s"]),
                _si(r["samples_per_s"]),
                _cell(r, "gbps", lambda v: f"{v:.3g}"),
                _cell(r, "roofline_share", lambda v: f"{100 * v:.3g}"),
                _cell(r, "peak_mb", lambda v: f"{v:,.0f}"),
                speedup,
            ]
        )
    return _table(header, lines)


def model_table(rows: list[dict]) -> str:
    header = ["model", "impl", "phase", "batch", "samples/s", "median", "peak MB", "params", "MB"]
    lines = [
        [
            r["model"],
            r["impl"],
            r["phase"],
            f"{r['batch']:,}",
            _si(r["samples_per_s"]),
            _seconds(r["median_s"]),
            _cell(r, "peak_mb", lambda v: f"{v:,.0f}"),
            f"{r['params']:,}",
            f"{r['params_mb']:.1f}",
        ]
        for r in sorted(rows, key=lambda r: (r["phase"], r["batch"], r["model"], _impl_rank(r)))
    ]
    return _table(header, lines)


def other_table(rows: list[dict]) -> str:
    """Rows of benchmarks that are neither kernels nor models: op, samples/s, median."""
    lines = [
        [
            str(r.get("op", "?")),
            f"{r['samples']:,}",
            _si(r["samples_per_s"]),
            _seconds(r["median_s"]),
        ]
        for r in rows
    ]
    return _table(["op", "samples per call", "samples/s", "median"], lines)


def _kernel_groups(rows: list[dict]) -> dict[tuple, list[dict]]:
    groups = defaultdict(list)
    for r in rows:
        if r.get("kind") == "kernel":
            groups[(r["op"], r["shape"], r["mode"], r["dtype"])].append(r)
    return groups


def _run_description(meta: dict) -> str:
    copy = meta.get("apem_copy_gbps")
    items = [
        ("date", meta.get("datetime")),
        ("device", meta.get("apem_device")),
        ("driver", meta.get("apem_driver")),
        ("CPU", f"{meta.get('cpu', {}).get('brand_raw', '?')}, {meta.get('apem_cpu_count')} cores"),
        ("host", meta.get("node")),
        (
            "torch / CUDA / triton",
            f"{meta.get('apem_torch')} / {meta.get('apem_cuda')} / {meta.get('apem_triton')}",
        ),
        ("measured copy bandwidth", f"{copy:.1f} GB/s" if copy else None),
        ("command", f"`{meta.get('apem_command')}`"),
        ("note", meta.get("note")),
    ]
    return "\n".join(f"- {name}: {value}" for name, value in items if value is not None)


def markdown(rows: list[dict], meta: dict) -> str:
    """The full report."""
    parts = [f"# Benchmarks on {meta.get('apem_device', '?')}", _run_description(meta)]
    parts += ["## " + targets(rows)]
    parts += ["## Kernels", "Columns: see benchmarks/README.md."]
    for (op, shape, mode, dtype), group in sorted(_kernel_groups(rows).items()):
        parts += [f"### {op} · {shape} · {mode} · {dtype}", kernel_table(group)]
    models = [r for r in rows if r.get("kind") == "model"]
    if models:
        parts += ["## Models (one training step / one inference pass)", model_table(models)]
    others = [r for r in rows if r.get("kind") not in ("kernel", "model")]
    if others:
        parts += ["## Other rows (e.g. the data layer)", other_table(others)]
    return "\n\n".join(parts) + "\n"


def short(rows: list[dict]) -> str:
    """The few lines printed last: targets, the headline case, models training at top batch."""
    parts = [targets(rows)]
    headline = _kernel_groups(rows).get(tuple(HEADLINE.values()))
    if headline:
        parts += [" · ".join(HEADLINE.values()), kernel_table(headline)]
    train = [r for r in rows if r.get("kind") == "model" and r["phase"] == "train"]
    if train:
        top = max(r["batch"] for r in train)
        parts += [
            f"training step, batch {top:,}",
            model_table([r for r in train if r["batch"] == top]),
        ]
    return "\n\n".join(parts)


def _impl_label(row: dict) -> str:
    return row["impl"]


def _model_label(row: dict) -> str:
    return f"apem-{row['impl']}" if row["model"] == "apem" else row["model"]


def plot(rows: list[dict], meta: dict, path: Path) -> None:
    """samples/s and roofline share of the headline case, and model training, against batch."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    headline = _kernel_groups(rows).get(tuple(HEADLINE.values()), [])
    train = [r for r in rows if r.get("kind") == "model" and r["phase"] == "train"]
    case = " · ".join(HEADLINE.values())
    panels = [
        (axes[0], headline, _impl_label, "samples_per_s", "samples/s", case),
        (axes[1], headline, _impl_label, "roofline_share", "floor time / measured", "roofline"),
        (axes[2], train, _model_label, "samples_per_s", "samples/s", "model training step"),
    ]
    for ax, group, label_of, value, ylabel, title in panels:
        series = defaultdict(list)
        for r in group:
            if r.get(value) is not None:
                series[label_of(r)].append((r["batch"], r[value]))
        for label, points in sorted(series.items()):
            xs, ys = zip(*sorted(points), strict=True)
            ax.plot(xs, ys, marker="o", label=label)
        if not series:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set(xscale="log", xlabel="batch size", ylabel=ylabel, title=title)
        if value == "samples_per_s":
            ax.set_yscale("log")
        if series:
            ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(f"{meta.get('apem_device', '?')}, {meta.get('datetime', '?')}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="+", type=Path, help="pytest-benchmark JSON files")
    parser.add_argument("--out", type=Path, required=True, help="folder for NAME.md and NAME.png")
    parser.add_argument("--name", default="bench", help="file name stem (default: bench)")
    parser.add_argument("--note", help="a line for the report's header (e.g. machine load)")
    args = parser.parse_args(argv)
    rows, meta = load(args.json)
    if args.note:
        meta["note"] = args.note
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.md").write_text(markdown(rows, meta))
    plot(rows, meta, args.out / f"{args.name}.png")
    print(short(rows))


if __name__ == "__main__":
    main()
