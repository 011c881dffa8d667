"""Fixtures shared by the benchmark files, and the run description in the JSON."""

from __future__ import annotations

import pytest
import torch

from benchmarks import environment, harness


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture(scope="session")
def device() -> torch.device:
    """The GPU when there is one, else the CPU."""
    return _device()


@pytest.fixture(autouse=True)
def _budget_and_cleanup(device):
    """Skip cases past the run's deadline; return cached device memory after each case."""
    harness.skip_past_deadline()
    yield
    if device.type == "cuda":
        torch.cuda.empty_cache()


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info.update(environment.describe(_device()))
