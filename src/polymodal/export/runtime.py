"""Run an export on ONNX Runtime: :class:`OnnxTowers` gives the embeddings
``Pretrainer.embed_values`` gives, from the ``.onnx`` graphs of an export folder.

This module imports numpy and onnxruntime only. The graphs take *collated* tensors;
turning a decoded value into them (tokenising a caption, resizing a picture, cutting a
sound) is the encoder's own ``preprocess``, reused as it is, so the export's results
are the model's. Those preprocess functions live on the model's encoders, which are
built from the saved model and need torch (the tokenizer and the resize return torch
tensors): pass the model you have (``OnnxTowers(folder, model=pre)``), or it is loaded
from the folder the export records on the first ``embed_values``. What onnxruntime
replaces is the forward pass, where the time goes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.export.record import ExportInvalid, ExportReport, read_record

#: ONNX tensor types -> numpy dtypes, for the inputs a graph declares
_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
           "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_,
           "tensor(float16)": np.float16, "tensor(uint8)": np.uint8}


def collate_arrays(features: Sequence[Any], variable: bool
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """Stack preprocessed features as :func:`polymodal.data.dataset.collate_column`
    does, in numpy: zeros where a value is None; if ``variable``, padded on the last
    dimension with each row's true length (the length of every row when none is
    padded), else one shape for all.

    Raises:
        TypeError: features that are not arrays (strings: a tower with no tensor input).
        ValueError: shapes that cannot be batched.
    """
    given = [None if f is None else np.asarray(f) for f in features]
    present = [a for a in given if a is not None]
    if not present:
        raise ValueError("no value to embed")
    if any(a.dtype.kind in "OUS" for a in present):
        raise TypeError("these features are not tensors (strings or objects); the tower "
                        "has no ONNX form")
    ref = present[0]
    shapes = {a.shape for a in present}
    if not variable:
        if len(shapes) != 1:
            raise ValueError(f"cannot batch features of shapes {sorted(shapes)} for a "
                             "fixed-size graph")
        out = np.zeros((len(given), *ref.shape), dtype=ref.dtype)
        for i, a in enumerate(given):
            if a is not None:
                out[i] = a
        return out, None
    if len({s[:-1] for s in shapes}) != 1:
        raise ValueError(f"cannot batch features of shapes {sorted(shapes)}: only the "
                         "last dimension may vary")
    width = max(s[-1] for s in shapes)
    out = np.zeros((len(given), *ref.shape[:-1], width), dtype=ref.dtype)
    # collate_column gives no lengths (every position real) when nothing is padded
    lengths = np.full(len(given), width if len(shapes) == 1 else 0, dtype=np.int64)
    for i, a in enumerate(given):
        if a is not None:
            out[i, ..., : a.shape[-1]] = a
            lengths[i] = a.shape[-1]
    return out, lengths


def load_model(report: ExportReport) -> Any:
    """The saved model an export was made from (for its encoders' preprocess; this
    imports torch)."""
    if not report.model or not (Path(report.model) / "config.yaml").exists():
        raise ExportInvalid(f"{report.folder}: made from a model that was never saved or "
                            f"is gone ({report.model or 'unsaved'}); pass model=")
    if report.kind == "predictor":
        from polymodal.predictor import Predictor

        return Predictor.load(report.model)
    from polymodal.pretraining import Pretrainer

    return Pretrainer.load(report.model)


class OnnxTowers:
    """The towers of an export folder on ONNX Runtime.

    Args:
        folder: an export folder (``export.json`` and the ``.onnx`` graphs).
        model: the model the export was made from, for its encoders' preprocess
            (default: loaded from the folder the export records, on first use).
        model_folder: the model folder the export must match as it is now (a changed
            model makes the export stale); default: the recorded folder, if it exists.
        threads: ONNX Runtime's ``intra_op_num_threads`` (default: its own, one per
            core).
        precision: "kept" (what the export chose per tower: int8 where it agreed with
            torch, else fp32), "fp32", or "int8" (refused for a tower without one).
        verify: check each graph against the SHA-256 its record holds.

    Raises:
        ExportInvalid: a missing, damaged or stale export (export again).
        ImportError: onnxruntime is not installed.
    """

    def __init__(self, folder: str | os.PathLike[str], *, model: Any = None,
                 model_folder: str | os.PathLike[str] | None = None,
                 threads: int | None = None, precision: str = "kept",
                 verify: bool = True) -> None:
        import onnxruntime as ort

        if precision not in ("kept", "fp32", "int8"):
            raise ValueError(f"precision must be 'kept', 'fp32' or 'int8', got {precision!r}")
        self.folder = Path(folder)
        self.report = read_record(self.folder, model_folder=model_folder, verify=verify)
        self.precision, self.threads = precision, threads
        self._model = model
        self._lock = threading.Lock()
        self._preprocess: dict[str, Callable[[Any], Any]] = {}
        self.sessions: dict[str, Any] = {}
        options = ort.SessionOptions()
        options.log_severity_level = 4  # failures come back as exceptions, said once
        if threads is not None:
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        for column, tower in self.report.towers.items():
            path = self.folder / tower.file(precision)
            try:
                self.sessions[column] = ort.InferenceSession(
                    str(path), options, providers=["CPUExecutionProvider"])
            except Exception as exc:  # checksum right, graph unloadable: refuse it too
                raise ExportInvalid(f"{path}: onnxruntime cannot load it ({type(exc).__name__}"
                                    f": {str(exc)[:200]})") from None
        self._inputs = {c: [(i.name, _DTYPES.get(i.type, np.float32)) for i in s.get_inputs()]
                        for c, s in self.sessions.items()}

    # -- what it holds ----------------------------------------------------------------
    @property
    def columns(self) -> list[str]:
        """The columns that run on ONNX Runtime."""
        return sorted(self.sessions)

    @property
    def on_torch(self) -> dict[str, str]:
        """The model's other columns, with why each stays on torch."""
        return dict(self.report.on_torch)

    @property
    def dim(self) -> int:
        return self.report.dim

    def has(self, column: str) -> bool:
        """Whether ``column``'s tower runs here."""
        return column in self.sessions

    def kept(self, column: str) -> str:
        """The precision ``column`` runs in ("fp32" or "int8")."""
        tower = self.report.towers[column]
        return tower.kept if self.precision == "kept" else self.precision

    # -- running ----------------------------------------------------------------------
    @property
    def model(self) -> Any:
        """The model whose encoders preprocess the values (loaded on first use)."""
        with self._lock:
            if self._model is None:
                self._model = load_model(self.report)
            return self._model

    def preprocess(self, column: str) -> Callable[[Any], Any]:
        """``column``'s encoder's ``preprocess``: a decoded value to the features the
        graph takes."""
        if column not in self._preprocess:
            self._preprocess[column] = self.model.model_.encoder(column).preprocess
        return self._preprocess[column]

    def _session(self, column: str) -> Any:
        if column not in self.sessions:
            why = self.report.on_torch.get(column, "not a column of the model")
            raise KeyError(f"column {column!r} has no ONNX graph here ({why})")
        return self.sessions[column]

    def run(self, column: str, features: Sequence[Any]) -> np.ndarray:
        """(N, dim) outputs of ``column``'s graph for preprocessed ``features``."""
        session = self._session(column)
        inputs = self._inputs[column]
        batch, lengths = collate_arrays(features, variable=len(inputs) > 1)
        feed = {inputs[0][0]: batch.astype(inputs[0][1], copy=False)}
        if len(inputs) > 1:
            feed[inputs[1][0]] = np.asarray(lengths).astype(inputs[1][1], copy=False)
        return np.asarray(session.run(None, feed)[0], dtype=np.float32)

    def embed_values(self, column: str, values: Sequence[Any], batch_size: int = 256
                     ) -> np.ndarray:
        """(N, dim) embeddings of decoded values of ``column``'s modality (strings,
        PIL images, 16 kHz arrays), as ``Pretrainer.embed_values`` gives them (for a
        Predictor's export: each column's projected tower, before fusion)."""
        self._session(column)
        pre = self.preprocess(column)
        parts = [self.run(column, [None if v is None else pre(v)
                                   for v in values[start: start + batch_size]])
                 for start in range(0, len(values), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)
