"""What a supervised task is, in one object: its output size, how a label becomes a
target, its loss, how outputs become probabilities and predictions, and its metrics.

Every problem type (:data:`PROBLEM_TYPES`) is a :class:`Task` registered in
:data:`TASKS` (as fusions and encoders are); nothing outside ``polymodal.heads``
branches on the problem type. A task is made for the classes of one fit
(``TASKS.get(name)(classes)``) and saved as its name and classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from polymodal.registry import Registry

#: the tasks by problem-type name ("binary", "multiclass", "multilabel", "regression")
TASKS: Registry[type[Task]] = Registry("problem type",
                                      load=lambda: __import__("polymodal.heads.tasks"))


class Task:
    """A problem type bound to the classes of one fit.

    Attributes:
        name: the problem type, as saved and as ``Predictor(problem_type=...)`` takes it.
        main_metric: the metric a modality report compares.
        lower_is_better: whether ``main_metric`` improves downwards (RMSE).
        label_type: what :func:`polymodal.data.validation.check_labels` checks labels
            as ("auto", "numeric"), or None when any value is taken (lists).
    """

    name: ClassVar[str]
    main_metric: ClassVar[str]
    lower_is_better: ClassVar[bool] = False
    label_type: ClassVar[str | None] = "auto"

    def __init__(self, classes: Sequence[Any] = ()) -> None:
        self.classes = list(classes)
        self.index = {c: i for i, c in enumerate(self.classes)}

    # -- from the labels of a fit ---------------------------------------------------
    @classmethod
    def classes_from(cls, labels: pd.Series, column: str) -> list[Any]:
        """The sorted classes of ``labels`` (digits by value); a ValueError naming
        ``column`` when fewer than two."""
        found = cls._label_set(labels.dropna())
        if len(found) < 2:
            raise ValueError(f"label column {column!r} has one class only "
                             f"({sorted(found)}); a classifier needs two or more")
        return sorted(found, key=lambda v: (len(v), v) if v.isdigit() else (0, v))

    @classmethod
    def _label_set(cls, values: pd.Series) -> set[str]:
        return {str(v) for v in values}

    @property
    def n_outputs(self) -> int:
        """The head's outputs: one per class."""
        return len(self.classes)

    @property
    def has_classes(self) -> bool:
        """Whether outputs are classes (probabilities per class) rather than values."""
        return True

    @property
    def single_label(self) -> bool:
        """Whether each row has exactly one class (a confusion matrix makes sense)."""
        return False

    @property
    def several_labels(self) -> bool:
        """Whether a row may have any set of the classes (multilabel)."""
        return self.has_classes and not self.single_label

    def target(self, value: Any) -> Any:
        """The training target of one label value."""
        return self.index[str(value)]

    def chance(self, targets: Sequence[Any]) -> float | None:
        """The score of always guessing the most frequent class (None: no such line)."""
        return None

    def class_weights(self, targets: Sequence[Any]) -> torch.Tensor | None:
        """Loss weights against class imbalance ("balanced"), or None."""
        return None

    # -- training ----------------------------------------------------------------
    def loss(self, outputs: torch.Tensor, targets: torch.Tensor,
             class_weights: torch.Tensor | None = None) -> torch.Tensor:
        """The training loss of a batch."""
        raise NotImplementedError

    def step_metrics(self, outputs: torch.Tensor, targets: torch.Tensor
                     ) -> dict[str, torch.Tensor]:
        """Metrics logged per epoch beside the loss (e.g. accuracy)."""
        return {}

    # -- inference ---------------------------------------------------------------
    def proba(self, outputs: np.ndarray) -> np.ndarray:
        """Head outputs to probabilities (values for regression)."""
        raise NotImplementedError

    def outputs_for(self, proba: np.ndarray) -> np.ndarray:
        """Head outputs whose :meth:`proba` is ``proba`` (how a model that gives
        probabilities, an ensemble of scikit-learn heads, answers like a network)."""
        raise NotImplementedError

    def frame(self, outputs: np.ndarray, index: Sequence[Any], label: str) -> pd.DataFrame:
        """``predict_proba``'s table: a column per class (or the label's values)."""
        return pd.DataFrame(self.proba(outputs), columns=self.classes, index=index)

    def predictions(self, proba: pd.DataFrame, label: str) -> pd.Series:
        """``predict``'s answer from ``predict_proba``'s table."""
        return proba.idxmax(axis=1).rename(label)

    def metrics(self, y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
        """Every metric of this task on targets ``y_true`` and probabilities ``proba``."""
        raise NotImplementedError


def infer_problem_type(labels: pd.Series) -> str:
    """The problem type of a label column: numbers with more than 20 values that are not
    all whole -> regression, two values -> binary, else multiclass."""
    values = labels.dropna()
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all() and values.nunique() > 20 and \
            not np.allclose(numeric, numeric.round()):
        return "regression"
    return "binary" if values.nunique() == 2 else "multiclass"


def make_task(problem_type: str, classes: Sequence[Any] = ()) -> Task:
    """The task of ``problem_type`` for ``classes``.

    Raises:
        UnknownName: not a problem type (the message names the nearest).
    """
    return TASKS.get(problem_type)(classes)
