"""Training on Lightning: the LightningModule of every model, the trainer
factory (checkpoints, early stopping, logs, precision, devices) and one fit as every
estimator runs it (resume, time limit, interruption). Names load on first use, so that
catching :class:`TrainingInterrupted` imports no model library."""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "AtomicCheckpointIO": "module", "CheckpointError": "module", "LitEstimator": "module",
    "UnfreezeEncoders": "module", "load_training_checkpoint": "module",
    "make_trainer": "trainer", "default_precision": "trainer", "warmup_cosine": "module",
    "Deadline": "run", "fit_run": "run", "remaining_time": "run",
    "TrainingInterrupted": "interrupt",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"polymodal.training.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'polymodal.training' has no attribute {name!r}")


__all__ = sorted(_WHERE)
