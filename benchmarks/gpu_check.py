"""Correctness of the fused attention on a GPU at full size, before any timing (benchmarks/gpu.sh).

    python -m benchmarks.gpu_check OUT_DIR          # checks, one JSON line each, to OUT_DIR
    python -m benchmarks.gpu_check --warm DTYPE     # compile that dtype's variants, check nothing

Per dtype (bf16, fp16, fp32) and shape (paper N = 18 and N = 64, wide; those the kernels take
in that dtype), at B = 65,536: the block
forward and backward with NaN-poisoned outputs against the float64 reference (every output and
every gradient, tolerance relative to the reference's largest magnitude, as the tests), a second
run bit-identical, and rows whose keys are all padded giving zero dx; the same for the
``triton_r128`` A/B variant of the headline (bf16, paper N = 18) before it is timed. Exits 1 if
any check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from apem_kernels import inducing_attention_block
from apem_kernels.ops import utils
from apem_kernels.ops.utils import fused_supports
from benchmarks.implementations import launch_context
from benchmarks.static import SHAPES

BATCH = 65_536
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}
GAMMA = 1.0
# The fused implementations beside ``triton`` that a benchmark times: (impl, dtype, shape).
VARIANTS = (("triton_r128", "bf16", "paper-n18"),)


def _inputs(shape: str, dtype: torch.dtype, batch: int) -> dict:
    s = SHAPES[shape]
    gen = torch.Generator(device="cuda").manual_seed(0)

    def rand(*size, scale=1.0):
        t = torch.randn(*size, generator=gen, device="cuda", dtype=torch.float64) * scale
        return t.to(dtype).requires_grad_()

    mask = torch.rand(batch, s.keys, generator=gen, device="cuda") < 0.3
    mask[::97] = True  # every 97th sample has all keys padded
    return {
        "x": rand(batch, s.keys, s.dim),
        "inducing": rand(s.inducing, s.dim),
        "w_k": rand(s.dim, s.dim, scale=s.dim**-0.5),
        "w_v": rand(s.dim, s.dim, scale=s.dim**-0.5),
        "w_o": rand(s.dim, s.dim, scale=s.dim**-0.5),
        "num_heads": s.heads,
        "norm_weight": rand(s.dim),
        "norm_bias": rand(s.dim),
        "u": rand(batch, s.inducing),
        "gamma": GAMMA,
        "key_padding_mask": mask,
    }


def _run(
    inputs: dict, grad_out: torch.Tensor, backend: str, impl: str = "triton"
) -> list[torch.Tensor]:
    leaves = [v for v in inputs.values() if isinstance(v, torch.Tensor) and v.requires_grad]
    with launch_context(impl):
        out = inducing_attention_block(**inputs, backend=backend)
        return [out.detach(), *torch.autograd.grad(out, leaves, grad_out)]


def check(shape: str, dtype_name: str, batch: int = BATCH, impl: str = "triton") -> dict:
    """One (shape, dtype) case of ``impl`` (``triton`` or a ``VARIANTS`` entry); a JSON-able
    record with ``ok`` and the worst relative error."""
    dtype = DTYPES[dtype_name]
    inputs = _inputs(shape, dtype, batch)
    grad_out = torch.randn(inputs["x"].shape[0], SHAPES[shape].inducing, SHAPES[shape].dim)
    grad_out = grad_out.to("cuda", dtype)
    utils.POISON_OUTPUTS = True
    start = time.perf_counter()
    first = _run(inputs, grad_out, "triton", impl)
    second = _run(inputs, grad_out, "triton", impl)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    utils.POISON_OUTPUTS = False
    reference = {
        k: v.detach().double().requires_grad_()
        if isinstance(v, torch.Tensor) and v.requires_grad
        else v
        for k, v in inputs.items()
    }
    expected = _run(reference, grad_out.double(), "torch")
    names = ["out"] + [
        k for k, v in inputs.items() if isinstance(v, torch.Tensor) and v.requires_grad
    ]
    errors = {}
    for name, got, want in zip(names, first, expected, strict=True):
        scale = max(want.abs().max().item(), 1.0)
        errors[name] = (got.double() - want).abs().max().item() / scale
    padded = inputs["key_padding_mask"].all(dim=1)
    dx_of_padded = first[1][padded].abs().max().item()
    finite = all(bool(torch.isfinite(t).all()) for t in first)
    identical = all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    ok = finite and identical and dx_of_padded == 0 and max(errors.values()) <= TOLERANCE[dtype]
    return {
        "impl": impl,
        "shape": shape,
        "dtype": dtype_name,
        "batch": batch,
        "ok": ok,
        "finite": finite,
        "bit_identical": identical,
        "dx_of_all_padded_rows": dx_of_padded,
        "relative_errors": errors,
        "tolerance": TOLERANCE[dtype],
        "two_runs_s": seconds,
    }


def _cases(dtype_name: str) -> list[tuple[str, str]]:
    """(impl, shape) of every check in ``dtype_name``: ``triton`` at the shapes the fused kernels
    take (fp32 stops at d = 32: not "wide"), then the variants."""
    dtype = DTYPES[dtype_name]
    shapes = [name for name, s in SHAPES.items() if fused_supports(s.dim, s.heads, dtype)]
    variants = [(impl, shape) for impl, dt, shape in VARIANTS if dt == dtype_name]
    return [("triton", shape) for shape in shapes] + variants


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", type=Path)
    parser.add_argument("--warm", choices=sorted(DTYPES), help="compile one dtype's variants only")
    args = parser.parse_args(argv)
    if args.warm:
        for impl, shape in _cases(args.warm):
            inputs = _inputs(shape, DTYPES[args.warm], 64)
            grad_out = torch.ones(64, SHAPES[shape].inducing, SHAPES[shape].dim, device="cuda")
            _run(inputs, grad_out.to(DTYPES[args.warm]), "triton", impl)
        torch.cuda.synchronize()
        return 0
    if args.out is None:
        parser.error("OUT_DIR is required unless --warm")
    args.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    with open(args.out / "correctness.jsonl", "a") as sink:
        for dtype_name in DTYPES:
            for impl, shape in _cases(dtype_name):
                record = check(shape, dtype_name, impl=impl)
                sink.write(json.dumps(record) + "\n")
                sink.flush()
                print(json.dumps(record), flush=True)
                failed += not record["ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
