import pytest
import torch

from apem.models.gamma import gamma_schedule


def test_gamma_schedule_falls_linearly_to_its_floor():
    assert gamma_schedule(0) == 10.0
    assert gamma_schedule(25_000) == pytest.approx(5.0)
    assert gamma_schedule(50_000) == 1e-3
    assert gamma_schedule(100_000) == 1e-3


@pytest.mark.parametrize("step", [0, 1, 12_345, 49_999, 60_000])
def test_gamma_of_a_step_tensor_equals_gamma_of_the_int(step):
    gamma = gamma_schedule(torch.tensor(step))
    assert gamma.dtype == torch.float64 and gamma.item() == gamma_schedule(step)
