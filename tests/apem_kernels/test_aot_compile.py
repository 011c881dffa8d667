"""Ahead-of-time compile of every kernel configuration the dispatchers can choose.

Each module of ``apem_kernels/ops/`` that defines ``compile_specs()`` lists its configurations as
``KernelSpec``s. Every spec is compiled for sm_90 and sm_80 (no GPU needed: ptxas ships with
triton), which checks what the interpreter does not: ``tl.dot`` shape rules, types, and that the
shared memory fits the target. Compiles run in a process pool, once per session; triton's on-disk
cache makes reruns fast.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import pytest
import triton

import apem_kernels.ops

_TRITON = tuple(int(p) for p in triton.__version__.split(".")[:2])

# Shared memory per block available to a kernel (opt-in maximum), by compute capability.
SHARED_MEMORY_LIMIT = {90: 232448, 80: 166912}


def _spec_modules() -> list[str]:
    names = []
    for info in pkgutil.iter_modules(apem_kernels.ops.__path__):
        module = importlib.import_module(f"apem_kernels.ops.{info.name}")
        if hasattr(module, "compile_specs"):
            names.append(module.__name__)
    return sorted(names)


def _spec_ids() -> list[tuple[str, int, str]]:
    """(module, index in its compile_specs(), spec name) for every spec."""
    ids = []
    for module_name in _spec_modules():
        specs = importlib.import_module(module_name).compile_specs()
        ids.extend((module_name, i, spec.name) for i, spec in enumerate(specs))
    return ids


SPECS = _spec_ids()
CAPABILITIES = sorted(SHARED_MEMORY_LIMIT)


def _compile(module_name: str, index: int, capability: int) -> tuple[int | None, str]:
    """Shared bytes of one spec compiled for sm_<capability>, or (None, the error)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    spec = importlib.import_module(module_name).compile_specs()[index]
    source = ASTSource(fn=spec.kernel, signature=spec.signature, constexprs=spec.constexprs)
    options = spec.options()
    try:
        compiled = triton.compile(source, target=GPUTarget("cuda", capability, 32), options=options)
    except Exception as error:  # report every failing spec, not only the first
        return None, f"{type(error).__name__}: {error}"
    return compiled.metadata.shared, ""


@pytest.fixture(scope="module")
def compiled() -> dict[tuple[str, int, int], tuple[int | None, str]]:
    jobs = [(module, index, cap) for module, index, _ in SPECS for cap in CAPABILITIES]
    workers = max(1, min(len(jobs), os.cpu_count() or 1))
    # Workers import the kernels as compilable JIT functions, not the interpreter's wrappers.
    interpret = os.environ.pop("TRITON_INTERPRET", None)
    try:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            results = list(pool.map(_compile, *zip(*jobs, strict=True)))
    finally:
        if interpret is not None:
            os.environ["TRITON_INTERPRET"] = interpret
    return dict(zip(jobs, results, strict=True))


def test_some_module_defines_specs():
    assert SPECS, "no module in apem_kernels/ops defines compile_specs()"


@pytest.mark.parametrize("capability", CAPABILITIES, ids=lambda c: f"sm_{c}")
@pytest.mark.parametrize(("module_name", "index", "name"), SPECS, ids=[s[2] for s in SPECS])
def test_spec_compiles_within_shared_memory(compiled, module_name, index, name, capability):
    if "fp64" in name and _TRITON < (3, 7):
        # fp64 runs only under the interpreter (gradcheck); triton 3.6's compiler rejects it.
        pytest.skip("triton 3.6 does not compile the fp64 variants (PassManager::run failed)")
    shared, error = compiled[(module_name, index, capability)]
    assert shared is not None, f"{name} does not compile for sm_{capability}: {error}"
    limit = SHARED_MEMORY_LIMIT[capability]
    assert shared <= limit, f"{name} needs {shared} B of shared memory, sm_{capability} has {limit}"
