"""The error of a fit stopped by a signal (no torch needed to catch it: the CLI's
error handler imports it before any model library)."""

from __future__ import annotations

import signal
from pathlib import Path

from polymodal.data.errors import PolymodalError


class TrainingInterrupted(PolymodalError):
    """A fit stopped by a signal before it finished. ``checkpoint`` is the last
    finished epoch's checkpoint (kept; ``fit(..., resume=True)`` or ``--resume``
    continues from it), or None when no epoch finished."""

    def __init__(self, signal_name: str, run_dir: Path, epoch: int) -> None:
        last = Path(run_dir) / "checkpoints" / "last.ckpt"
        self.signal_name, self.run_dir, self.epoch = signal_name, Path(run_dir), epoch
        self.checkpoint: Path | None = last if last.is_file() else None
        self.exit_code = 128 + (signal.SIGTERM if signal_name == "SIGTERM" else signal.SIGINT)
        if self.checkpoint is not None:
            hint = (f"the last finished epoch's checkpoint is kept at {self.checkpoint}; "
                    "continue with the same command and --resume (Python: "
                    "fit(..., resume=True) with the same path)")
        else:
            hint = "no epoch had finished, so there is no checkpoint to resume from"
        super().__init__(f"training was stopped by {signal_name} in epoch {epoch}; {hint}")
