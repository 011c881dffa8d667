"""The one timing harness every benchmark file uses.

``measure(benchmark, fn, ...)`` warms ``fn`` up (compilation and autotuning happen there, outside
the timing), picks how many calls make one round, then lets pytest-benchmark time the rounds with
a device clock: CUDA events on a GPU (the clock records an event and waits for it, so a round is
the GPU time of a batch of calls), ``time.perf_counter`` on the CPU. Medians are per call. What it
derives (samples/s, GB/s against the byte floor, the floor's share of the measured copy bandwidth,
peak device memory) goes into ``benchmark.extra_info`` and from there into the JSON.

Settings, from the environment: ``APEM_BENCH_ROUNDS`` (timed rounds, default 7),
``APEM_BENCH_ROUND_SECONDS`` (aim for one round, default 0.05) and ``APEM_BENCH_DEADLINE`` (a Unix
time after which cases skip, so a budgeted run still ends cleanly and writes its JSON).
"""

from __future__ import annotations

import functools
import os
import statistics
import time
from collections.abc import Callable

import pytest
import torch

WARMUP_CALLS = 2
MAX_CALLS_PER_ROUND = 1000
CPU_MAX_BATCH = 1_024
BYTES_PER_MB = 1e6
BYTES_PER_GB = 1e9


def rounds() -> int:
    """Timed rounds per case."""
    return int(os.environ.get("APEM_BENCH_ROUNDS", "7"))


def round_seconds() -> float:
    """Wall time one round aims for; fast calls are repeated within a round to reach it."""
    return float(os.environ.get("APEM_BENCH_ROUND_SECONDS", "0.05"))


def skip_large_batch_on_cpu(device: torch.device, batch: int) -> None:
    """The CPU runs the small sizes only; larger ones are GPU rows."""
    if device.type != "cuda" and batch > CPU_MAX_BATCH:
        pytest.skip(f"batch sizes above {CPU_MAX_BATCH:,} run on CUDA only")


def skip_past_deadline() -> None:
    """Skip the current case when the run's ``APEM_BENCH_DEADLINE`` has passed."""
    deadline = os.environ.get("APEM_BENCH_DEADLINE")
    if deadline and time.time() > float(deadline):
        pytest.skip("the run's time budget (APEM_BENCH_DEADLINE) is spent")


def device_clock(device: torch.device) -> Callable[[], float]:
    """A clock in seconds for work on ``device``.

    On CUDA each reading records an event on the current stream and waits for it, so the
    difference of two readings is the GPU time of the work launched between them.
    """
    if device.type != "cuda":
        return time.perf_counter
    origin = torch.cuda.Event(enable_timing=True)
    origin.record()
    origin.synchronize()

    def cuda_event_clock() -> float:
        mark = torch.cuda.Event(enable_timing=True)
        mark.record()
        mark.synchronize()
        return origin.elapsed_time(mark) / 1e3

    return cuda_event_clock


@functools.cache
def copy_bandwidth(device: torch.device) -> float:
    """Bytes/s of a large same-device tensor copy (bytes read + bytes written), median of 10.

    Measured once per process, so every row of a run shares the same roofline.
    """
    nbytes = (2 << 30) if device.type == "cuda" else (256 << 20)
    src = torch.randint(0, 256, (nbytes,), dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    clock = device_clock(device)
    times = []
    for i in range(12):
        start = clock()
        dst.copy_(src)
        if i >= 2:  # two warm-up copies
            times.append(clock() - start)
    return 2 * nbytes / statistics.median(times)


def _calls_per_round(fn: Callable[[], object], clock: Callable[[], float]) -> int:
    start = clock()
    fn()
    once = max(clock() - start, 1e-9)
    return max(1, min(MAX_CALLS_PER_ROUND, round(round_seconds() / once)))


def _warm_up(
    fn: Callable[[], object], device: torch.device, skip_errors: tuple[type[Exception], ...]
) -> None:
    """Run ``fn`` a few times; out of memory or ``skip_errors`` skip the case."""
    reason = None
    try:
        for _ in range(WARMUP_CALLS):
            fn()
    except torch.cuda.OutOfMemoryError:
        reason = f"out of memory on {device_name(device)} at this size"
    except skip_errors as error:
        reason = f"cannot run this case: {type(error).__name__}: {str(error).splitlines()[0]}"
    if reason:  # skip outside the handler, so the frames holding tensors are freed first
        if device.type == "cuda":
            torch.cuda.empty_cache()
        pytest.skip(reason)


def measure(
    benchmark,
    fn: Callable[[], object],
    *,
    device: torch.device,
    samples: int,
    floor_bytes: int | None = None,
    skip_errors: tuple[type[Exception], ...] = (),
    **case: object,
) -> None:
    """Time ``fn`` (one call processes ``samples`` samples) and record the results.

    Args:
        benchmark: pytest-benchmark's fixture.
        fn: the work of one call, arguments bound.
        device: where ``fn`` runs; selects the clock and the memory counters.
        samples: samples one call processes (throughput = samples / median time).
        floor_bytes: the byte floor of one call (``benchmarks/floors.py``), or None.
        skip_errors: exceptions that mean the implementation cannot run this case (raised
            during warm-up, they skip the case with their message instead of failing it).
        **case: what the case is (op, impl, dtype, batch, ...), copied into ``extra_info``.
    """
    benchmark.extra_info.update(case, samples=samples, device=device_name(device))
    if benchmark.disabled:  # --benchmark-disable: one call as a smoke test
        benchmark.pedantic(fn)
        return
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        held = torch.cuda.memory_allocated(device)
    _warm_up(fn, device, skip_errors)
    clock = device_clock(device)
    benchmark._timer = clock  # pytest-benchmark has no public per-test timer
    benchmark.pedantic(fn, rounds=rounds(), iterations=_calls_per_round(fn, clock))
    median = benchmark.stats.stats.median
    info = {"median_s": median, "samples_per_s": samples / median}
    if cuda:  # read before copy_bandwidth() may allocate its buffers
        info.update(
            peak_mb=torch.cuda.max_memory_allocated(device) / BYTES_PER_MB,
            held_mb=held / BYTES_PER_MB,
        )
    if floor_bytes is not None:
        copy = copy_bandwidth(device)
        info.update(
            floor_bytes=floor_bytes,
            gbps=floor_bytes / median / BYTES_PER_GB,
            copy_gbps=copy / BYTES_PER_GB,
            roofline_share=floor_bytes / copy / median,
        )
    benchmark.extra_info.update(info)


def device_name(device: torch.device) -> str:
    """The GPU's name, or ``cpu``."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
