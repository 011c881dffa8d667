"""evaluate / predict / oracle_metrics on a tiny funnel."""

import numpy as np
import torch

from apem.train import evaluate, funnel_metrics, oracle_metrics, predict, seed_everything
from apem.train.evaluation import eval_batch_size


def test_evaluate_and_predict_agree(tiny_splits, make_model):
    seed_everything(0)
    model = make_model()
    probs = predict(model, tiny_splits.test, batch_size=7)  # 80 rows: a short last batch
    assert probs.shape == (80, 2) and probs.dtype == np.float32
    assert ((probs > 0) & (probs < 1)).all()
    expected = funnel_metrics(
        torch.from_numpy(probs),
        torch.from_numpy(tiny_splits.test.labels.astype(np.float32)),
        tiny_splits.schema.steps,
    )
    assert evaluate(model, tiny_splits.test, batch_size=7) == expected
    assert model.training  # evaluation leaves the mode as it found it


def test_oracle_metrics_score_the_true_probabilities(tiny_splits):
    test = tiny_splits.test
    metrics = oracle_metrics(test)
    expected = funnel_metrics(
        torch.from_numpy(test.oracle), torch.from_numpy(test.labels.astype(np.float32)),
        tiny_splits.schema.steps,
    )  # fmt: skip
    assert metrics == expected and metrics.mean_auc > 0.8
    assert metrics.violation_rate == 0.0  # true funnel probabilities never increase
    assert oracle_metrics(type(test)(test.schema, test.ids, test.labels)) is None


def test_the_default_batch_depends_on_the_device(tiny_splits, make_model):
    assert eval_batch_size(None, torch.device("cpu")) == 1024
    assert eval_batch_size(None, torch.device("cuda", 1)) == 8192
    assert eval_batch_size(7, torch.device("cpu")) == 7
    seed_everything(0)
    model = make_model()
    probs = predict(model, tiny_splits.test)
    np.testing.assert_allclose(probs, predict(model, tiny_splits.test, batch_size=7), atol=1e-6)
