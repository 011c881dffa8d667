"""DDP on torchrun with 2 gloo processes: the same run as one process with the same global batch."""

from __future__ import annotations

import subprocess
import sys

import torch

from apem.train import load_checkpoint

# 1,500 rows: 1,200 train = 12 global batches of 100 (50 per rank) per epoch, 24 steps in all.
TRAIN = [
    "train", "--model", "apem", "--data", "synthetic", "--rows", "1500", "--fields", "4",
    "--epochs", "2", "--batch-size", "100", "--device", "cpu", "--embed-dim", "8",
    "--set", "num_layers=2", "--set", "num_inducing=8", "--no-progress", "--num-threads", "1",
    # γ from the step alone: the interrupted run plans 18 steps, the others 24
    "--set", "gamma_schedule=paper",
]  # fmt: skip


def apem(args: list[str], cwd, processes: int = 1) -> str:
    launcher = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    command = [sys.executable, *(launcher if processes > 1 else []), "-m", "apem", *args]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_two_gloo_ranks_equal_one_process_and_resume_compiled(tmp_path):
    single = apem([*TRAIN, "--out", "single"], tmp_path)
    # The DDP run stops at step 18 (mid-epoch) and resumes to the end, compiled.
    apem([*TRAIN, "--out", "ddp", "--max-steps", "18"], tmp_path, processes=2)
    assert load_checkpoint(tmp_path / "ddp" / "last.pt")["progress"]["step"] == 18
    resumed = apem([*TRAIN, "--out", "ddp", "--resume", "--compile", "aot_eager"], tmp_path, 2)
    assert resumed.count("test split at the best epoch") == 1  # rank 0 alone reports
    expected = load_checkpoint(tmp_path / "single" / "last.pt")
    found = load_checkpoint(tmp_path / "ddp" / "last.pt")
    assert found["progress"]["step"] == expected["progress"]["step"] == 24
    assert found["model"]["state"].keys() == expected["model"]["state"].keys()
    for key, value in expected["model"]["state"].items():
        if key == "planned_steps":  # the run length each run planned, not its trajectory
            continue
        torch.testing.assert_close(found["model"]["state"][key], value, rtol=1e-4, atol=1e-5)
    assert [h["step"] for h in found["progress"]["history"]] == [12, 18, 24]
    assert "test split at the best epoch" in single
