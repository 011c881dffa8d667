"""``docs/results.md`` from the experiments' JSON files: one section per file, its figure
drawn beside the page, the command, machine, date and scale stated at the top."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from experiments import figures, protocol, readings
from experiments.tables import TABLE_STEPS

ORDER = ("selector", "efficiency", "models", "ablations", "departures")
DATASET_ORDER = ("census", "synthetic2", "synthetic4", *TABLE_STEPS)
FULL_PROTOCOL = (
    "The issue's full protocol is `--preset full`: synthetic funnels of 10^6 rows, 5 seeds, "
    "the whole grid (dropout × each model's capacity knob), up to 20 epochs with patience 2."
)


def _load(out: Path) -> list[dict[str, Any]]:
    payloads = [json.loads(p.read_text()) | {"_tag": p.stem} for p in out.glob("*.json")]

    def key(payload: dict[str, Any]) -> tuple[int, int]:
        dataset = payload.get("dataset", "")
        position = DATASET_ORDER.index(dataset) if dataset in DATASET_ORDER else 0
        return ORDER.index(payload["experiment"]), position

    return sorted(payloads, key=key)


def _header(payload: dict[str, Any]) -> list[str]:
    caveat = [f"**Caveat:** {payload['caveat']}", ""] if payload.get("caveat") else []
    return caveat + [
        f"*Preset `{payload['preset']}`.* Command: `{payload['command']}`  ",
        f"Machine: {payload['machine']}, {payload['torch_threads']} torch thread(s), 1-minute "
        f"load average {payload['load_average_at_start']} at the start (shared CPU). "
        f"Date: {payload['date']}. Wall time: {payload['wall_s'] / 60:.1f} min.",
        *(
            f"Rows {', '.join(m['rows'])} added by `{m['command']}` (preset `{m['preset']}`), "
            f"{m['machine']}, {m['torch_threads']} torch thread(s), load "
            f"{m['load_average_at_start']}, {m['date']}, {m['wall_s'] / 60:.1f} min.  "
            for m in payload.get("merged", [])
        ),
        "",
    ]


def _auc(mean: float | None, std: float | None) -> str:
    if mean is None or math.isnan(mean):
        return "-"
    return f"{mean:.4f} ± {std:.4f}"


def _num(value: float | None, fmt: str = ".4f") -> str:
    return "-" if value is None else format(value, fmt)


def _scale(payload: dict[str, Any]) -> str:
    scale = payload["scale"]
    rows = ", ".join(f"{k} {v:,}" for k, v in scale["rows"].items())
    rates = ", ".join(f"{k} {v:.3f}" for k, v in scale["rates_test"].items())
    train = scale["train"]
    return (
        f"Scale: {payload['description']}; rows: {rows}; test rates: {rates}; seeds "
        f"{scale['seeds']}; Adam {_lr(payload)}, batch {train['batch_size']}, ≤ "
        f"{train['epochs']} epochs, early stopping on validation mean AUC with patience "
        f"{train['patience']}."
    )


def _lr(payload: dict[str, Any]) -> str:
    """The learning rate: the schedule's, or searched per model where the grid lists it."""
    searched = [label for label, grid in payload["grid"].items() if "lr" in grid]
    rates = sorted({lr for label in searched for lr in payload["grid"][label]["lr"]})
    if not searched:
        return f"lr {payload['scale']['train']['lr']}"
    if len(searched) == len(payload["grid"]):
        return f"lr searched per model over {rates}"
    return f"lr {payload['scale']['train']['lr']} (searched over {rates} for {', '.join(searched)})"


def _grid(payload: dict[str, Any]) -> list[str]:
    searched = any(len(v) > 1 for grid in payload["grid"].values() for v in grid.values())
    head = (
        "Grid searched on the validation split with the first seed (chosen point in bold):"
        if searched
        else "Grid reduced to one point (`--grid first` or a one-point preset): nothing searched."
    )
    lines = [head, ""]
    for label, grid in payload["grid"].items():
        chosen = payload["selection"][label]["hparams"]
        trials = ", ".join(
            f"{ {k: t['hparams'][k] for k in grid} } → {_num(t['valid_mean_auc'])}"
            for t in payload["selection"][label]["trials"]
        )
        fixed = payload.get("fixed", {}).get(label)
        lines.append(
            f"- {label}: grid {grid}{f', fixed {fixed}' if fixed else ''}; valid mean AUC "
            f"{trials}; **{ {k: chosen[k] for k in grid} }**"
        )
    return lines + [""]


