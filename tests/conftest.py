"""Fixtures shared by the whole suite."""

import os

# The interpreter must be chosen before triton is first imported anywhere.
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from apem_kernels.ops import utils  # noqa: E402

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


@pytest.fixture(autouse=True)
def poison_kernel_outputs(monkeypatch):
    """Every kernel output starts as NaN, so an element a kernel never writes fails its test."""
    monkeypatch.setattr(utils, "POISON_OUTPUTS", True)


@pytest.fixture(scope="session")
def kernel_device() -> torch.device:
    """The device of every tensor a triton-path test builds: CUDA, with compiled kernels, when a
    GPU is present and the interpreter is off (``TRITON_INTERPRET=0``); else the CPU under the
    interpreter. With neither, triton-path tests skip."""
    if utils.interpreting():
        return torch.device("cpu")
    if not torch.cuda.is_available():
        pytest.skip("TRITON_INTERPRET=0 and no CUDA device: compiled triton kernels cannot run")
    return torch.device("cuda")


@pytest.fixture
def shared_data_dir():
    """``../shared/data`` beside the checkout; tests needing it skip when it is absent."""
    path = os.path.abspath(SHARED_DATA)
    if not os.path.isdir(path):
        pytest.skip(f"real data folder {path} is absent (see ../shared/data/README.md)")
    return path
