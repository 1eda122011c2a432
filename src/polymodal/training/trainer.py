"""The Trainer every estimator's fit runs on: checkpoints, early stopping, logs,
precision, devices and nodes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from polymodal.training.module import AtomicCheckpointIO
from polymodal.training.report import EpochLines, is_terminal, quiet_lightning
from polymodal.training.run import Deadline


def default_precision() -> str:
    """Mixed precision where the device supports it: bf16 on a GPU that has it (no loss
    scaling needed), fp16 with loss scaling on an older GPU, full precision on a CPU."""
    if not torch.cuda.is_available():
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"


def keep_log_before_resume(log_dir: Path) -> Path | None:
    """Move ``metrics.csv`` aside as ``metrics.before-resume-K.csv`` (K: the next
    free number), so that a resumed run's logger does not delete it;
    :func:`polymodal.plots.read_metrics` reads the parts back as one log."""
    current = log_dir / "metrics.csv"
    if not current.is_file():
        return None
    k = 1
    while (log_dir / f"metrics.before-resume-{k}.csv").exists():
        k += 1
    kept = log_dir / f"metrics.before-resume-{k}.csv"
    current.rename(kept)
    return kept


def make_trainer(run_dir: str | Path, *, max_epochs: int, patience: int | None = 5,
                 time_limit: float | None = None, devices: int | str = 1,
                 num_nodes: int = 1, accelerator: str = "auto",
                 precision: str | None = None, has_validation: bool = True,
                 progress: bool = True, callbacks: list[Any] | None = None,
                 resume: bool = False) -> L.Trainer:
    """A Trainer with the house defaults: best and last checkpoints (written atomically,
    read weights-only: :class:`AtomicCheckpointIO`), early stopping on the validation
    loss, CSV and TensorBoard logs in ``run_dir``, mixed precision on a GPU, and DDP (not
    ddp_spawn) when ``devices`` > 1 or ``num_nodes`` > 1 (under torchrun or SLURM,
    Lightning reads the ranks from their environment). ``time_limit`` is wall-clock
    seconds from now, for training and validation alike
    (:class:`~polymodal.training.run.Deadline`). With ``resume``, the CSV log of the
    interrupted run is kept beside the new one (Lightning's CSV logger deletes it)."""
    run_dir = Path(run_dir)
    if resume:
        keep_log_before_resume(run_dir / "logs")
    else:  # a new run in this folder: Lightning replaces metrics.csv; its parts go too
        for part in (run_dir / "logs").glob("metrics.before-resume-*.csv"):
            part.unlink()
    monitor = "val_loss" if has_validation else "train_loss"
    callbacks = [
        *(callbacks or []),
        *([Deadline(time.time() + time_limit)] if time_limit else []),
        # one run per folder: best.ckpt and last.ckpt are replaced, never versioned, so
        # resume=True always finds this run's last checkpoint. last.ckpt has a callback
        # of its own: Lightning's save_last writes it only in an epoch that also wrote a
        # best checkpoint, so a resume after epochs without a better validation loss
        # would go back to the last better one and train those epochs again
        ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor=monitor,
                        mode="min", save_top_k=1, enable_version_counter=False),
        ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last", monitor=None,
                        save_top_k=1, enable_version_counter=False),
        LearningRateMonitor(logging_interval="epoch"),
    ]
    if patience is not None and has_validation:
        callbacks.append(EarlyStopping(monitor=monitor, mode="min", patience=patience))
    quiet_lightning()
    bar = progress and is_terminal()  # in a log or a pipe: a line per epoch instead
    if progress and not bar:
        callbacks.append(EpochLines())
    if precision is None:
        precision = default_precision()
    multi = (devices not in (1, "1") and devices != [0]) or num_nodes > 1
    return L.Trainer(
        default_root_dir=run_dir, max_epochs=max_epochs, callbacks=callbacks,
        logger=[CSVLogger(run_dir, name="logs", version=""),
                TensorBoardLogger(run_dir, name="tensorboard", version="")],
        devices=devices, num_nodes=num_nodes,
        accelerator=accelerator, strategy="ddp" if multi else "auto", precision=precision,
        enable_progress_bar=bar, enable_model_summary=False, log_every_n_steps=1,
        deterministic=False, num_sanity_val_steps=0, plugins=[AtomicCheckpointIO()])
