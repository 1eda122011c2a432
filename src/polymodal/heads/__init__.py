"""Task heads: the fused representation to logits or values."""

from __future__ import annotations

from torch import nn

PROBLEM_TYPES = ("binary", "multiclass", "multilabel", "regression")


class TaskHead(nn.Module):
    """A small MLP head: ``(B, in_dim) -> (B, n_outputs)``.

    ``n_outputs`` is the number of classes (multiclass, multilabel), 1 for binary
    (one logit) and for regression (one value).
    """

    def __init__(self, in_dim: int, n_outputs: int, hidden: int | None = None,
                 dropout: float = 0.1) -> None:
        super().__init__()
        hidden = hidden or in_dim
        self.net = nn.Sequential(nn.LayerNorm(in_dim), nn.Dropout(dropout),
                                 nn.Linear(in_dim, hidden), nn.GELU(),
                                 nn.Linear(hidden, n_outputs))

    def forward(self, x):
        return self.net(x)


def n_outputs(problem_type: str, n_classes: int) -> int:
    """How many outputs a head needs for a problem type."""
    if problem_type not in PROBLEM_TYPES:
        raise ValueError(f"problem_type must be one of {PROBLEM_TYPES}, got {problem_type!r}")
    return n_classes if problem_type in ("multiclass", "multilabel") else 1
