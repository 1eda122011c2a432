"""Training on Lightning: the LightningModule around a MultimodalModel, and the trainer
factory (checkpoints, early stopping, logs, precision, devices)."""

from polymodal.training.module import (
    AtomicCheckpointIO,
    CheckpointError,
    LitMultimodal,
    UnfreezeEncoders,
    load_training_checkpoint,
    make_trainer,
    warmup_cosine,
)

__all__ = ["AtomicCheckpointIO", "CheckpointError", "LitMultimodal", "UnfreezeEncoders",
           "load_training_checkpoint", "make_trainer", "warmup_cosine"]
