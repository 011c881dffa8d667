import numpy as np
import pytest

from apem.data import auc, make_funnel, oracle_auc


def pairwise_auc(scores, labels):
    pos, neg = scores[labels == 1], scores[labels == 0]
    diff = pos[:, None] - neg[None, :]
    return ((diff > 0) + 0.5 * (diff == 0)).mean()


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_pairwise_count_with_ties(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 6, 300).astype(float)  # many ties
    labels = rng.integers(0, 2, 300)
    assert auc(scores, labels) == pytest.approx(pairwise_auc(scores, labels), abs=1e-12)


def test_auc_extremes():
    labels = np.array([0, 0, 1, 1])
    assert auc(np.array([0.1, 0.2, 0.3, 0.4]), labels) == 1.0
    assert auc(np.array([0.4, 0.3, 0.2, 0.1]), labels) == 0.0
    assert auc(np.ones(4), labels) == 0.5


def test_auc_single_class_raises():
    with pytest.raises(ValueError, match="single class"):
        auc(np.arange(3.0), np.ones(3))


def test_oracle_auc_per_step():
    data = make_funnel(20_000, num_fields=6, num_steps=3, seed=1)
    aucs = oracle_auc(data)
    assert len(aucs) == 3
    assert aucs == [auc(data.oracle[:, i], data.labels[:, i]) for i in range(3)]
