"""Training, evaluation and comparison of funnel models."""

from apem.train.checkpoint import (
    CheckpointError,
    check_data,
    check_schema,
    checkpoint_vocabulary,
    load_checkpoint,
    model_from_checkpoint,
)
from apem.train.compare import Comparison, ModelSummary, compare, fit_seed
from apem.train.evaluation import evaluate, oracle_metrics, predict, resolve_device
from apem.train.metrics import FunnelMetrics, funnel_metrics, log_loss, roc_auc
from apem.train.stats import paired_t_test, regularized_incomplete_beta, student_t_cdf
from apem.train.trainer import (
    FitResult,
    NonFiniteLossError,
    TrainConfig,
    fit,
    seed_everything,
)

__all__ = [
    "CheckpointError",
    "Comparison",
    "FitResult",
    "FunnelMetrics",
    "ModelSummary",
    "NonFiniteLossError",
    "TrainConfig",
    "check_data",
    "check_schema",
    "checkpoint_vocabulary",
    "compare",
    "evaluate",
    "fit",
    "fit_seed",
    "funnel_metrics",
    "load_checkpoint",
    "log_loss",
    "model_from_checkpoint",
    "oracle_metrics",
    "paired_t_test",
    "predict",
    "regularized_incomplete_beta",
    "resolve_device",
    "roc_auc",
    "seed_everything",
    "student_t_cdf",
]
