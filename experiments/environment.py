"""What every results file records: the command, the machine and the date."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import sys
from typing import Any

import torch


def machine() -> str:
    """E.g. ``2-core x86_64 CPU, no GPU, torch 2.13.0+cpu``."""
    if torch.cuda.is_available():
        accelerator = f"GPU {torch.cuda.get_device_name(0)}"
    else:
        accelerator = "no GPU"
    cores = os.cpu_count()
    return f"{cores}-core {platform.machine()} CPU, {accelerator}, torch {torch.__version__}"


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
