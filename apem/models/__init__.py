"""Funnel models: APEM and its baselines, built by name."""

from apem.models.aitm import AITM
from apem.models.apem import APEM
from apem.models.base import FunnelModel
from apem.models.escm2 import ESCM2, ESCM2DR, ESCM2IPS
from apem.models.esmm import ESMM
from apem.models.mmoe import MMoE
from apem.models.ple import PLE
from apem.models.registry import MODEL_NAMES, build_model, hparam_names
from apem.models.shared_bottom import SharedBottom
from apem.models.single_task import SingleTask

__all__ = [
    "AITM",
    "APEM",
    "ESCM2",
    "ESCM2DR",
    "ESCM2IPS",
    "ESMM",
    "MMoE",
    "MODEL_NAMES",
    "PLE",
    "FunnelModel",
    "SharedBottom",
    "SingleTask",
    "build_model",
    "hparam_names",
]
