"""apem_kernels: fused Triton kernels for masked inducing-point attention and the smooth step.

Triton is imported only when the triton backend runs, so this package imports on machines
without triton or without a GPU driver.
"""

from apem_kernels import reference
from apem_kernels.backend import Backend
from apem_kernels.functional import (
    inducing_attention,
    inducing_attention_block,
    inducing_attention_factored,
    smooth_step,
)
from apem_kernels.modules import InducingAttention
from apem_kernels.set_transformer import ISAB, PMA

__all__ = [
    "Backend",
    "ISAB",
    "InducingAttention",
    "PMA",
    "inducing_attention",
    "inducing_attention_block",
    "inducing_attention_factored",
    "reference",
    "smooth_step",
]
