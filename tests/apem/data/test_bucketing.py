import numpy as np

from apem.data import log_round


def test_log_round_rule():
    values = np.array([-1.5, 0.0, 0.7, 1.0, 2.0, 2.5, 10.0, 1000.0])
    expected = [-1, 0, 0, 1, 2, int(np.log(2.5) ** 2), int(np.log(10.0) ** 2), 47]
    assert log_round(values).tolist() == expected
