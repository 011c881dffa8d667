"""Run loggers fed from the trainer's history: one entry per validation.

A logger has ``log(entry)`` (a history dict: epoch, step, lr, train_loss, valid AUCs, ...) and
``close()``. Nested dicts are flattened to ``"valid_auc/<step>"`` keys.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Protocol


class RunLogger(Protocol):
    def log(self, entry: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def flatten(entry: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"valid_auc": {"click": 0.7}}`` -> ``{"valid_auc/click": 0.7}``."""
    flat: dict[str, Any] = {}
    for key, value in entry.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}/"))
        else:
            flat[name] = value
    return flat


class CSVLogger:
    """One CSV row per validation, flushed as it is written. An existing file (a resumed run)
    is appended to under its own header; a new one gets the first entry's keys as header."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._columns: list[str] | None = None
        if self.path.exists() and self.path.stat().st_size:
            with self.path.open(newline="") as existing:
                self._columns = next(csv.reader(existing))
        self._file = self.path.open("a", newline="")

    def log(self, entry: dict[str, Any]) -> None:
        row = flatten(entry)
        writer = csv.DictWriter(self._file, self._columns or list(row), extrasaction="ignore")
        if self._columns is None:
            self._columns = list(row)
            writer.writeheader()
        writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class TensorBoardLogger:
    """Every number of an entry as a scalar at the entry's optimiser step (needs the
    ``tensorboard`` package: ``pip install "apem[tensorboard]"``)."""

    def __init__(self, log_dir: str | Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ImportError(
                'TensorBoardLogger needs the tensorboard package: pip install "apem[tensorboard]"'
            ) from error
        self._writer = SummaryWriter(str(log_dir))

    def log(self, entry: dict[str, Any]) -> None:
        step = int(entry["step"])
        for key, value in flatten(entry).items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self._writer.add_scalar(key, value, global_step=step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
