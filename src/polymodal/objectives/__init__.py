"""Losses: supervised ones as functions of (outputs, targets) for each problem type, and
contrastive InfoNCE across modality pairs (:mod:`polymodal.objectives.contrastive`)."""

from __future__ import annotations

import torch
from torch import nn

from polymodal.objectives.contrastive import (
    ContrastiveLoss,
    NegativeQueue,
    gather_with_grad,
    info_nce,
)

__all__ = ["ContrastiveLoss", "NegativeQueue", "gather_with_grad", "info_nce",
           "supervised_loss"]


def supervised_loss(problem_type: str, outputs: torch.Tensor, targets: torch.Tensor,
                    class_weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy (multiclass), BCE (binary, multilabel) or MSE (regression).

    ``class_weights`` re-weights classes for imbalance (multiclass: per class; binary:
    the positive class weight as a 1-element tensor; multilabel: per label positive
    weights).
    """
    if problem_type == "multiclass":
        return nn.functional.cross_entropy(outputs, targets, weight=class_weights)
    if problem_type == "binary":
        return nn.functional.binary_cross_entropy_with_logits(
            outputs.squeeze(-1), targets.float(), pos_weight=class_weights)
    if problem_type == "multilabel":
        return nn.functional.binary_cross_entropy_with_logits(outputs, targets.float(),
                                                              pos_weight=class_weights)
    if problem_type == "regression":
        return nn.functional.mse_loss(outputs.squeeze(-1), targets.float())
    raise ValueError(f"unknown problem_type {problem_type!r}")
