"""Every bad argument or input of the `apem` command: exit status 2 and a message naming the
flag, or the file (line, column), never a traceback."""

import re

import pytest

TINY = [
    "--rows", "600", "--fields", "4", "--data-option", "vocab_size=10", "--epochs", "1",
    "--batch-size", "64", "--embed-dim", "4", "--set", "tower_hidden=[8]", "--device", "cpu",
    "--no-progress", "--quiet",
]  # fmt: skip
TABLE = "code,click,buy\n" + "".join(
    f"{i % 7:02d},{int(i % 3 == 0)},{int(i % 6 == 0)}\n" for i in range(200)
)


@pytest.fixture(scope="module")
def files(tmp_path_factory, cli):
    """A trained table checkpoint and the files the cases below point at."""
    root = tmp_path_factory.mktemp("bad")
    (root / "table.csv").write_text(TABLE)
    (root / "one.csv").write_text("code,click,buy\n01,1,0\n")
    (root / "valid1.csv").write_text("code,click,buy\n" + "01,0,0\n" * 60)
    data = ["--data", str(root / "table.csv"), "--labels", "click,buy"]
    args = ["train", "--model", "single_task", *data, *TINY[6:], "--out", str(root / "run")]
    code, _, err = cli([*args, "--cache-dir", str(root / "cache")])
    assert code == 0, err
    return root


# (arguments, with {root} for the files' folder; a regular expression the error must match)
CASES = [
    (["train", "--batch-size", "0"], r"argument --batch-size: must be a positive integer, got '0'"),
    (["train", "--batch-size", "-5"], r"argument --batch-size: must be a positive integer"),
    (["train", "--eval-batch-size", "0"], r"argument --eval-batch-size: must be a positive"),
    (["train", "--epochs", "0"], r"argument --epochs: must be a positive integer, got '0'"),
    (["train", "--max-steps", "0"], r"argument --max-steps: must be a positive integer"),
    (["train", "--patience", "-1"], r"argument --patience: must be an integer >= 0"),
    (["train", "--lr", "nan"], r"argument --lr: must be a finite number > 0, got 'nan'"),
    (["train", "--lr", "-0.1"], r"argument --lr: must be a finite number > 0"),
    (["train", "--lr", "inf"], r"argument --lr: must be a finite number > 0"),
    (["train", "--num-threads", "-1"], r"argument --num-threads: must be a positive integer"),
    (["train", "--rows", "0"], r"argument --rows: must be a positive integer"),
    (["train", "--device", "foo"], r"argument --device: unknown device 'foo'"),
    (
        ["train", "--device", "cuda:99"],
        r"argument --device: cuda:99: (CUDA is not available|this machine has)",
    ),
    (["eval", "x.pt", "--batch-size", "0"], r"argument --batch-size: must be a positive"),
    (
        ["train", "--model", "single_task", "--set", "apem:num_layers=1"],
        r"--set apem:num_layers=1 targets model 'apem', which is not among the models trained",
    ),
    (
        ["compare", "--models", "esmm", "--set", "apem:num_layers=1"],
        r"--set apem:num_layers=1 targets model 'apem'",
    ),
    (
        ["train", "--data-option", "colour=1"],
        r"unknown option\(s\) \['colour'\] \(--data-option\); this source takes: .*vocab_size",
    ),
    (
        ["train", "--data", "{root}/table.csv", "--labels", "click,click"],
        r"labels \(--labels\) name \['click'\] more than once",
    ),
    (
        ["train", "--data", "{root}/table.csv"],
        r"needs its label columns in funnel order \(--labels",
    ),
    (
        ["train", "--data", "{root}/one.csv", "--labels", "click,buy", "--out", "{root}/o1"],
        r"one.csv: the train and valid splits have no rows \(0 / 0 / 1 rows",
    ),
    (
        ["train", "--data", "{root}/valid1.csv", "--labels", "click,buy", "--out", "{root}/o2"],
        r"no step has both classes in the validation split",
    ),
    (
        ["train", "--resume", "--overwrite", "--out", "{root}/run"],
        r"--resume continues the checkpoint",
    ),
    (["eval", "{root}/missing.pt"], r"checkpoint .*missing.pt does not exist"),
    (["eval", "{root}/run"], r"run is a directory, not a .pt file"),
    (
        [
            "predict",
            "{root}/run/best.pt",
            "--input",
            "{root}/absent.csv",
            "--output",
            "{root}/p.csv",
        ],
        r"absent.csv: no such file",
    ),
    (
        ["predict", "{root}/run/best.pt", "--input", "{root}/run", "--output", "{root}/p.csv"],
        r"run: is a directory, expected a file",
    ),
    (
        ["predict", "{root}/run/best.pt", "--input", "{root}/one.csv", "--output", "{root}/p.txt"],
        r"--output must end in .csv or .parquet",
    ),
    (
        [
            "predict",
            "{root}/run/best.pt",
            "--input",
            "{root}/one.csv",
            "--data",
            "synthetic",
            "--output",
            "{root}/p.csv",
        ],
        r"--input is read with the checkpoint's vocabularies; --data",
    ),
    (
        ["eval", "{root}/run/best.pt", "--input", "{root}/nolabels.csv"],
        r"nolabels.csv, line 1, column 'click': missing column",
    ),
]


@pytest.mark.parametrize(("argv", "pattern"), CASES, ids=[" ".join(c[0][:4]) for c in CASES])
def test_bad_arguments_exit_2_with_a_clear_message(files, cli, argv, pattern):
    (files / "nolabels.csv").write_text("code\n01\n")
    argv = [a.format(root=files) for a in argv]
    code, _, err = cli([*argv, *TINY] if argv[0] == "train" and "--data" not in argv else argv)
    assert code == 2, err
    assert "Traceback" not in err
    assert re.search(pattern, err), err


def test_predict_reads_pq_and_upper_case_suffixes(files, cli, tmp_path):
    import pandas as pd

    table = pd.read_csv(files / "table.csv", dtype=str)
    table.to_parquet(tmp_path / "new.pq")
    out = tmp_path / "p.CSV"
    code, stdout, err = cli(
        [
            "predict",
            str(files / "run" / "best.pt"),
            "--input",
            str(tmp_path / "new.pq"),
            "--output",
            str(out),
        ]
    )
    assert code == 0, err
    assert len(pd.read_csv(out)) == 200 and "0.0 % of cells" in stdout


def test_a_run_no_better_than_chance_is_warned_about(tmp_path, cli):
    argv = ["train", "--model", "single_task", *TINY, "--lr", "1000", "--out", str(tmp_path)]
    code, _, err = cli(argv)
    assert code == 0, err
    assert "apem: warning: the model is no better than chance" in err and "lr=1000" in err
