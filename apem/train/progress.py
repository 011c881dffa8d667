"""What a training run reports while it runs: a bar on a terminal, plain lines elsewhere.

Lines go to the ``apem.train`` logger at INFO (the ``apem`` command sends them to stderr);
``fit(..., progress=True)`` sends them to stderr when the caller configured no logging.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

from tqdm import tqdm

log = logging.getLogger("apem.train")


@contextlib.contextmanager
def reporting_to_stderr(enabled: bool) -> Iterator[None]:
    """While active (and ``enabled``), INFO lines of ``apem.train`` reach stderr; when the
    caller's logging already handles them (the ``apem`` command's does), it is left alone."""
    if not enabled or (log.isEnabledFor(logging.INFO) and log.hasHandlers()):
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


class EpochProgress:
    """One epoch's progress: a tqdm bar when stderr is a terminal, else (``plain``) a line
    ``[label] epoch E  step S (b/B)  loss L  N samples/s`` at every ``update``.

    Args:
        label: prefix of every line (e.g. ``"apem seed 0"``), or "" for none.
        enabled: False shows nothing (``TrainConfig.progress`` off, or not rank 0).
    """

    def __init__(self, label: str, epoch: int, total: int, done: int, enabled: bool) -> None:
        self.prefix = f"{label}: " if label else ""
        self.epoch, self.total = epoch, total
        on_terminal = enabled and sys.stderr.isatty()
        self.plain = enabled and not on_terminal
        self.bar = tqdm(
            total=total,
            initial=done,
            desc=f"{self.prefix}epoch {epoch}",
            disable=not on_terminal,
            leave=False,
        )

    def advance(self) -> None:
        """One batch done."""
        self.bar.update(1)

    def update(self, step: int, batch: int, loss: float, samples_per_s: float) -> None:
        """The mean loss since the epoch began, after batch ``batch`` (optimiser step ``step``)."""
        self.bar.set_postfix(loss=f"{loss:.4f}")
        if self.plain and batch < self.total:  # the epoch's end has its own line
            log.info(
                "%sepoch %d  step %d (%d/%d)  loss %.4f  %.0f samples/s",
                self.prefix, self.epoch, step, batch, self.total, loss, samples_per_s,
            )  # fmt: skip

    def close(self) -> None:
        self.bar.close()
