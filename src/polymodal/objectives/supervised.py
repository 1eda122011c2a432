"""The supervised objective: a task's loss on the outputs of the fused model."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from polymodal.data.dataset import Batch
from polymodal.heads.task import Task
from polymodal.objectives.step import Step


class SupervisedLoss(nn.Module):
    """The loss of ``task`` (cross-entropy, BCE, MSE) on a batch, with its per-epoch
    metrics.

    Args:
        task: the fit's task (its classes).
        class_weights: per-class loss weights against imbalance (``Task.class_weights``).
    """

    def __init__(self, task: Task, class_weights: torch.Tensor | None = None) -> None:
        super().__init__()
        self.task = task
        self.register_buffer("class_weights", class_weights, persistent=False)

    def step(self, model: nn.Module, batch: Batch, stage: str) -> Step:
        outputs = model(batch)
        loss = self.task.loss(outputs, batch.labels, self.class_weights)
        logs = {f"{stage}_loss": loss}
        logs.update({f"{stage}_{name}": value for name, value in
                     self.task.step_metrics(outputs, batch.labels).items()})
        return Step(loss, logs, shown=tuple(logs))

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Parameters of the objective itself that the optimizer trains: none."""
        return []
