import numpy as np
import pytest
import torch

from apem.data import make_funnel, synthetic_splits
from apem.train import oracle_metrics, roc_auc


def test_same_seed_same_data_other_seed_other_data():
    a, b = make_funnel(5000, seed=3), make_funnel(5000, seed=3)
    c = make_funnel(5000, seed=4)
    for name in ("ids", "labels", "oracle"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.ids, c.ids)


def test_rows_do_not_depend_on_n():
    small, large = make_funnel(1000, seed=2), make_funnel(70_000, seed=2)
    np.testing.assert_array_equal(small.ids, large.ids[:1000])
    np.testing.assert_array_equal(small.oracle, large.oracle[:1000])


@pytest.mark.parametrize("num_steps", [2, 3, 5])
def test_funnel_holds_and_ids_in_range(num_steps):
    data = make_funnel(20_000, num_fields=8, num_steps=num_steps, seed=0)
    assert data.labels.shape == data.oracle.shape == (20_000, num_steps)
    assert (np.diff(data.labels.astype(int), axis=1) <= 0).all()
    assert (np.diff(data.oracle, axis=1) <= 0).all()
    assert (data.ids >= 1).all() and (data.ids < np.array(data.schema.vocab_sizes)).all()
    assert data.schema.steps[0] == "click" and data.schema.steps[-1] == "conversion"


def test_ids_are_skewed():
    data = make_funnel(50_000, num_fields=4, seed=0, vocab_size=1000)
    big = int(np.argmax(data.schema.vocab_sizes))
    counts = np.bincount(data.ids[:, big])
    assert counts[1] > 50 * np.median(counts[1:])


@pytest.mark.parametrize("rates", [None, (0.3, 0.1, 0.02)])
def test_realised_rates_near_target(rates):
    num_steps = 2 if rates is None else 3
    data = make_funnel(400_000, num_steps=num_steps, seed=5, base_rates=rates)
    target = np.array((0.04, 0.005) if rates is None else rates)
    np.testing.assert_allclose(data.oracle.mean(axis=0), target, rtol=0.05)
    np.testing.assert_allclose(data.labels.mean(axis=0), target, rtol=0.08)


def test_geometric_default_rates_for_more_steps():
    data = make_funnel(200_000, num_steps=3, seed=0)
    np.testing.assert_allclose(
        data.oracle.mean(axis=0), [0.04, 0.04 * 0.125**0.5, 0.005], rtol=0.05
    )


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_steps"):
        make_funnel(10, num_steps=1)
    with pytest.raises(ValueError, match="decreasing"):
        make_funnel(10, base_rates=(0.1, 0.2))


def fit_logistic_regression(ids, labels, vocab_sizes):
    """Logistic regression on one-hot features: one weight per (field, value), LBFGS."""
    offsets = torch.tensor(np.r_[0, np.cumsum(vocab_sizes)[:-1]])
    x = torch.as_tensor(ids, dtype=torch.int64) + offsets
    y = torch.as_tensor(labels, dtype=torch.float32)
    weights = torch.zeros(int(sum(vocab_sizes)), requires_grad=True)
    bias = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([weights, bias], max_iter=25, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        logits = weights[x].sum(1) + bias
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
        loss = loss + 1e-5 * weights.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return lambda new_ids: (
        (weights[torch.as_tensor(new_ids, dtype=torch.int64) + offsets].sum(1)).detach().numpy()
    )


def test_oracle_beats_logistic_regression_but_is_not_perfect():
    splits = synthetic_splits(100_000, seed=7)
    train, test = splits.train, splits.test
    oracle = list(oracle_metrics(test).auc.values())
    for step in range(2):
        predict = fit_logistic_regression(
            train.ids, train.labels[:, step], train.schema.vocab_sizes
        )
        linear = float(
            roc_auc(torch.from_numpy(predict(test.ids)), torch.from_numpy(test.labels[:, step]))
        )
        assert 0.55 < linear < oracle[step] - 0.05, (step, linear, oracle[step])
        assert oracle[step] < 0.95


def test_synthetic_splits_cut_80_10_10():
    splits = synthetic_splits(1000, num_fields=5, seed=0)
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (800, 100, 100)
    whole = make_funnel(1000, num_fields=5, seed=0)
    np.testing.assert_array_equal(splits.test.ids, whole.ids[900:])
