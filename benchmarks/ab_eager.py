"""APEM's training step on the torch backend, reference composition against apem_kernels.eager,
interleaved in one process (what ``test_apem_torch_backend_arrangement`` times, as a ratio).

    python -m benchmarks.ab_eager [--threads 1] [--steps 4] [--batch 1024]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import apem_kernels.functional as functional
from apem.models import build_model
from apem_kernels import eager, reference
from benchmarks.test_bench_models import SCHEMA, _random_batch, _work


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--steps", type=int, default=4, help="timed steps per arm")
    parser.add_argument("--batch", type=int, default=1024)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model("apem", SCHEMA, backend="torch")
    step = _work(model, _random_batch(args.batch, torch.device("cpu")), "train")
    arms = {"reference": reference, "eager": eager}
    times: dict[str, list[float]] = {name: [] for name in arms}
    for rep in range(args.steps + 1):  # the first round warms up
        for name in arms if rep % 2 == 0 else reversed(list(arms)):
            functional.eager = arms[name]
            start = time.perf_counter()
            step()
            if rep:
                times[name].append(time.perf_counter() - start)
    functional.eager = eager
    ref, new = (statistics.median(times[name]) for name in arms)
    print(
        f"batch {args.batch}, {args.threads} threads: reference {ref * 1e3:.0f} ms, "
        f"eager {new * 1e3:.0f} ms, speedup {ref / new:.2f}x"
    )


if __name__ == "__main__":
    main()
