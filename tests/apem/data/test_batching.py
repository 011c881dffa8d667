import numpy as np
import pytest
import torch

from apem.data import BatchLoader, load_table, make_funnel


@pytest.fixture
def data():
    return make_funnel(1000, num_fields=5, num_steps=3, seed=0)


def rows_seen(loader):
    """The oracle rows of one epoch, to identify which samples came (oracle rows are unique)."""
    return torch.cat([batch.oracle for batch in loader]).numpy()


@pytest.mark.parametrize("batch_size", [1, 64, 999, 1000, 4096])
def test_every_row_exactly_once(data, batch_size):
    loader = BatchLoader(data, batch_size, shuffle=True, seed=3)
    seen = rows_seen(loader)
    assert len(loader) == -(-1000 // batch_size)
    order = np.lexsort(seen.T[::-1])
    np.testing.assert_array_equal(seen[order], data.oracle[np.lexsort(data.oracle.T[::-1])])


def test_unshuffled_order_and_dtypes(data):
    batches = list(BatchLoader(data, 300))
    assert [len(b) for b in batches] == [300, 300, 300, 100]
    first = batches[0]
    assert first.ids.dtype == torch.int64 and first.labels.dtype == torch.float32
    assert first.oracle.dtype == torch.float32 and first.dense is None
    assert first.ids.device.type == "cpu"
    np.testing.assert_array_equal(first.ids.numpy(), data.ids[:300])
    np.testing.assert_array_equal(first.labels.numpy(), data.labels[:300])


def test_shuffle_reproducible_per_seed_and_epoch(data):
    loader = BatchLoader(data, 128, shuffle=True, seed=1)
    epoch0 = rows_seen(loader)
    np.testing.assert_array_equal(epoch0, rows_seen(BatchLoader(data, 128, shuffle=True, seed=1)))
    loader.set_epoch(1)
    assert not np.array_equal(epoch0, rows_seen(loader))
    loader.set_epoch(0)
    np.testing.assert_array_equal(epoch0, rows_seen(loader))
    other = BatchLoader(data, 128, shuffle=True, seed=2)
    assert not np.array_equal(epoch0, rows_seen(other))


@pytest.mark.parametrize("drop_last", [False, True])
def test_batches_from_an_index_are_the_epochs_tail(data, drop_last):
    loader = BatchLoader(data, 300, shuffle=True, seed=4, drop_last=drop_last)
    loader.set_epoch(2)
    whole = [batch.oracle for batch in loader]
    for first in range(len(whole) + 1):
        tail = [batch.oracle for batch in loader.batches(first)]
        assert len(tail) == len(whole) - first
        for got, want in zip(tail, whole[first:], strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_drop_last_and_resident(data):
    loader = BatchLoader(data, 300, drop_last=True, resident=True)
    assert len(loader) == 3 and [len(b) for b in loader] == [300] * 3


def test_memory_mapped_split_with_dense(tmp_path, funnel_frame):
    path = str(tmp_path / "log.csv")
    funnel_frame.to_csv(path, index=False)
    splits = load_table(
        path, ["click", "buy"], dense=["x"], dense_mode="raw", cache_dir=str(tmp_path)
    )
    batch = next(iter(BatchLoader(splits.train, 1 << 16)))
    assert len(batch) == len(splits.train) and batch.dense.dtype == torch.float32
    assert batch.oracle is None
    np.testing.assert_array_equal(batch.ids.numpy(), splits.train.ids)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batches_land_on_the_device(data):
    for pin in (False, True):
        batch = next(iter(BatchLoader(data, 256, shuffle=True, device="cuda", pin_memory=pin)))
        assert batch.ids.device.type == "cuda" and batch.labels.device.type == "cuda"


@pytest.mark.parametrize(
    ("batch_size", "world", "batches"), [(300, 2, 4), (333, 3, 3), (999, 2, 1)]
)
def test_shards_partition_every_batch(data, batch_size, world, batches):
    whole = list(BatchLoader(data, batch_size, shuffle=True, seed=2))
    shards = [
        list(BatchLoader(data, batch_size, shuffle=True, seed=2, shard=(rank, world)))
        for rank in range(world)
    ]
    assert all(len(parts) == batches for parts in shards)  # a last batch of 1 row is dropped
    for index in range(batches):
        parts = [shard[index] for shard in shards]
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
        joined = torch.cat([part.oracle for part in parts])
        torch.testing.assert_close(joined, whole[index].oracle, rtol=0, atol=0)


def test_bad_shard(data):
    with pytest.raises(ValueError, match="shard must be"):
        BatchLoader(data, 10, shard=(2, 2))