def _comparison_table(payload: dict[str, Any], reference: str | None) -> list[str]:
    comparison = payload["comparison"]
    steps, entries = comparison["steps"], comparison["models"]
    by_name = {e["model"]: e for e in entries}
    gain_head = f"Δ vs {reference} (%)" if reference else "gain vs single_task (%)"
    head = ["model", *(f"{s} AUC" for s in steps), *(f"{gain_head} {s}" for s in steps)]
    head += [*(f"p {s}" for s in steps), "violations (%)", "fit s/run"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for entry in entries:
        name = entry["model"]
        if reference:
            ref = by_name[reference]["auc_mean"]
            gains = [100 * (entry["auc_mean"][s] - ref[s]) / ref[s] for s in steps]
            ps = [readings.paired_p(entry, by_name[reference], s) for s in steps]
        else:
            gains = [(entry["gain_pct"] or {}).get(s) for s in steps]
            ps = [entry["p_value"][s] for s in steps]
        violation = entry["violation_rate_mean"]
        seconds = payload["fit_seconds"][name]
        cells = [
            f"**{name}**" if name == "apem" else name,
            *(_auc(entry["auc_mean"][s], entry["auc_std"][s]) for s in steps),
            *(
                "-" if (reference and name == reference) or g is None else f"{g:+.2f}"
                for g in gains
            ),
            *("-" if p is None or math.isnan(p) else f"{p:.3g}" for p in ps),
            "-" if violation is None else f"{100 * violation:.2f}",
            f"{sum(seconds) / len(seconds):.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    oracle = payload.get("oracle")
    if oracle:
        cells = ["oracle (true P)", *(f"{oracle['auc'][s]:.4f}" for s in steps)]
        cells += ["-"] * (2 * len(steps))
        cells += [f"{100 * oracle['violation_rate']:.2f}", "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _models_section(payload: dict[str, Any], out: Path, link: str) -> list[str]:
    figure = figures.comparison_figure(
        payload, out / f"{payload['_tag']}.png", f"{payload['dataset']} ({payload['preset']})"
    )
    lines = [f"### Model comparison on {payload['dataset']} (Table 3 analogue)", ""]
    lines += _header(payload) + [_scale(payload), ""]
    lines += _comparison_table(payload, None)
    lines += [
        "Test AUC mean ± std over seeds; gain = (AUC − AUC_single_task) / AUC_single_task of the "
        "means; p = two-sided paired t-test over seeds against the best *other* row of the step "
        "(for APEM: the best baseline); violations = share of (sample, step ≥ 2) pairs with "
        "p_i > p_(i-1) on the test split.",
        "",
        f"![{payload['_tag']}]({link}/{figure.name})",
        "",
    ]
    lines += _grid(payload)
    peers = readings.census_peer_lines(payload)
    if peers:
        lines += ["Beside the peer library of `../shared/data/README.md` (same split):", ""]
        lines += peers + [""]
    lines += ["Reading:", ""] + [f"- {line}" for line in readings.models_reading(payload)] + [""]
    return lines


def _ablations_section(payload: dict[str, Any], out: Path, link: str) -> list[str]:
    figure = figures.comparison_figure(
        payload, out / f"{payload['_tag']}.png", f"ablations, {payload['dataset']}"
    )
    title = {
        "ablations": "APEM ablations",
        "departures": "The default APEM's departures from the paper, each reverted",
    }[payload["experiment"]]
    lines = [f"### {title} on {payload['dataset']} (Table 4 analogue)", ""]
    lines += _header(payload) + [_scale(payload), ""]
    lines += _comparison_table(payload, "apem")
    lines += [
        "Δ = relative change of the mean test AUC against full APEM; p = paired t-test over "
        "seeds against full APEM.",
        "",
        f"![{payload['_tag']}]({link}/{figure.name})",
        "",
    ]
    lines += _grid(payload)
    reading = readings.ablations_reading(payload, verdict=payload["experiment"] == "ablations")
    lines += ["Reading:", ""] + [f"- {line}" for line in reading]
    return lines + [""]


def _selector_section(payload: dict[str, Any], out: Path, link: str) -> list[str]:
    curves = figures.smooth_step_figure(payload["figure5"], out / "figure5-smooth-step.png")
    rates = payload["figure7a"]
    histogram = figures.selection_rate_figure(
        rates, out / "figure7a-selection-rates.png",
        f"APEM on {payload['dataset']} test split, {rates['test_rows']:,} samples",
    )  # fmt: skip
    gammas = ", ".join(
        f"step {int(s):,}: γ = {g:g}" for s, g in payload["figure5"]["gamma"].items()
    )
    per_layer = ", ".join(f"{100 * r:.1f} %" for r in rates["per_layer_mean_rate"])
    return [
        "### Dynamic selector (Figures 5 and 7a)",
        "",
        *_header(payload),
        "**Figure 5**: f_D(u; γ) = 0 for u ≤ −γ/2, −2/γ³·u³ + 3/(2γ)·u + 1/2 inside, 1 for "
        f"u ≥ γ/2, with γ(step) = max(10 − 2·10⁻⁴·step, 10⁻³) ({gammas}); exact values of "
        "`apem_kernels.smooth_step` on the torch backend (no training involved).",
        "",
        f"![figure 5]({link}/{curves.name})",
        "",
        f"**Figure 7a**: APEM ({rates['hparams'] or 'paper defaults'}) trained on "
        f"{payload['description']} with seed {rates['seed']} for {rates['train_steps']:,} steps "
        f"({rates['fit_seconds'] / 60:.1f} min; test AUC "
        + ", ".join(f"{k} {v:.4f}" for k, v in rates["test_auc"].items())
        + "). Selection rate of a sample = share of its K inducing points with z = 1 "
        "(u ≥ γ/2), averaged over the ASRG layers; u read by a forward hook on each layer's "
        f"selector. Mean rate per layer: {per_layer}.",
        "",
        f"![figure 7a]({link}/{histogram.name})",
        "",
        "Reading:",
        "",
        *(f"- {line}" for line in readings.selector_reading(rates)),
        "",
        *_attention_lines(payload, out, link),
    ]


def _attention_lines(payload: dict[str, Any], out: Path, link: str) -> list[str]:
    """The attention diagnostics of the default and the paper variant, with their figure."""
    attention = payload.get("attention")
    if not attention:
        return []
    figure = figures.attention_entropy_figure(attention, out / "attention-entropy.png")
    lines = [
        "**Does the attention do its job?** `apem.train.diagnostics` on the validation split "
        "(4,096 samples), at initialisation and at the best epoch, for the default and the "
        "paper variant (same seed): normalised attention entropy (1 = uniform, a mean-pool), "
        "the selector's z spread across samples, and the share of Y's variance between samples.",
        "",
        "| variant | moment | entropy per layer | z std per layer | Y between-sample share "
        "| test AUC |",
        "|---|---|---|---|---|---|",
    ]
    for variant, result in attention.items():
        for moment, key in (("initialisation", "initialisation"), ("trained", "trained")):
            layers = result[key]
            auc = _aucs(result["test_auc"]) if key == "trained" else "-"
            lines.append(
                f"| {variant} | {moment} | {_per_layer(layers, 'entropy')} | "
                f"{_per_layer(layers, 'z_std')} | {_per_layer(layers, 'y_between')} | {auc} |"
            )
    lines += ["", f"![attention entropy]({link}/{figure.name})", ""]
    lines += _attention_seed_lines(payload.get("attention_by_seed", {}))
    towers = {variant: r["towers"] for variant, r in attention.items() if r.get("towers")}
    if towers:
        lines += [
            "What the trained towers take from each part of their input "
            "(`apem.train.diagnostics.tower_reliance`, same subsample): each step's AUC with the "
            "input whole, with T_i^L held at its mean and with the shared part (flatten(H) for "
            "the default) held at its mean.",
            "",
            "| variant | step | AUC | T at mean | shared at mean |",
            "|---|---|---|---|---|",
        ]
        for variant, steps in towers.items():
            lines += [
                f"| {variant} | {r['step']} | {r['auc']:.4f} | {_num(r['tasks_at_mean'])} | "
                f"{_num(r['shared_at_mean'])} |"
                for r in steps
            ]
        lines.append("")
    return lines


def _attention_seed_lines(by_seed: dict[str, Any]) -> list[str]:
    """The default variant's trained entropy and z spread per seed, with their mean and std."""
    if len(by_seed) < 2:
        return []
    lines = [
        f"The default variant trained once per seed ({len(by_seed)} seeds, same split and "
        "subsample): the trained layers' entropy and the selector's z spread.",
        "",
        "| seed | entropy per layer | z std per layer | test AUC |",
        "|---|---|---|---|",
    ]
    for seed, result in by_seed.items():
        layers = result["trained"]
        lines.append(
            f"| {seed} | {_per_layer(layers, 'entropy')} | {_per_layer(layers, 'z_std')} | "
            f"{_aucs(result['test_auc'])} |"
        )
    per_layer = list(zip(*(r["trained"] for r in by_seed.values()), strict=True))
    stats = [
        " / ".join(_mean_std([d[key] for d in layer]) for layer in per_layer)
        for key in ("entropy", "z_std")
    ]
    lines += [f"| mean ± std | {stats[0]} | {stats[1]} | - |", ""]
    return lines


def _per_layer(layers: list[dict[str, Any]], key: str) -> str:
    """One diagnostic of every layer, ``"0.856 / 0.922 / …"`` (``-`` where it is None)."""
    return " / ".join(_num(d[key], ".3f") for d in layers)


def _aucs(auc: dict[str, float]) -> str:
    return ", ".join(f"{step} {value:.4f}" for step, value in auc.items())


def _mean_std(values: list[float | None]) -> str:
    if any(v is None for v in values):
        return "-"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def _efficiency_section(payload: dict[str, Any], out: Path, link: str) -> list[str]:
    models = payload["models"]
    figure = figures.efficiency_figure(models, out / "figure8-efficiency.png")
    rows = ", ".join(f"{k} {v:,}" for k, v in payload["scale"]["rows"].items())
    lines = [
        "### Efficiency (Figure 8 analogue)",
        "",
        *_header(payload),
        f"Scale: {payload['description']}; rows: {rows}; one training epoch at batch "
        f"{payload['scale']['batch_size']} (first seed, default hyper-parameters), then one "
        f"inference pass over the test split at batch {payload['scale']['eval_batch_size']}.",
        "",
        "| model | parameters | size (MB) | train s/epoch | train samples/s | inference s "
        "| inference samples/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in models:
        lines.append(
            f"| {m['model']} | {m['parameters']:,} | {m['size_mb']:.2f} | "
            f"{m['train_epoch_s']:.1f} | {m['train_samples_per_s']:,.0f} | "
            f"{m['inference_s']:.2f} | {m['inference_samples_per_s']:,.0f} |"
        )
    lines += ["", f"![figure 8]({link}/{figure.name})", "", "Reading:", ""]
    reading = readings.efficiency_reading(models, payload["torch_threads"])
    return lines + [f"- {line}" for line in reading] + [""]


SECTIONS = {
    "models": _models_section,
    "ablations": _ablations_section,
    "departures": _ablations_section,
    "selector": _selector_section,
    "efficiency": _efficiency_section,
}


def _headlines(payloads: list[dict[str, Any]]) -> list[str]:
    lines = [readings.headline(p) for p in payloads if p["experiment"] == "models"]
    return [line for line in lines if line] or ["no model comparison has run yet."]


def render(out: Path) -> Path:
    """Draw every figure into ``out`` and write ``<out>.md`` from ``out/*.json``."""
    out = Path(out)
    page = out.with_suffix(".md")
    payloads = _load(out) if out.is_dir() else []
    presets = sorted({p["preset"] for p in payloads})
    lines = [
        "# Results: the APEM paper's experiments on the data we have",
        "",
        "Generated by `python -m experiments render --out "
        f"{out}` from the JSON files in `{out}/` (each section names the command that made "
        "its JSON). Do not edit by hand. The paper's Ali-CCP and industrial data are not "
        "available here: the synthetic funnels (with their true probabilities, the oracle) and "
        "the census funnel stand in for them.",
        "",
        f"Presets present: {', '.join(presets) or 'none'}. {FULL_PROTOCOL}",
        "",
        *protocol.protocol_lines(),
        "## Headline",
        "",
        *(f"- {line}" for line in _headlines(payloads)),
        "",
        "## Results",
        "",
    ]
    for payload in payloads:
        lines += SECTIONS[payload["experiment"]](payload, out, out.name)
    lines += protocol.owed_lines(payloads)
    page.write_text("\n".join(lines).rstrip() + "\n")
    return page
