"""The recipes the ``auto`` fit tries, cheapest first, and how each is fitted."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from polymodal.auto.features import TFIDF
from polymodal.auto.heads import fit_head, head_proba, make_head
from polymodal.auto.model import CandidateSpec
from polymodal.registry import Registry

#: every candidate recipe by name
CANDIDATES: Registry[CandidateSpec] = Registry("candidate")


def _add(name: str, features: tuple[str, ...], head: str, description: str) -> None:
    CANDIDATES.add(name, CandidateSpec(name, features, head, description))


_add("handcrafted-linear", ("handcrafted",), "linear",
     "colour statistics / TF-IDF / MFCC statistics + logistic regression (ridge)")
_add("pretrained-linear", ("pretrained",), "linear",
     "frozen pretrained towers (EfficientNet-Lite0, MiniLM, Whisper) + logistic "
     "regression (ridge)")
_add("pretrained+handcrafted-linear", ("pretrained", "handcrafted"), "linear",
     "both feature sets side by side + logistic regression (ridge)")
_add("pretrained-mlp", ("pretrained",), "mlp",
     "frozen pretrained towers + an MLP (256 units, early stopping)")
_add("pretrained-gbt", ("pretrained",), "gbt",
     "frozen pretrained towers, PCA + gradient-boosted trees (scikit-learn)")
_add("fusion-network", ("pretrained",), "network",
     "frozen pretrained towers (cached) + the fusion network and head, trained by the "
     "estimator core")
_add("scratch-network", (), "network",
     "the 'fast' preset's towers (small CNNs, word vectors) trained end to end with "
     "the fusion (slow on a CPU; not tried unless named)")

#: what ``Predictor(preset="auto")`` tries when ``candidates`` is not given
DEFAULT_CANDIDATES = ("handcrafted-linear", "pretrained-linear",
                      "pretrained+handcrafted-linear", "pretrained-mlp", "pretrained-gbt",
                      "fusion-network")


def candidate_specs(names: list[str] | None) -> list[CandidateSpec]:
    """The specs of ``names`` (default :data:`DEFAULT_CANDIDATES`), in that order.

    Raises:
        UnknownName: a name that is no candidate (with the nearest).
    """
    return [CANDIDATES.get(n) for n in (names or DEFAULT_CANDIDATES)]


def fit_sklearn(spec: CandidateSpec, task: Any, x_train: Any, y_train: np.ndarray,
                x_val: Any, *, seed: int, balanced: bool) -> tuple[Any, np.ndarray, float]:
    """A scikit-learn candidate fitted on the training rows: the model, its
    probabilities on the validation rows and its fit seconds."""
    import scipy.sparse as sp

    start = time.perf_counter()
    head = make_head(spec.head, task, seed=seed, sparse=sp.issparse(x_train),
                     balanced=balanced, n_rows=x_train.shape[0])
    fit_head(head, x_train, y_train, task)
    seconds = time.perf_counter() - start
    if not x_val.shape[0]:
        return head, np.zeros((0, max(len(task.classes), 1))), seconds
    return head, head_proba(head, x_val, task), seconds


def network_encoders(extractors: dict[str, Any], columns: list[str]) -> dict[str, str]:
    """The fusion network's towers: each column's pretrained extractor (a frozen
    tower the feature cache already holds), by column."""
    return {c: extractors[c].name for c in columns if extractors[c].name != TFIDF}
