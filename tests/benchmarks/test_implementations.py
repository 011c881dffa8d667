"""The SDPA and FlexAttention compositions compute the reference's inducing attention."""

import warnings

import pytest
import torch

from apem_kernels import reference
from benchmarks import floors
from benchmarks.implementations import composed, flex_heads, sdpa_heads


def _inputs(block: bool):
    g = torch.Generator().manual_seed(0)
    b, n, d, k = 3, 5, 8, 4

    def draw(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    norm = [draw(d), draw(d)] if block else []
    z = torch.rand(b, k, generator=g, dtype=torch.float64)
    return (draw(b, n, d), draw(k, d), draw(d, d), draw(d, d), draw(d, d), 2, *norm), z


@pytest.mark.parametrize("heads", [sdpa_heads, flex_heads], ids=["sdpa", "flex"])
@pytest.mark.parametrize("block", [False, True], ids=["plain", "block"])
@pytest.mark.parametrize("padded", [False, True], ids=["dense", "padded"])
def test_composition_matches_reference(heads, block, padded):
    args, z = _inputs(block)
    mask = None
    if padded:  # every row keeps at least one key
        mask = torch.zeros(3, 5, dtype=torch.bool)
        mask[0, 3:] = True
        mask[2, 0] = True
    truth = reference.inducing_attention_block if block else reference.inducing_attention
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FlexAttention warns when run uncompiled
        got = composed(heads, block=block)(*args, z=z, key_padding_mask=mask)
    torch.testing.assert_close(got, truth(*args, z=z, key_padding_mask=mask))


def test_floors_count_each_batch_tensor_once():
    # x 18×18, z 64, out 64×18 in fp32 for 2 samples; backward doubles it.
    assert (
        floors.attention_floor_bytes(2, 18, 18, 64, torch.float32, backward=False)
        == 2 * (324 + 64 + 1152) * 4
    )
    assert (
        floors.attention_floor_bytes(2, 18, 18, 64, torch.bfloat16, backward=True)
        == 4 * (324 + 64 + 1152) * 2
    )
    assert floors.smooth_step_floor_bytes(3, 64, torch.float32, backward=True) == 4 * 3 * 64 * 4
