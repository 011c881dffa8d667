"""Building blocks shared by the models: embedding, MLPs and towers, experts, losses."""

from apem.nn.chain import chain_logits
from apem.nn.embedding import FieldEmbedding
from apem.nn.experts import ExpertGate, Experts
from apem.nn.losses import (
    calibrator_loss,
    check_labels,
    dependence_loss,
    dr_loss,
    ips_loss,
    step_bce,
)
from apem.nn.mlp import MLP, Tower, Towers

__all__ = [
    "MLP",
    "ExpertGate",
    "Experts",
    "FieldEmbedding",
    "Tower",
    "Towers",
    "calibrator_loss",
    "chain_logits",
    "check_labels",
    "dependence_loss",
    "dr_loss",
    "ips_loss",
    "step_bce",
]
