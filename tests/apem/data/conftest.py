"""Helpers for the data tests: small tables and raw Tianchi dumps written on the fly."""

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def funnel_frame():
    """A 200-row funnel table: labels click, buy; categorical a, b; numerical x."""
    rng = np.random.default_rng(0)
    click = rng.integers(0, 2, 200)
    return pd.DataFrame(
        {
            "click": click,
            "buy": click * rng.integers(0, 2, 200),
            "a": rng.choice(["red", "green", "blue", "rare"], 200, p=[0.5, 0.3, 0.19, 0.01]),
            "b": rng.integers(100, 110, 200),
            "x": rng.exponential(20.0, 200).round(3),
        }
    )


@pytest.fixture
def write_text(tmp_path):
    """Write ``text`` to ``tmp_path/name`` and return the path."""

    def write(name: str, text: str) -> str:
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return write


FEATURE = "{}\x02{}\x03{}"


def features(items):
    return "\x01".join(FEATURE.format(field, fid, 1.0) for field, fid in items)


def write_raw(directory, skeleton, common, part="train"):
    (directory / f"common_features_{part}.csv").write_text(
        "".join(f"{key},{len(items)},{features(items)}\n" for key, items in common)
    )
    (directory / f"sample_skeleton_{part}.csv").write_text(
        "".join(
            f"{i + 1},{click},{buy},{key},{len(items)},{features(items)}\n"
            for i, (click, buy, key, items) in enumerate(skeleton)
        )
    )


@pytest.fixture
def raw_dir(tmp_path):
    """30 train samples (one purchase without click), 6 test samples, two users."""
    common = [("u1", [("101", 11), ("121", 3), ("999", 5)]), ("u2", [("101", 12), ("121", 4)])]
    train = []
    for i in range(30):
        click, buy = (0, 1) if i == 7 else (i % 3 == 0, i % 6 == 0)
        items = [("205", 100 + i % 4), ("206", 7), ("206", 8), ("301", 1 + i % 2)]
        if i == 5:
            items.append(("216", 77))  # seen once: OOV at min_count=2
        train.append((int(click), int(buy), "u1" if i % 2 else "u2", items))
    test = [(1, 0, "u1", [("205", 100), ("206", 9)])] * 3 + [(0, 0, "u2", [("205", 555)])] * 3
    write_raw(tmp_path, train, common, "train")
    write_raw(tmp_path, test, common, "test")
    return tmp_path
