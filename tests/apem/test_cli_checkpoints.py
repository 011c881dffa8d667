"""Checkpoints through the `apem` command: self-contained, never silently on other data, never
overwritten without being asked."""

import os

import pandas as pd
import pytest

from apem.train.checkpoint import load_checkpoint, save_checkpoint

TRAINING = [
    "--model", "single_task", "--epochs", "1", "--batch-size", "64", "--lr", "0.01",
    "--embed-dim", "4", "--set", "tower_hidden=[8]", "--device", "cpu", "--no-progress",
    "--quiet",
]  # fmt: skip
SYNTHETIC = ["--data-option", "base_rates=[0.3, 0.12]", "--data-option", "vocab_size=20"]


def table_text(rows: int, start: int = 0) -> str:
    """A funnel table whose codes look numeric ("07") or missing ("NA"): typed text must stay."""
    lines = ["code,tag,click,buy"]
    for i in range(start, start + rows):
        code = f"{i % 12:02d}"
        tag = ("NA", "None", "null", "x")[i % 4]
        click = int(i % 3 == 0 or i % 12 in (1, 5))
        lines.append(f"{code},{tag},{click},{int(click and i % 2 == 0)}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def table_run(tmp_path, cli):
    """A single_task run on a 400-row CSV: (training CSV, checkpoint folder, cache folder)."""
    table = tmp_path / "train.csv"
    table.write_text(table_text(400))
    cache, out = tmp_path / "cache", tmp_path / "run"
    data = ["--data", str(table), "--labels", "click,buy", "--cache-dir", str(cache)]
    code, _, err = cli(["train", *TRAINING, *data, "--out", str(out)])
    assert code == 0, err
    return table, out, cache


def test_eval_refuses_a_changed_training_file_and_says_what_differs(table_run, cli):
    table, out, _ = table_run
    with table.open("a") as handle:
        handle.write(table_text(30, start=400).split("\n", 1)[1])
    code, _, err = cli(["eval", str(out / "best.pt")])
    assert code == 2 and "Traceback" not in err
    assert "the data differ from those checkpoint" in err
    assert "train rows 320 -> 344" in err and "size " in err and "--input FILE" in err


def test_a_touched_training_file_is_still_the_same_data(table_run, cli):
    table, out, _ = table_run
    os.utime(table, ns=(0, 10**18))
    code, stdout, err = cli(["eval", str(out / "best.pt")])
    assert code == 0, err
    assert "single_task on the test split (40 rows)" in stdout


def test_eval_input_scores_a_file_as_new_data_with_the_stored_vocabularies(
    table_run, tmp_path, cli
):
    table, out, _ = table_run
    new = tmp_path / "new.csv"
    new.write_text(table_text(30, start=400))
    code, stdout, err = cli(["eval", str(out / "best.pt"), "--input", str(new)])
    assert code == 0, err
    assert f"{new}: 30 rows of new data, encoded with the checkpoint's vocabularies" in stdout
    assert "out of vocabulary: 0.0 % of cells" in stdout  # "07", "NA", "None" are all known


def test_predict_input_reads_typed_text_and_needs_no_training_data(table_run, tmp_path, cli):
    table, out, cache = table_run
    scored = tmp_path / "scored.csv"
    command = ["predict", str(out / "best.pt"), "--input", str(table), "--output", str(scored)]
    code, stdout, err = cli(command)
    assert code == 0, err
    assert "out of vocabulary: 0.0 % of cells" in stdout
    before = pd.read_csv(scored)
    table.rename(table.with_name("moved.csv"))  # the checkpoint alone encodes the input
    for entry in cache.iterdir():
        entry.rename(entry.with_name(entry.name + ".old"))
    code, _, err = cli([*command[:3], str(table.with_name("moved.csv")), *command[4:]])
    assert code == 0, err
    pd.testing.assert_frame_equal(pd.read_csv(scored), before)


def test_resume_refuses_other_data(tmp_path, cli):
    out = tmp_path / "run"
    code, _, err = cli(["train", *TRAINING, *SYNTHETIC, "--rows", "3000", "--out", str(out)])
    assert code == 0, err
    resumed = ["train", *TRAINING, *SYNTHETIC, "--rows", "5000", "--epochs", "2"]
    code, _, err = cli([*resumed, "--out", str(out), "--resume"])
    assert code == 2 and "train rows 2,400 -> 4,000" in err


def test_train_refuses_an_out_holding_a_checkpoint(tmp_path, cli):
    out = tmp_path / "run"
    first = ["train", *TRAINING, *SYNTHETIC, "--rows", "600", "--out", str(out)]
    assert cli(first)[0] == 0
    best = (out / "best.pt").read_bytes()
    code, _, err = cli(first)
    assert code == 2 and "--out already holds" in err and "--resume" in err
    assert "--overwrite" in err
    assert (out / "best.pt").read_bytes() == best
    assert cli([*first, "--overwrite", "--seed", "1"])[0] == 0
    assert (out / "best.pt").read_bytes() != best
    code, _, err = cli(["train", *TRAINING, "--out", str(tmp_path / "empty"), "--resume"])
    assert code == 2 and "there is no" in err and "last.pt to continue" in err
    compare = ["compare", "--models", "single_task", "--seeds", "0", *TRAINING[2:], *SYNTHETIC]
    compare += ["--rows", "600", "--out", str(tmp_path / "cmp")]
    assert cli(compare)[0] == 0
    code, _, err = cli(compare)
    assert code == 2 and "--out already holds" in err and "single_task-seed0" in err


def test_eval_warns_about_a_best_pt_that_a_kill_left_behind(table_run, cli):
    _, out, _ = table_run
    last = load_checkpoint(out / "last.pt")
    last["progress"]["best_step"] = last["progress"]["step"] + 5  # as if killed before best.pt
    save_checkpoint(out / "last.pt", last)
    code, _, err = cli(["eval", str(out / "best.pt")])
    assert code == 0, err
    assert "apem: warning:" in err and "resume the run to rewrite best.pt" in err
