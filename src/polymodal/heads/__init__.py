"""The task stage: what a model's output means and how it is trained.

Supervised tasks (:mod:`polymodal.heads.tasks`: multiclass, binary, multi-label,
regression) each know their output size, loss, targets, probabilities and metrics;
:class:`TaskHead` maps the fused representation to their outputs. The contrastive task's
:class:`EmbeddingHead` maps each tower into the shared space.
"""

from __future__ import annotations

from polymodal.heads.embedding import PROJECTIONS, EmbeddingHead
from polymodal.heads.mlp import TaskHead
from polymodal.heads.task import TASKS, Task, infer_problem_type, make_task

PROBLEM_TYPES = ("binary", "multiclass", "multilabel", "regression")

__all__ = ["PROBLEM_TYPES", "PROJECTIONS", "TASKS", "EmbeddingHead", "Task", "TaskHead",
           "infer_problem_type", "make_task"]
