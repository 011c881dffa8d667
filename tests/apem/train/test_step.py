"""The training step, eager and compiled: one graph, no recompiles, the same numbers."""

from __future__ import annotations

import copy

import pytest
import torch
from torch._dynamo.utils import counters

from apem.data.batching import BatchLoader
from apem.data.sources.synthetic import synthetic_splits
from apem.models import build_model
from apem.train import TrainConfig, fit, load_checkpoint
from apem.train.step import training_step

# Small but complete: APEM keeps its stacked layers, heads and dynamic selector.
SMALL = {
    "apem": {"embed_dim": 8, "num_layers": 2, "num_inducing": 8, "backend": "torch"},
    "esmm": {"embed_dim": 4, "tower_hidden": [8]},
    "escm2_dr": {"embed_dim": 4, "tower_hidden": [8]},
}
STEPS = 10


@pytest.fixture(scope="module")
def splits():
    """Three steps; 300 training rows: 9 batches of 32 and one of 12."""
    return synthetic_splits(375, num_fields=4, num_steps=3, seed=0, vocab_size=10)


@pytest.fixture
def dynamo_counters():
    torch._dynamo.reset()
    counters.clear()
    yield counters
    torch._dynamo.reset()


@pytest.mark.parametrize("name", sorted(SMALL))
def test_compiled_step_is_one_graph_without_recompiles(name, splits, dynamo_counters):
    torch.manual_seed(0)
    model = build_model(name, splits.schema, **SMALL[name])
    eager = copy.deepcopy(model)
    step = training_step(model, compile="aot_eager")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    eager_optimizer = torch.optim.Adam(eager.parameters(), lr=1e-2)
    batches = list(BatchLoader(splits.train, 32, shuffle=True))
    assert len(batches) == STEPS and len(batches[-1]) == 12
    gammas = []
    for batch in batches:
        gammas.append(getattr(model, "gamma", None))
        loss, _ = step(batch)
        expected, _ = eager.training_loss(batch)
        torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
        for opt, value in ((optimizer, loss), (eager_optimizer, expected)):
            opt.zero_grad()
            value.backward()
            opt.step()
    assert sum(dynamo_counters["graph_break"].values()) == 0, dict(counters["graph_break"])
    assert dynamo_counters["stats"]["unique_graphs"] == 1
    if name == "apem":
        assert len(set(gammas)) == STEPS  # γ changed at every step, the graph did not
        assert int(model.step) == int(eager.step) == STEPS
    for key, value in eager.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=1e-4, atol=1e-5)


def test_fit_with_compile_writes_the_same_checkpoint(tiny_splits, make_model, tmp_path):
    runs = {}
    for compile in (False, "aot_eager"):
        torch.manual_seed(0)
        directory = tmp_path / str(compile)
        config = TrainConfig(
            batch_size=64, epochs=1, device="cpu", progress=False, compile=compile,
            checkpoint_dir=str(directory),
        )  # fmt: skip
        fit(make_model(dropout=0.0), tiny_splits, config)
        runs[compile] = load_checkpoint(directory / "last.pt")["model"]["state"]
    eager, compiled = runs[False], runs["aot_eager"]
    assert compiled.keys() == eager.keys()  # no "_orig_mod." or wrapper prefix
    for key, value in eager.items():
        torch.testing.assert_close(compiled[key], value, rtol=1e-4, atol=1e-5)
