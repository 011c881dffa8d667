"""End-to-end benchmarks (the paper's Figure 8 measured here): every model, train and infer.

``train`` is one optimisation step: ``training_loss`` forward, backward and ``torch.optim.Adam``;
``infer`` is one ``model(ids)`` pass under ``torch.no_grad`` in eval mode. The schema is the
paper's shape: 18 categorical fields of 10,000 ids each, two funnel steps (click, purchase);
models use their default hyper-parameters in float32. APEM runs once per backend.
"""

from __future__ import annotations

import pytest
import torch

from apem.data.batching import Batch
from apem.data.schema import Schema
from apem.models import MODEL_NAMES, build_model
from benchmarks import harness
from benchmarks.implementations import Unsupported, require_triton

BATCH_SIZES = (1_024, 4_096, 16_384, 65_536)
NUM_FIELDS = 18
VOCAB_SIZE = 10_000
SCHEMA = Schema(
    fields=tuple(f"field_{i}" for i in range(NUM_FIELDS)),
    vocab_sizes=(VOCAB_SIZE,) * NUM_FIELDS,
    steps=("click", "purchase"),
)
MODELS = [
    pytest.param(name, backend, id=f"{name}-{backend}" if backend else name)
    for name in sorted(MODEL_NAMES, key=lambda name: name != "apem")  # APEM first
    for backend in (("triton", "torch") if name == "apem" else (None,))
]


def _random_batch(batch: int, device: torch.device) -> Batch:
    """Uniform ids; clicks at 20%, purchases at 30% of clicks (labels non-increasing)."""
    ids = torch.randint(0, VOCAB_SIZE, (batch, NUM_FIELDS), device=device)
    click = torch.rand(batch, device=device) < 0.2
    purchase = click & (torch.rand(batch, device=device) < 0.3)
    return Batch(ids=ids, labels=torch.stack([click, purchase], dim=1).float())


def _work(model: torch.nn.Module, batch: Batch, phase: str):
    if phase == "infer":
        model.eval()

        def infer() -> object:
            with torch.no_grad():
                return model(batch.ids)

        return infer
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train_step() -> object:
        optimizer.zero_grad(set_to_none=True)
        loss, _ = model.training_loss(batch)
        loss.backward()
        optimizer.step()
        return loss

    return train_step


@pytest.mark.parametrize("batch", BATCH_SIZES)
@pytest.mark.parametrize("phase", ("train", "infer"))
@pytest.mark.parametrize(("name", "backend"), MODELS)
def test_model(benchmark, device, name, backend, phase, batch):
    harness.skip_large_batch_on_cpu(device, batch)
    hparams = {}
    if backend is not None:
        if backend == "triton":
            try:
                require_triton(device)
            except Unsupported as reason:
                pytest.skip(str(reason))
        hparams["backend"] = backend
    model = build_model(name, SCHEMA, **hparams).to(device)
    parameters = list(model.parameters())
    benchmark.group = f"model {phase} batch={batch}"
    harness.measure(
        benchmark,
        _work(model, _random_batch(batch, device), phase),
        device=device,
        samples=batch,
        kind="model",
        model=name,
        impl=backend or "torch",
        phase=phase,
        batch=batch,
        params=sum(p.numel() for p in parameters),
        params_mb=sum(p.numel() * p.element_size() for p in parameters) / harness.BYTES_PER_MB,
    )


@pytest.mark.parametrize("arrangement", ("reference", "eager"))
def test_apem_torch_backend_arrangement(benchmark, device, monkeypatch, arrangement):
    """A/B of APEM's training step on the torch backend at batch 1,024: the reference's
    composition against ``apem_kernels.eager``'s (same math), in one run."""
    import apem_kernels.functional
    from apem_kernels import reference

    if arrangement == "reference":
        monkeypatch.setattr(apem_kernels.functional, "eager", reference)
    model = build_model("apem", SCHEMA, backend="torch").to(device)
    batch = 1_024
    benchmark.group = f"apem torch backend train batch={batch}"
    harness.measure(
        benchmark,
        _work(model, _random_batch(batch, device), "train"),
        device=device,
        samples=batch,
        kind="model",
        model="apem",
        impl=f"torch-{arrangement}",
        phase="train",
        batch=batch,
    )
