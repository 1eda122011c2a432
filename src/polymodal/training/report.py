"""What a fit says while it runs: a progress bar on a terminal, and in a log or a pipe
one line per epoch (and one every :data:`BATCH_LINE_EVERY_S` seconds of a long epoch),
so a run sent to a file is never silent for minutes. Lightning's own notices that say
nothing to a user (accelerator lines, a logger advertisement, deprecation warnings of
its internals, eval-mode counts of frozen towers) are silenced."""

from __future__ import annotations

import logging
import sys
import time
import warnings
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

#: seconds between the lines a long epoch prints in a log
BATCH_LINE_EVERY_S = 30.0
#: Lightning's warnings that are noise for a user of polymodal
_NOISE = (
    r".*isinstance\(treespec, LeafSpec\)",  # Lightning's own use of a torch deprecation
    r"Found \d+ module\(s\) in eval mode",  # frozen pretrained towers are eval on purpose
    r".*does not have many workers which may be a bottleneck",
    r"The '\w+_dataloader' does not have many workers",
    r"You defined a `validation_step` but have no `val_dataloader`",
)


def quiet_lightning() -> None:
    """Silence Lightning's informational lines and the warnings in ``_NOISE``."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
                 "lightning.fabric.utilities.seed", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in _NOISE:
        warnings.filterwarnings("ignore", message=pattern)


def is_terminal() -> bool:
    """Whether stderr (where progress goes) is a terminal."""
    return sys.stderr.isatty()


def _metrics(trainer: L.Trainer, prefix: str) -> str:
    shown = []
    for key, value in sorted(trainer.callback_metrics.items()):
        if key.startswith(prefix) and not key.endswith("_step"):
            shown.append(f"{key.removesuffix('_epoch')} {float(value):.4g}")
    return ", ".join(shown)


class EpochLines(Callback):
    """One line per finished epoch on stderr (its metrics and seconds), and one line
    every ``every`` seconds inside a long epoch: the progress of a fit whose output is
    not a terminal."""

    def __init__(self, every: float = BATCH_LINE_EVERY_S) -> None:
        self.every = every
        self._epoch_start = self._last_line = 0.0

    def _print(self, text: str) -> None:
        from polymodal.progress import console

        console.print(text, highlight=False)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._epoch_start = self._last_line = time.monotonic()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, *args: Any,
                           **kwargs: Any) -> None:
        now = time.monotonic()
        if now - self._last_line >= self.every:
            self._last_line = now
            total = trainer.num_training_batches
            of = f" of {total:,}" if isinstance(total, int) else ""
            self._print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}: batch "
                        f"{trainer.fit_loop.epoch_loop.batch_idx + 1:,}{of}, "
                        f"{now - self._epoch_start:.0f} s")

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        seconds = time.monotonic() - self._epoch_start
        parts = [p for p in (_metrics(trainer, "train_"), _metrics(trainer, "val_")) if p]
        self._print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} done in "
                    f"{seconds:.1f} s" + (f": {'; '.join(parts)}" if parts else ""))
