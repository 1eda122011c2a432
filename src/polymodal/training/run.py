"""One Lightning fit, as every estimator runs it: resume from this run's last
checkpoint, a wall-clock time limit that holds within seconds, an interruption (SIGTERM,
Ctrl-C) that fails loudly and keeps the checkpoint to resume from, and the best
checkpoint loaded at the end."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from polymodal.training.interrupt import TrainingInterrupted

#: seconds a validation pass may run past the time limit before it is cut short
VALIDATION_GRACE_S = 5.0


class _DeadlineReached(Exception):
    """Raised inside a validation pass that runs past the time limit (internal)."""


class Deadline(Callback):
    """Stop at a wall-clock ``deadline`` (``time.time()`` seconds), whatever the stage:
    after the training batch that crosses it, and in a validation pass that runs more
    than :data:`VALIDATION_GRACE_S` past it. Lightning's own ``max_time`` counts
    training batches only, so validation and the work before the first batch (feature
    caching, vocabularies) ran past the limit unseen."""

    def __init__(self, deadline: float, grace: float | None = None) -> None:
        self.deadline = deadline
        self.grace = VALIDATION_GRACE_S if grace is None else grace
        self.reached = False

    def _past(self, trainer: L.Trainer, seconds: float) -> bool:
        # rank 0's clock decides for every process (as Lightning's Timer does), so no
        # rank stops or leaves a collective alone
        return bool(trainer.strategy.broadcast(time.time() >= seconds))

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if self._past(trainer, self.deadline):
            self.reached = True
            trainer.should_stop = True

    def on_validation_batch_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any
                                  ) -> None:
        if not trainer.sanity_checking and self._past(trainer, self.deadline + self.grace):
            self.reached = True
            raise _DeadlineReached


def fit_run(trainer: L.Trainer, lit: L.LightningModule, train_loader: Any,
            val_loader: Any | None, run_dir: Path, *, resume: bool = False) -> str:
    """``trainer.fit`` of ``lit``, from this run's ``last.ckpt`` when ``resume``; the
    best checkpoint's weights loaded into ``lit`` at the end. Returns how it ended:
    ``"finished"`` or ``"time limit"``.

    Raises:
        FileNotFoundError: ``resume`` without a checkpoint to resume from.
        TrainingInterrupted: SIGTERM or Ctrl-C (the process's exit code is on it).
    """
    from polymodal.training.module import load_training_checkpoint

    last = Path(run_dir) / "checkpoints" / "last.ckpt"
    if resume and not last.exists():
        raise FileNotFoundError(f"resume=True but {last} does not exist: nothing to resume "
                                "(was the run started with the same output folder?)")
    main_thread = threading.current_thread() is threading.main_thread()
    sigint = signal.getsignal(signal.SIGINT) if main_thread else None
    try:
        trainer.fit(lit, train_loader, val_loader, ckpt_path=str(last) if resume else None,
                    weights_only=True)
    except _DeadlineReached:
        pass  # the Deadline callback says so: it is reached
    except (SystemExit, KeyboardInterrupt):
        # Lightning turns SIGTERM into SIGTERMException (a SystemExit, code None: exit
        # 0) and Ctrl-C into sys.exit(1); neither may pass for a finished fit
        name = "SIGTERM" if getattr(trainer, "received_sigterm", False) else "SIGINT (Ctrl-C)"
        raise TrainingInterrupted(name, Path(run_dir), trainer.current_epoch) from None
    finally:
        if main_thread and sigint is not None:  # Lightning leaves SIGINT ignored
            signal.signal(signal.SIGINT, sigint)
    ended = "time limit" if any(isinstance(c, Deadline) and c.reached
                                for c in trainer.callbacks) else "finished"
    best = trainer.checkpoint_callback.best_model_path  # type: ignore[union-attr]
    if best:
        checkpoint = load_training_checkpoint(best)
        lit.fill_frozen(checkpoint)  # the frozen towers it leaves out
        lit.load_state_dict(checkpoint["state_dict"])
    return ended


def remaining_time(start: float, time_limit: float | None) -> float | None:
    """What is left of ``time_limit`` seconds counted from ``start`` (``time.time()``):
    a fit's limit covers its work before the first batch too; at least a millisecond,
    so a spent limit still trains one batch and stops."""
    if time_limit is None:
        return None
    return max(1e-3, start + float(time_limit) - time.time())
