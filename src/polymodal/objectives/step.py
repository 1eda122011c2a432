"""What an objective gives the training loop for one batch."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Step:
    """One batch's loss (None: nothing to learn from this batch) and what to log.

    Attributes:
        loss: the loss to back-propagate.
        logs: metric name -> value, logged per epoch.
        shown: the names of ``logs`` shown on the progress bar.
    """

    loss: torch.Tensor | None
    logs: dict[str, torch.Tensor] = field(default_factory=dict)
    shown: tuple[str, ...] = ()
