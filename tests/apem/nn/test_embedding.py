"""The shared field embedding."""

from __future__ import annotations

import pytest
import torch

from apem.nn import FieldEmbedding


def test_shape_and_one_row_per_field_id():
    emb = FieldEmbedding([3, 5], dim=4)
    ids = torch.tensor([[0, 0], [2, 4], [1, 0]])
    out = emb(ids)
    assert out.shape == (3, 2, 4)
    # field 1's id 0 is a different row from field 0's id 0 (tables are offset per field)
    assert torch.equal(out[:, 0], emb.table.weight[ids[:, 0]])
    assert torch.equal(out[:, 1], emb.table.weight[3 + ids[:, 1]])


def test_dense_fields_are_learned_vectors_scaled_by_the_value():
    emb = FieldEmbedding([3], dim=4, num_dense=2)
    dense = torch.tensor([[2.0, -1.0]])
    out = emb(torch.tensor([[1]]), dense)
    assert out.shape == (1, 3, 4)
    assert torch.allclose(out[0, 1], 2.0 * emb.dense_vectors[0])
    assert torch.allclose(out[0, 2], -emb.dense_vectors[1])


def test_dense_only_schema():
    emb = FieldEmbedding([], dim=2, num_dense=1)
    assert emb(torch.zeros(5, 0, dtype=torch.long), torch.ones(5, 1)).shape == (5, 1, 2)


@pytest.mark.parametrize(
    ("ids", "dense", "error", "message"),
    [
        (torch.tensor([[0, 5]]), None, ValueError, r"ids\[:, 1\] must lie in \[0, 5\)"),
        (torch.tensor([[-1, 0]]), None, ValueError, r"ids\[:, 0\] must lie in \[0, 3\)"),
        (torch.tensor([[0, 0, 0]]), None, ValueError, r"ids must have shape \(B, 2\)"),
        (torch.tensor([[0.0, 1.0]]), None, TypeError, "ids must be an integer tensor"),
        (torch.tensor([[0, 1]]), torch.ones(1, 1), ValueError, "dense must be None"),
    ],
)
def test_bad_inputs(ids, dense, error, message):
    with pytest.raises(error, match=message):
        FieldEmbedding([3, 5], dim=4)(ids, dense)


def test_missing_or_misshapen_dense():
    emb = FieldEmbedding([3], dim=4, num_dense=2)
    with pytest.raises(TypeError, match=r"dense must be a float tensor of shape \(B, 2\)"):
        emb(torch.tensor([[0]]))
    with pytest.raises(ValueError, match=r"dense must have shape \(1, 2\)"):
        emb(torch.tensor([[0]]), torch.ones(1, 3))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (([3, 0], 4), r"vocab_sizes\[1\] must be an integer >= 1"),
        (([3], 0), "dim must be an integer >= 1"),
        (([3], 4, -1), "num_dense must be an integer >= 0"),
        (([], 4), "at least one categorical or dense field"),
    ],
)
def test_bad_construction(args, message):
    with pytest.raises(ValueError, match=message):
        FieldEmbedding(*args)


def test_compile_sees_one_graph_without_the_range_check():
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    emb = FieldEmbedding([3, 5], dim=4, num_dense=1)
    ids, dense = torch.tensor([[0, 4], [2, 1]]), torch.ones(2, 1)
    compiled = torch.compile(emb, backend="eager", fullgraph=True)
    assert torch.equal(compiled(ids, dense), emb(ids, dense))
    assert sum(counters["graph_break"].values()) == 0
    # the eager module still checks
    with pytest.raises(ValueError, match=r"ids\[:, 1\] must lie in \[0, 5\)"):
        emb(torch.tensor([[0, 5]]), torch.ones(1, 1))


def test_export_with_a_dynamic_batch():
    emb = FieldEmbedding([3, 5], dim=4)
    batch = torch.export.Dim("batch")
    program = torch.export.export(
        emb, (torch.tensor([[0, 4], [2, 1]]),), dynamic_shapes=({0: batch},)
    )
    ids = torch.tensor([[1, 1], [2, 3], [0, 0]])
    assert torch.equal(program.module()(ids), emb(ids))
