"""What the compiler says about the fused attention kernels, no GPU needed.

    python -m benchmarks.static [--only forward:bf16:paper-n18] [--arch 90] [--out DIR]

For every kernel (forward, backward), dtype (bf16, fp16, fp32) and shape (``SHAPES``) that the
fused kernels take (``fused_supports``; fp32 at the wide shape runs the torch backend) it takes
the configuration the launcher chooses (``launch_specs``), compiles it with ``triton.compile`` for
sm_90 and sm_80, and reads from triton's own ``ptxas -v`` run the registers, spill bytes, stack
and shared memory, from which it derives CTAs per SM; from the SASS (``cuobjdump -sass``) it counts
the instructions one sample costs one thread: the body of the kernel's sample loop, inner loops
times their trip counts (the spec's ``loop_trips``), and within that the HGMMA/HMMA/FFMA/MUFU
instructions. The backward is two launches (``PASSES``): its row combines them and lists each
under ``passes``. Those counts are per thread of one program; when K takes several blocks
(``k_blocks``, a program each) a sample costs every block's program, so the warp-instructions per
sample are that count times the warps times ``k_blocks``. Writes ``static.json`` (a list of rows)
and ``static.md`` to ``--out`` (default ``benchmarks/results/static``), keeping the rows of
``version: "before"`` (the kernels before the v2 redesign, measured once, see docs/design.md)
already in ``static.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import torch

from apem_kernels.ops.utils import ctas_per_sm, fused_supports


@dataclass(frozen=True)
class Shape:
    """One attention problem: N keys, K inducing points, width d, heads."""

    keys: int
    inducing: int
    dim: int
    heads: int


# The paper's (N = 18 fields in layer 1, 64 inducing rows after it; K = 64, d = 18, 2 heads) and a
# wide one (d = 64, 4 heads).
SHAPES = {
    "paper-n18": Shape(18, 64, 18, 2),
    "paper-n64": Shape(64, 64, 18, 2),
    "wide": Shape(64, 64, 64, 4),
}
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
KERNELS = ("forward", "backward")
CAPABILITIES = [90, 80]

OUT = Path(__file__).resolve().parent / "results" / "static"


_PTXAS_REGS = re.compile(r"Used (\d+) registers")
_PTXAS_SMEM = re.compile(r"(\d+) bytes smem")
_PTXAS_SPILLS = re.compile(
    r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads"
)


def parse_ptxas(log: str) -> dict[str, int]:
    """Registers, static shared memory, stack and spill bytes of the kernel in a ptxas -v log."""
    stack, stores, loads = (int(v) for v in _PTXAS_SPILLS.search(log).groups())
    smem = _PTXAS_SMEM.search(log)
    return {
        "regs": int(_PTXAS_REGS.search(log).group(1)),
        "static_smem": int(smem.group(1)) if smem else 0,
        "stack_bytes": stack,
        "spill_stores": stores,
        "spill_loads": loads,
    }


_SASS_LINE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+([^;]*);")
_BRANCH = re.compile(r"\bBRA\b.*?0x([0-9a-f]+)")
COUNTED = ("HGMMA", "HMMA", "FFMA", "MUFU")


def parse_sass(text: str) -> list[tuple[int, str]]:
    """(address, instruction) of every SASS instruction, predicates kept, NOPs dropped."""
    rows = []
    for addr, instr in _SASS_LINE.findall(text):
        instr = instr.strip()
        if instr.split()[-1 if instr.startswith("@") else 0] == "NOP" or instr == "NOP":
            continue
        rows.append((int(addr, 16), instr))
    return rows


def loops(sass: list[tuple[int, str]]) -> list[tuple[int, int]]:
    """(first, last) address of every loop: a branch back to an earlier address, one range per
    loop head (its last back edge), outermost first."""
    ends: dict[int, int] = {}
    for addr, instr in sass:
        match = _BRANCH.search(instr)
        if match and int(match.group(1), 16) <= addr:
            head = int(match.group(1), 16)
            ends[head] = max(ends.get(head, addr), addr)
    return sorted(ends.items(), key=lambda r: (r[0], -r[1]))


def per_sample_counts(sass: list[tuple[int, str]], loop_trips: tuple[int, ...]) -> dict[str, int]:
    """Instructions one sample costs one thread: the outermost loop (the sample loop), each inner
    loop weighted by its trip count (``loop_trips`` in address order; an inner loop without one
    is an error)."""
    found = loops(sass)
    if not found:
        raise ValueError("no sample loop in the SASS")
    outer = max(found, key=lambda r: r[1] - r[0])
    inner = [r for r in found if r != outer and outer[0] <= r[0] and r[1] <= outer[1]]
    if len(inner) != len(loop_trips):
        raise ValueError(f"{len(inner)} inner loops in the sample loop, {len(loop_trips)} trips")
    counts = {"instructions_per_sample": 0, **{f"{op.lower()}_per_sample": 0 for op in COUNTED}}
    for addr, instr in sass:
        if not outer[0] <= addr <= outer[1]:
            continue
        weight = 1
        for (first, last), trips in zip(inner, loop_trips, strict=True):
            if first <= addr <= last:
                weight *= trips
        counts["instructions_per_sample"] += weight
        opcode = instr.split()[1 if instr.startswith("@") else 0]
        for op in COUNTED:
            if opcode.startswith(op):
                counts[f"{op.lower()}_per_sample"] += weight
    counts["inner_loops"] = len(inner)
    return counts


def compiled_figures(spec, capability: int) -> dict:
    """Compile one launch spec for sm_<capability>: ptxas's registers, spills, stack and shared
    memory, CTAs/SM, and the SASS counts per sample (``per_sample_counts``)."""
    import triton
    from triton import knobs
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    source = ASTSource(fn=spec.kernel, signature=spec.signature, constexprs=spec.constexprs)
    log = io.StringIO()
    knobs.nvidia.dump_ptxas_log = True
    knobs.compilation.always_compile = True
    with contextlib.redirect_stdout(log):
        compiled = triton.compile(
            source, target=GPUTarget("cuda", capability, 32), options=spec.options()
        )
    ptxas = parse_ptxas(log.getvalue())
    with tempfile.NamedTemporaryFile(suffix=".cubin") as cubin:
        cubin.write(compiled.asm["cubin"])
        cubin.flush()
        sass_text = subprocess.run(
            [knobs.nvidia.cuobjdump.path, "-sass", cubin.name],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    smem = compiled.metadata.shared + ptxas["static_smem"]
    return {
        "regs": ptxas["regs"],
        "max_registers": spec.max_registers,
        "spill_stores": ptxas["spill_stores"],
        "spill_loads": ptxas["spill_loads"],
        "stack_bytes": ptxas["stack_bytes"],
        "smem_bytes": smem,
        "ctas_per_sm": ctas_per_sm(ptxas["regs"], spec.num_warps, smem, capability),
        **per_sample_counts(parse_sass(sass_text), spec.tags["loop_trips"]),
    }


# The launches each kernel is made of (``launch_specs`` keys), in order.
PASSES = {"forward": ("forward",), "backward": ("backward_output", "backward_keys")}
# How a kernel's figures combine its passes' (they run one after the other): the worst
# registers, shared memory and occupancy, the sum of the rest.
_WORST = {"regs": max, "smem_bytes": max, "ctas_per_sm": min}


def measure(kernel: str, dtype: str, shape: str, capability: int, version: str) -> dict:
    """Compile the launcher's choice for (kernel, dtype, shape) for sm_<capability>; one row, with
    each pass's own figures under ``passes``."""
    import triton

    from apem_kernels.ops.inducing_attention import launch_specs

    s = SHAPES[shape]
    specs = launch_specs(s.keys, s.inducing, s.dim, s.heads, DTYPES[dtype])
    passes = []
    for name in PASSES[kernel]:
        spec = specs[name]
        k_blocks = -(-s.inducing // spec.tags["config"].block_k)
        figures = compiled_figures(spec, capability)
        # what a sample costs the issue slots: per-thread instructions times warps, for every
        # K block's program
        figures["warp_instructions_per_sample"] = (
            figures["instructions_per_sample"] * spec.num_warps * k_blocks
        )
        identity = {"pass": name, "config": spec.name, "num_warps": spec.num_warps}
        passes.append({**identity, "k_blocks": k_blocks, **figures})
    combined = {
        key: _WORST.get(key, sum)(p[key] for p in passes)
        for key, value in passes[0].items()
        if isinstance(value, int) and key not in ("num_warps", "k_blocks", "max_registers")
    }
    return {
        "kernel": kernel,
        "dtype": dtype,
        "shape": shape,
        "arch": f"sm_{capability}",
        "version": version,
        "triton": triton.__version__,
        "config": passes[0]["config"],
        "num_warps": passes[0]["num_warps"],
        "k_blocks": passes[0]["k_blocks"],
        **combined,
        "spill_bytes": combined["spill_stores"] + combined["spill_loads"],
        "passes": passes if len(passes) > 1 else [],
    }


COLUMNS = (
    ("kernel", "kernel"),
    ("dtype", "dtype"),
    ("shape", "shape"),
    ("arch", "arch"),
    ("version", "version"),
    ("warps", "num_warps"),
    ("K blocks", "k_blocks"),
    ("regs", "regs"),
    ("spill st/ld (B)", None),
    ("stack (B)", "stack_bytes"),
    ("smem (B)", "smem_bytes"),
    ("CTAs/SM", "ctas_per_sm"),
    ("instr./sample", "instructions_per_sample"),
    ("warp-instr./sample", "warp_instructions_per_sample"),
    ("HGMMA", "hgmma_per_sample"),
    ("HMMA", "hmma_per_sample"),
    ("FFMA", "ffma_per_sample"),
    ("MUFU", "mufu_per_sample"),
)


def render(rows: list[dict]) -> str:
    """The rows as a markdown table, grouped by kernel, dtype, shape and arch."""
    head = "| " + " | ".join(title for title, _ in COLUMNS) + " |"
    lines = [
        "# Static resource report of the fused attention kernels",
        "",
        "`python -m benchmarks.static` (no GPU: `triton.compile` for the target, triton's "
        "`ptxas -v`, `cuobjdump -sass`). Instructions are per sample per thread: the sample "
        "loop's body, inner loops times their trip counts, for one program; warp-instructions "
        "are that times the warps of a program and the K blocks (a program each): the issue "
        "slots a sample costs. CTAs/SM from registers, warps and shared memory. Only the "
        "configurations the fused kernels take (`fused_supports`): fp32 at the wide shape "
        "(d = 64, 4 heads) runs the torch backend, so it has `before` rows only. The `before` "
        "rows predate the K-blocks column (–).",
        "",
        head,
        "|" + "---|" * len(COLUMNS),
    ]
    order = {"before": 0, "current": 1}
    for row in sorted(
        rows,
        key=lambda r: (
            KERNELS.index(r["kernel"]),
            list(DTYPES).index(r["dtype"]),
            list(SHAPES).index(r["shape"]),
            r["arch"],
            order[r["version"]],
        ),
    ):
        cells = []
        for _, key in COLUMNS:
            if key is None:
                cells.append(f"{row['spill_stores']}/{row['spill_loads']}")
            elif key not in row:
                cells.append("–")
            else:
                value = row[key]
                cells.append(f"{value:,}" if isinstance(value, int) else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        'The backward is two launches (docs/design.md, "The backward in two passes"): the '
        "output side (P, T, the LayerNorm's backward, dC, dT) and the key side (P again, dP, "
        "dS, dA, dx). The rows above combine them: the most registers and shared memory, the "
        "fewest CTAs/SM, the sum of spills and instructions. Each pass (cap: `maxnreg`):",
        "",
        "| dtype | shape | arch | pass | cap | regs | spill st/ld (B) | smem (B) | CTAs/SM "
        "| instr./sample |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_case = sorted(
        rows,
        key=lambda r: (list(DTYPES).index(r["dtype"]), list(SHAPES).index(r["shape"]), r["arch"]),
    )
    for row in by_case:
        for p in row.get("passes", []):
            cap = p["max_registers"] or "–"
            lines.append(
                f"| {row['dtype']} | {row['shape']} | {row['arch']} | {p['pass']} | {cap} "
                f"| {p['regs']} | {p['spill_stores']}/{p['spill_loads']} | {p['smem_bytes']:,} "
                f"| {p['ctas_per_sm']} | {p['instructions_per_sample']:,} |"
            )
    tritons = sorted({f"{r['version']}: triton {r['triton']}" for r in rows})
    lines += ["", "Compiled with " + "; ".join(tritons) + "."]
    return "\n".join(lines) + "\n"


def supported(dtype: str, shape: str) -> bool:
    """Whether the launchers run the fused kernels for this dtype and shape at all."""
    s = SHAPES[shape]
    return fused_supports(s.dim, s.heads, DTYPES[dtype])


def _key(row: dict) -> tuple:
    return row["kernel"], row["dtype"], row["shape"], row["arch"], row["version"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="one kernel:dtype:shape, e.g. forward:bf16:paper-n18")
    parser.add_argument("--arch", type=int, choices=CAPABILITIES, action="append")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--version", default="current", help='label of the rows ("before": the v1 kernels)'
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    if args.only:
        kernel, dtype, shape = args.only.split(":")
        if kernel not in KERNELS or dtype not in DTYPES or shape not in SHAPES:
            parser.error(f"--only wants one of {KERNELS}:{tuple(DTYPES)}:{tuple(SHAPES)}")
        if not supported(dtype, shape):
            parser.error(f"the fused kernels do not take {dtype} at {shape} (fused_supports)")
        cases = [(kernel, dtype, shape)]
    else:
        cases = [(k, d, s) for k in KERNELS for d in DTYPES for s in SHAPES if supported(d, s)]
    caps = args.arch or CAPABILITIES
    # The workers compile triton's real JIT functions, not the interpreter's: they inherit this
    # environment. Only here, not at import: a test session importing this module keeps its
    # interpreter (tests set TRITON_INTERPRET=1).
    os.environ.pop("TRITON_INTERPRET", None)
    jobs = [(*case, cap, args.version) for case in cases for cap in caps]
    with ProcessPoolExecutor(min(args.workers, len(jobs)), mp_context=get_context("spawn")) as pool:
        rows = list(pool.map(measure, *zip(*jobs, strict=True)))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "static.json"
    kept = json.loads(path.read_text()) if path.exists() else []
    # A full run replaces every row of its version; --only replaces its own rows.
    measured = {_key(r) for r in rows}
    rows = [
        r for r in kept if r["version"] != args.version or (args.only and _key(r) not in measured)
    ] + rows
    path.write_text(json.dumps(rows, indent=1) + "\n")
    (args.out / "static.md").write_text(render(rows))
    print(render(rows), file=sys.stdout)


if __name__ == "__main__":
    main()
