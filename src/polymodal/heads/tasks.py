"""The four supervised tasks: multiclass and binary classification, multi-label
classification and regression (each registered in :data:`~polymodal.heads.task.TASKS`)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from polymodal.heads.task import TASKS, Task


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def _majority(targets: Sequence[Any]) -> float | None:
    if not len(targets):
        return None
    counts = np.unique(np.asarray([int(t) for t in targets]), return_counts=True)[1]
    return float(counts.max() / counts.sum())


def _classification_metrics(y_true: np.ndarray, proba: np.ndarray, n_classes: int
                            ) -> dict[str, float]:
    from sklearn import metrics

    pred = proba.argmax(axis=1)
    out = {"accuracy": float(metrics.accuracy_score(y_true, pred)),
           "macro_f1": float(metrics.f1_score(y_true, pred, average="macro", zero_division=0))}
    labels = list(range(n_classes))
    try:
        if n_classes == 2:
            out["roc_auc"] = float(metrics.roc_auc_score(y_true, proba[:, 1]))
        else:
            out["roc_auc"] = float(metrics.roc_auc_score(y_true, proba, multi_class="ovr",
                                                         labels=labels))
        out["log_loss"] = float(metrics.log_loss(y_true, proba, labels=labels))
    except ValueError:  # a class absent from this set
        pass
    return out


@TASKS.register("multiclass")
class MulticlassTask(Task):
    """One class of several: softmax cross-entropy; accuracy, macro-F1, ROC-AUC, log
    loss."""

    name = "multiclass"
    main_metric = "accuracy"

    @property
    def single_label(self) -> bool:
        return True

    def chance(self, targets: Sequence[Any]) -> float | None:
        return _majority(targets)

    def class_weights(self, targets: Sequence[Any]) -> torch.Tensor | None:
        counts = np.bincount(np.asarray(targets, dtype=int),
                             minlength=len(self.classes)).astype(float)
        return torch.tensor(counts.sum() / (len(counts) * np.maximum(counts, 1)),
                            dtype=torch.float32)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor,
             class_weights: torch.Tensor | None = None) -> torch.Tensor:
        return nn.functional.cross_entropy(outputs, targets, weight=class_weights)

    def step_metrics(self, outputs: torch.Tensor, targets: torch.Tensor
                     ) -> dict[str, torch.Tensor]:
        return {"accuracy": (outputs.argmax(dim=-1) == targets).float().mean()}

    def proba(self, outputs: np.ndarray) -> np.ndarray:
        e = np.exp(outputs - outputs.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def outputs_for(self, proba: np.ndarray) -> np.ndarray:
        return np.log(np.clip(proba, 1e-12, None))

    def metrics(self, y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
        return _classification_metrics(y_true, proba, len(self.classes))


@TASKS.register("binary")
class BinaryTask(MulticlassTask):
    """One of two classes: one logit, binary cross-entropy (the positive class is the
    second)."""

    name = "binary"

    @property
    def n_outputs(self) -> int:
        return 1

    def class_weights(self, targets: Sequence[Any]) -> torch.Tensor | None:
        counts = np.bincount(np.asarray(targets, dtype=int), minlength=2).astype(float)
        return torch.tensor([counts[0] / max(counts[1], 1.0)], dtype=torch.float32)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor,
             class_weights: torch.Tensor | None = None) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(
            outputs.squeeze(-1), targets.float(), pos_weight=class_weights)

    def step_metrics(self, outputs: torch.Tensor, targets: torch.Tensor
                     ) -> dict[str, torch.Tensor]:
        return {}

    def proba(self, outputs: np.ndarray) -> np.ndarray:
        p = 1 / (1 + np.exp(-outputs[:, 0]))
        return np.stack([1 - p, p], axis=1)

    def outputs_for(self, proba: np.ndarray) -> np.ndarray:
        return _logit(proba[:, 1:2])


@TASKS.register("multilabel")
class MultilabelTask(Task):
    """Any set of classes per row (a list, or labels joined by "|"): one logit per
    class, binary cross-entropy; subset accuracy, macro-F1, ROC-AUC."""

    name = "multilabel"
    main_metric = "macro_f1"
    label_type = None  # lists are what it takes

    @classmethod
    def _label_set(cls, values: pd.Series) -> set[str]:
        return {str(x).strip() for v in values for x in
                (v if isinstance(v, list) else str(v).split("|"))}

    def target(self, value: Any) -> torch.Tensor:
        labels = value if isinstance(value, list | tuple) else str(value).split("|")
        vec = torch.zeros(len(self.classes))
        for lab in labels:
            vec[self.index[str(lab).strip()]] = 1.0
        return vec

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor,
             class_weights: torch.Tensor | None = None) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(outputs, targets.float(),
                                                              pos_weight=class_weights)

    def proba(self, outputs: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-outputs))

    def outputs_for(self, proba: np.ndarray) -> np.ndarray:
        return _logit(proba)

    def predictions(self, proba: pd.DataFrame, label: str) -> pd.Series:
        return proba.apply(lambda r: "|".join(c for c in proba.columns if r[c] >= 0.5),
                           axis=1).rename(label)

    def metrics(self, y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
        from sklearn import metrics

        pred = (proba >= 0.5).astype(int)
        out = {"subset_accuracy": float(metrics.accuracy_score(y_true, pred)),
               "macro_f1": float(metrics.f1_score(y_true, pred, average="macro",
                                                  zero_division=0))}
        with contextlib.suppress(ValueError):
            out["roc_auc"] = float(metrics.roc_auc_score(y_true, proba, average="macro"))
        return out


@TASKS.register("regression")
class RegressionTask(Task):
    """A number per row: one output, mean squared error; RMSE, MAE, R2."""

    name = "regression"
    main_metric = "rmse"
    lower_is_better = True
    label_type = "numeric"

    @classmethod
    def classes_from(cls, labels: pd.Series, column: str) -> list[Any]:
        return []

    @property
    def n_outputs(self) -> int:
        return 1

    @property
    def has_classes(self) -> bool:
        return False

    def target(self, value: Any) -> float:
        return float(value)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor,
             class_weights: torch.Tensor | None = None) -> torch.Tensor:
        return nn.functional.mse_loss(outputs.squeeze(-1), targets.float())

    def proba(self, outputs: np.ndarray) -> np.ndarray:
        return outputs

    def outputs_for(self, proba: np.ndarray) -> np.ndarray:
        return proba

    def frame(self, outputs: np.ndarray, index: Sequence[Any], label: str) -> pd.DataFrame:
        return pd.DataFrame({label: outputs[:, 0]}, index=index)

    def predictions(self, proba: pd.DataFrame, label: str) -> pd.Series:
        return proba[label]

    def metrics(self, y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
        from sklearn import metrics

        pred = proba[:, 0]
        return {"rmse": float(np.sqrt(metrics.mean_squared_error(y_true, pred))),
                "mae": float(metrics.mean_absolute_error(y_true, pred)),
                "r2": float(metrics.r2_score(y_true, pred))}
