"""What every results file records: the command, the machine and the date."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

import torch


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The CPU's model name (``model name`` in ``cpuinfo``, Linux's), else what ``platform``
    knows, or None where nothing names it."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return platform.processor() or None


def machine() -> str:
    """E.g. ``2-core x86_64 CPU (Intel(R) Xeon(R) Processor; torch CPU capability AVX512), no
    GPU, torch 2.13.0+cpu``. The CPU's model and the vector width torch's kernels use both
    change CPU timings, and the rounding of a long training run."""
    if torch.cuda.is_available():
        accelerator = f"GPU {torch.cuda.get_device_name(0)}"
    else:
        accelerator = "no GPU"
    cpu = f"torch CPU capability {torch.backends.cpu.get_cpu_capability()}"
    model = cpu_model()
    if model:
        cpu = f"{model}; {cpu}"
    cores = os.cpu_count()
    return (
        f"{cores}-core {platform.machine()} CPU ({cpu}), {accelerator}, torch {torch.__version__}"
    )


def command(argv: list[str] | None = None) -> str:
    """The command line that is running, as ``python -m experiments ...``."""
    args = sys.argv[1:] if argv is None else argv
    return "python -m experiments " + shlex.join(args)


def provenance(argv: list[str] | None, threads: int) -> dict[str, Any]:
    """Command, machine, torch threads, 1-minute load average at the start (the CPU is shared:
    a load above the core count means other jobs competed for it) and the UTC date."""
    return {
        "command": command(argv),
        "machine": machine(),
        "torch_threads": threads,
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
