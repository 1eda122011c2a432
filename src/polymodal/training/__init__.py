"""Training on Lightning: the LightningModule around a MultimodalModel, and the trainer
factory (checkpoints, early stopping, logs, precision, devices)."""

from polymodal.training.module import LitMultimodal, UnfreezeEncoders, make_trainer, warmup_cosine

__all__ = ["LitMultimodal", "UnfreezeEncoders", "make_trainer", "warmup_cosine"]
