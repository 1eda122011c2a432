"""Objectives: what a batch's loss is. The supervised one is the task's loss
(:mod:`polymodal.objectives.supervised`, the losses themselves live with the tasks in
:mod:`polymodal.heads`); the contrastive one is InfoNCE across modality pairs
(:mod:`polymodal.objectives.contrastive`). Each gives the training loop a
:class:`~polymodal.objectives.step.Step` per batch."""

from __future__ import annotations

from polymodal.objectives.contrastive import (
    ContrastiveLoss,
    NegativeQueue,
    content_hash,
    gather_with_grad,
    info_nce,
)
from polymodal.objectives.step import Step
from polymodal.objectives.supervised import SupervisedLoss

__all__ = ["ContrastiveLoss", "NegativeQueue", "Step", "SupervisedLoss", "content_hash",
           "gather_with_grad", "info_nce"]
