"""benchmarks.static: the SASS/ptxas parsing, and one real configuration compiled end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks import static

SASS = """
        /*0000*/                   MOV R1, c[0x0][0x28] ;
        /*0010*/                   FFMA R2, R3, R4, R5 ;
        /*0020*/                   HGMMA.64x32x16.F32.BF16 R24, gdesc[UR4], RZ ;
        /*0030*/                   FFMA R2, R3, R4, R5 ;
        /*0040*/              @P0  BRA 0x30 ;
        /*0050*/                   MUFU.EX2 R6, R6 ;
        /*0060*/              @!P1 BRA 0x10 ;
        /*0070*/                   NOP ;
        /*0080*/                   EXIT ;
"""

PTXAS = """ptxas info    : Compiling entry function '_forward_kernel' for 'sm_90a'
ptxas info    : Function properties for _forward_kernel
    8 bytes stack frame, 16 bytes spill stores, 24 bytes spill loads
ptxas info    : Used 168 registers, used 1 barriers, 1024 bytes smem, 400 bytes cmem[0]
"""


def test_per_sample_counts_weigh_inner_loops_by_their_trips():
    sass = static.parse_sass(SASS)
    assert [a for a, _ in sass] == [0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x80]
    assert static.loops(sass) == [(0x10, 0x60), (0x30, 0x40)]
    counts = static.per_sample_counts(sass, (3,))
    # sample loop 0x10..0x60: 6 instructions, of which the inner loop's 2 run 3 times
    assert counts["instructions_per_sample"] == 4 + 2 * 3
    assert counts["ffma_per_sample"] == 1 + 3
    assert counts["hgmma_per_sample"] == 1 and counts["mufu_per_sample"] == 1


def test_parse_ptxas():
    assert static.parse_ptxas(PTXAS) == {
        "regs": 168,
        "static_smem": 1024,
        "stack_bytes": 8,
        "spill_stores": 16,
        "spill_loads": 24,
    }


def test_import_leaves_the_interpreter_on():
    # tests/conftest.py turns it on; importing the report must not turn the kernel tests off
    assert os.environ.get("TRITON_INTERPRET") == "1"


def test_only_the_configurations_the_fused_kernels_take():
    # fp32 at d = 64 with 4 heads runs the torch backend: nothing to compile for it
    assert static.supported("bf16", "wide") and static.supported("fp32", "paper-n64")
    assert not static.supported("fp32", "wide")


def run_static(out: Path, only: str) -> None:
    """``python -m benchmarks.static --only ONLY --arch 90`` into ``out``, compiling for real."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    subprocess.run(
        [sys.executable, "-m", "benchmarks.static", "--only", only, "--arch", "90"]
        + ["--out", str(out)],
        check=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
    )


def test_one_configuration_end_to_end(tmp_path: Path):
    run_static(tmp_path, "forward:bf16:paper-n18")
    rows = json.loads((tmp_path / "static.json").read_text())
    assert len(rows) == 1
    row = rows[0]
    assert (row["kernel"], row["dtype"], row["shape"], row["version"]) == (
        "forward",
        "bf16",
        "paper-n18",
        "current",
    )
    assert 0 < row["regs"] <= 255 and row["ctas_per_sm"] >= 1 and row["k_blocks"] == 1
    assert row["instructions_per_sample"] > 0 and row["hgmma_per_sample"] > 0
    assert (
        "| forward | bf16 | paper-n18 | sm_90 | current |" in (tmp_path / "static.md").read_text()
    )


def test_the_backward_row_combines_its_two_passes(tmp_path: Path):
    run_static(tmp_path, "backward:bf16:paper-n18")
    (row,) = json.loads((tmp_path / "static.json").read_text())
    passes = row["passes"]
    assert [p["pass"] for p in passes] == ["backward_output", "backward_keys"]
    # maxnreg reached ptxas: each pass within its cap, so 3 CTAs/SM by registers
    assert all(0 < p["regs"] <= p["max_registers"] == 168 for p in passes)
    assert row["regs"] == max(p["regs"] for p in passes)
    assert row["ctas_per_sm"] == min(p["ctas_per_sm"] for p in passes)
    total = sum(p["instructions_per_sample"] for p in passes)
    assert row["instructions_per_sample"] == total > 0
    table = (tmp_path / "static.md").read_text()
    assert "| bf16 | paper-n18 | sm_90 | backward_keys | 168 |" in table
