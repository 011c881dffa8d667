"""The package's public surface, and that importing it never imports triton."""

import os
import subprocess
import sys

import apem_kernels


def test_public_names():
    assert set(apem_kernels.__all__) == {
        "Backend",
        "ISAB",
        "InducingAttention",
        "PMA",
        "inducing_attention",
        "inducing_attention_block",
        "inducing_attention_factored",
        "reference",
        "smooth_step",
    }
    for name in apem_kernels.__all__:
        assert getattr(apem_kernels, name) is not None


def test_import_does_not_import_triton():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    script = "import sys, apem_kernels; print('triton' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
