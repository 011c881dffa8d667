"""Model names and construction by name."""

from __future__ import annotations

import inspect
from typing import Any

from apem.data.schema import Schema
from apem.models.aitm import AITM
from apem.models.apem import APEM
from apem.models.base import FunnelModel
from apem.models.escm2 import ESCM2DR, ESCM2IPS
from apem.models.esmm import ESMM
from apem.models.mmoe import MMoE
from apem.models.ple import PLE
from apem.models.shared_bottom import SharedBottom
from apem.models.single_task import SingleTask

MODELS: dict[str, type[FunnelModel]] = {
    cls.name: cls
    for cls in (SingleTask, SharedBottom, MMoE, PLE, AITM, ESMM, ESCM2IPS, ESCM2DR, APEM)
}
MODEL_NAMES: list[str] = list(MODELS)


def hparam_names(name: str) -> list[str]:
    """The hyper-parameters ``build_model(name, ...)`` accepts, in signature order.

    A subclass whose ``__init__`` only forwards ``**hparams`` takes its parent's.
    """
    for cls in MODELS[_check_name(name)].__mro__:
        params = inspect.signature(cls.__init__).parameters.values()
        if all(p.kind is not p.VAR_KEYWORD for p in params):
            break
    return [p.name for p in params if p.kind is p.KEYWORD_ONLY]


def build_model(name: str, schema: Schema, **hparams: Any) -> FunnelModel:
    """A new model ``name`` for ``schema``; unknown names or hyper-parameters: ValueError."""
    valid = hparam_names(name)
    unknown = sorted(set(hparams) - set(valid))
    if unknown:
        raise ValueError(f"unknown hyper-parameter(s) {unknown} for model {name!r}; valid: {valid}")
    return MODELS[name](schema, **hparams)


def _check_name(name: str) -> str:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; valid models: {MODEL_NAMES}")
    return name
