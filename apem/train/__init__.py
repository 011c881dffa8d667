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
from apem.train.loggers import CSVLogger, TensorBoardLogger
from apem.train.metrics import FunnelMetrics, funnel_metrics, log_loss, roc_auc
from apem.train.stats import paired_t_test
from apem.train.trainer import (
    FitResult,
    NonFiniteLossError,
    TrainConfig,
    fit,
    seed_everything,
)

__all__ = [
    "CSVLogger",
    "CheckpointError",
    "Comparison",
    "FitResult",
    "FunnelMetrics",
    "ModelSummary",
    "NonFiniteLossError",
    "TensorBoardLogger",
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
    "resolve_device",
    "roc_auc",
    "seed_everything",
]
