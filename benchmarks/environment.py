"""What a benchmark run ran on: written into the JSON's ``machine_info`` and the rendered header."""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from benchmarks import harness


def _triton_version() -> str | None:
    try:
        import triton
    except Exception:  # a broken driver can raise more than ImportError
        return None
    return triton.__version__


def _nvidia_driver() -> str | None:
    try:
        result = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip().splitlines()[0] if result.stdout.strip() else None


def describe(device: torch.device) -> dict[str, object]:
    """Versions, device, measured copy bandwidth and the command line of this run."""
    return {
        "apem_device": harness.device_name(device),
        "apem_driver": _nvidia_driver() if device.type == "cuda" else None,
        "apem_cpu_count": os.cpu_count(),
        "apem_torch": torch.__version__,
        "apem_cuda": torch.version.cuda,
        "apem_triton": _triton_version(),
        "apem_copy_gbps": harness.copy_bandwidth(device) / harness.BYTES_PER_GB,
        "apem_command": " ".join(["pytest", *sys.argv[1:]]),
    }
