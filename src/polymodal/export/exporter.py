"""Export a saved model's towers to ONNX, each checked against torch on real inputs.

For a Pretrainer, a tower is its encoder's forward pass and its embedding head (the
L2-normalised vector ``Pretrainer.embed_values`` gives) as one graph; for a Predictor,
its encoder and projection (the pooled vector each column brings to the fusion; the
fusion and the task head stay in torch). A graph takes the *collated* tensors the
encoder's ``forward`` takes: ``inputs`` (token ids, pixels, waveforms or features) and,
for inputs of varying length, ``lengths``; preprocessing stays the encoder's Python.

The TorchScript exporter (``torch.onnx.export(dynamo=False)``) writes each graph with a
dynamic batch axis (and a dynamic last axis for varying lengths). Each graph is then
run on ONNX Runtime against torch on check values held out from the trace: kept where
the smallest cosine is at least :data:`FP32_MIN_COSINE`. An int8 copy
(``quantize_dynamic``, per channel, MatMul and Gemm only: quantised convolutions lost
too much on EfficientNet-Lite0) is kept only where its cosine is at least
:data:`INT8_MIN_COSINE`. A tower that cannot be exported, or whose graph disagrees,
is named with the reason and stays on torch; the others export.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polymodal.export.record import (
    EXPORT_JSON,
    FP32_MIN_COSINE,
    INT8_MIN_COSINE,
    ExportReport,
    TowerReport,
    model_identity,
    write_record,
)
from polymodal.export.runtime import collate_arrays
from polymodal.export.samples import check_values_for
from polymodal.export.tracing import (
    EmbeddingTower,
    ProjectionTower,
    quantize,
    quiet,
    traceable,
    without_extra_state,
)
from polymodal.fusion.base import module_key

log = logging.getLogger(__name__)
OPSET = 17


class Disagrees(RuntimeError):
    """A graph whose outputs differ from torch's beyond the tolerance."""


def is_predictor(est: Any) -> bool:
    return getattr(est, "kind", None) == "predictor"


@torch.no_grad()
def torch_embed(est: Any, column: str, values: Sequence[Any]) -> np.ndarray:
    """What torch gives for ``values`` of ``column``: ``embed_values`` for a
    Pretrainer, the projected pooled tower for a Predictor."""
    if not is_predictor(est):
        return np.asarray(est.embed_values(column, list(values)), dtype=np.float32)
    est.model_.eval()
    encoded = est.model_.encoder(column).encode(list(values))
    out = est.model_.projections[module_key(column)](encoded).pooled
    return out.float().cpu().numpy()


def agreement(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    """(largest absolute difference, smallest row cosine) between two (N, d) arrays;
    (inf, -1) where either holds a NaN or their shapes differ."""
    if got.shape != want.shape or not (np.isfinite(got).all() and np.isfinite(want).all()):
        return float("inf"), -1.0
    norms = np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1)
    cos = (got * want).sum(axis=1) / np.maximum(norms, 1e-12)
    return float(np.abs(got - want).max()), float(cos.min())


def _load(model_or_path: Any, loaded: Any) -> tuple[Any, Path | None]:
    """(the estimator, its folder or None)."""
    if hasattr(model_or_path, "model_") and hasattr(model_or_path, "columns_"):
        return model_or_path, None
    from polymodal.library.builtin import resolve_model

    folder = resolve_model(model_or_path).resolve()
    if loaded is not None:
        return loaded, folder
    import yaml

    config = folder / "config.yaml"
    if not config.is_file():
        raise FileNotFoundError(f"{folder}: not a saved model (no config.yaml)")
    kind = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("kind")
    if kind == "predictor":
        from polymodal.predictor import Predictor

        return Predictor.load(folder), folder
    from polymodal.pretraining import Pretrainer

    return Pretrainer.load(folder), folder


def _file_stem(index: int, column: str) -> str:
    return f"{index:02d}-{re.sub(r'[^A-Za-z0-9_-]+', '_', column)[:40]}"


def _session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # a graph that fails is reported, not logged here
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run(session: Any, batch: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    names = [i.name for i in session.get_inputs()]
    feed = {names[0]: batch}
    if len(names) > 1:
        feed[names[1]] = lengths
    return np.asarray(session.run(None, feed)[0], dtype=np.float32)


def export_tower(est: Any, column: str, index: int, folder: Path, values: list[Any], *,
                 int8: bool | str = "auto", int8_min_cosine: float = INT8_MIN_COSINE,
                 opset: int = OPSET) -> TowerReport:
    """Export one tower into ``folder`` and check it (see the module's notes).

    Raises:
        Exception: the export failed (the message says why), or :class:`Disagrees`.
    """
    enc = est.model_.encoder(column)
    after = est.model_.projections[module_key(column)] if is_predictor(est) else \
        est.model_.heads[module_key(column)]
    wrapper = (ProjectionTower if is_predictor(est) else EmbeddingTower)(enc, after).eval()
    feats = [enc.preprocess(v) for v in values]
    arrays = [np.asarray(f) for f in feats]
    if any(a.dtype.kind in "OUS" for a in arrays):
        raise TypeError(f"its encoder ({type(enc).__name__}) gives no tensors to a graph")
    variable = len({a.shape for a in arrays}) > 1 or arrays[0].dtype.kind in "iu"
    if variable:  # trace the shortest and the longest together: the padded path
        sizes = [a.shape[-1] if a.ndim else 1 for a in arrays]
        traced = [int(np.argmin(sizes)), int(np.argmax(sizes))]
        if traced[0] == traced[1]:
            traced[1] = (traced[0] + 1) % len(arrays)
    else:
        traced = [0, 1]
    held = [i for i in range(len(values)) if i not in traced]
    batch, lengths = collate_arrays([feats[i] for i in traced], variable)
    if variable and lengths is not None and bool((lengths == batch.shape[-1]).all()):
        # nothing padded: pad one position, or a model that skips its mask when every
        # position is real (transformers does) would trace without it
        batch = np.pad(batch, [(0, 0)] * (batch.ndim - 1) + [(0, 1)])
    device = next(iter(wrapper.parameters()), torch.empty(0)).device
    args: tuple[torch.Tensor, ...] = (torch.from_numpy(batch).to(device),)
    names, axes = ["inputs"], {"inputs": {0: "batch"}, "embedding": {0: "batch"}}
    if variable:
        args += (torch.from_numpy(lengths).to(device),)  # type: ignore[arg-type]
        names.append("lengths")
        axes["inputs"][batch.ndim - 1] = "length"
        axes["lengths"] = {0: "batch"}
    stem = _file_stem(index, column)
    fp32 = folder / f"{stem}.onnx"
    with quiet(), torch.no_grad(), without_extra_state(wrapper), traceable():
        torch.onnx.export(wrapper, args, str(fp32), dynamo=False, opset_version=opset,
                          input_names=names, output_names=["embedding"],
                          dynamic_axes=axes, do_constant_folding=True)
    est.model_.eval()
    want = torch_embed(est, column, [values[i] for i in held])
    check, check_lengths = collate_arrays([feats[i] for i in held], variable)
    try:
        max_abs, cosine = agreement(_run(_session(fp32), check, check_lengths), want)
    except Exception as exc:  # a shape the trace fixed, an operator onnxruntime lacks
        raise Disagrees(f"its ONNX graph does not run on other batches than the one "
                        f"traced ({type(exc).__name__}: {str(exc)[:160]})") from None
    if cosine < FP32_MIN_COSINE:
        raise Disagrees(f"its ONNX graph disagrees with torch (smallest cosine "
                        f"{cosine:.4f} < {FP32_MIN_COSINE}, max abs diff {max_abs:.2e})")
    report = TowerReport(column=column, modality=enc.modality,
                         encoder=est.encoder_specs_[column][0], kept="fp32",
                         inputs=names, fp32_file=fp32.name, fp32_max_abs=max_abs,
                         fp32_cosine=cosine, checked_on=len(held))
    if int8 is False:
        report.int8_note = "int8 not asked for"
        return report
    q = folder / f"{stem}.int8.onnx"
    try:
        quantize(fp32, q)
        report.int8_max_abs, report.int8_cosine = agreement(
            _run(_session(q), check, check_lengths), want)
    except Exception as exc:
        q.unlink(missing_ok=True)
        report.int8_note = f"int8 failed: {type(exc).__name__}: {str(exc)[:160]}"
        return report
    if report.int8_cosine >= int8_min_cosine or int8 is True:
        report.kept, report.int8_file = "int8", q.name
        if report.int8_cosine < int8_min_cosine:
            report.int8_note = (f"int8 kept as asked, though its cosine "
                                f"{report.int8_cosine:.4f} < {int8_min_cosine}")
    else:
        q.unlink()
        report.int8_note = (f"int8 cosine {report.int8_cosine:.4f} < {int8_min_cosine}: "
                            "fp32 kept")
    return report


def _sweep(out: Path) -> None:
    """Remove what exports into ``out`` killed before they finished left beside it
    (``.NAME.PID.partial`` and ``.NAME.PID.old`` of processes that are gone)."""
    for leftover in out.parent.glob(f".{out.name}.*.*"):
        pid = leftover.name[len(out.name) + 2:].split(".")[0]
        if leftover.suffix not in (".partial", ".old") or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            pass  # alive, or not ours to ask about


def _install(tmp: Path, out: Path) -> None:
    """Put the finished export ``tmp`` in place of ``out`` (renames: a reader sees
    the old export or the new one)."""
    if out.exists():
        old = out.with_name(f".{out.name}.{os.getpid()}.old")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def make_export(model_or_path: Any, out_dir: str | os.PathLike[str], *,
                check_values: Mapping[str, Sequence[Any]] | None = None,
                int8: bool | str = "auto", loaded: Any = None,
                int8_min_cosine: float = INT8_MIN_COSINE, opset: int = OPSET
                ) -> ExportReport:
    """:func:`export_towers` without its lock (the caller holds it)."""
    from polymodal import __version__

    if int8 not in (True, False, "auto"):
        raise ValueError(f"int8 must be 'auto', True or False, got {int8!r}")
    start = time.perf_counter()
    est, model_folder = _load(model_or_path, loaded)
    est._check_fitted()
    out = Path(out_dir).expanduser().absolute()
    if out.exists() and any(out.iterdir()) and not (out / EXPORT_JSON).exists():
        raise ValueError(f"{out}: a folder that holds other files and no export; give a "
                         "new or empty folder (an export replaces its folder's contents)")
    out.parent.mkdir(parents=True, exist_ok=True)
    _sweep(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        report = ExportReport(
            folder=tmp, model=str(model_folder or ""), kind=est.kind,
            identity=model_identity(model_folder) if model_folder else "",
            output="projection" if is_predictor(est) else "embedding",
            dim=int(est.dim_), polymodal=__version__, opset=opset)
        for index, column in enumerate(est.columns_):
            modality = est.model_.encoder(column).modality
            try:
                values = check_values_for(column, modality, check_values)
                report.towers[column] = export_tower(
                    est, column, index, tmp, values, int8=int8,
                    int8_min_cosine=int8_min_cosine, opset=opset)
            except Exception as exc:  # this tower stays on torch; the others go on
                why = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
                report.on_torch[column] = f"{type(exc).__name__}: {why}" if not \
                    isinstance(exc, Disagrees) else why
                log.info("tower %s left on torch: %s", column, report.on_torch[column])
                for leftover in tmp.glob(f"{_file_stem(index, column)}.*"):
                    leftover.unlink()
        report.seconds = round(time.perf_counter() - start, 2)
        write_record(report)
        _install(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report.folder = out
    return report


def export_lock(out_dir: str | os.PathLike[str]) -> Any:
    """The file lock that one export into ``out_dir`` holds at a time (beside it)."""
    from filelock import FileLock

    out = Path(out_dir).expanduser().absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(out.with_name(f".{out.name}.lock")))


def export_towers(model_or_path: Any, out_dir: str | os.PathLike[str], *,
                  check_values: Mapping[str, Sequence[Any]] | None = None,
                  int8: bool | str = "auto", loaded: Any = None,
                  int8_min_cosine: float = INT8_MIN_COSINE) -> ExportReport:
    """Export each tower of a saved model to ONNX in ``out_dir``, checked against torch.

    Args:
        model_or_path: a saved Pretrainer or Predictor (folder), a builtin name
            (``builtin:lit-tuxpaint``), or a fitted estimator (an unsaved one cannot
            tell later when its export goes stale).
        out_dir: the export folder (made, or replaced if it holds an export).
        check_values: per column or modality, decoded values to check on (strings,
            PIL images, 16 kHz arrays; at least 3); default: tuxpaint-like ones made
            here (:mod:`polymodal.export.samples`).
        int8: "auto" keeps an int8 graph where it agrees with torch (cosine at least
            ``int8_min_cosine`` on the held-out values); True keeps it regardless;
            False makes none.
        loaded: the estimator already loaded from ``model_or_path`` (saves a load).

    Returns:
        The :class:`ExportReport`, also written as ``export.json`` in ``out_dir``.
    """
    with export_lock(out_dir):
        return make_export(model_or_path, out_dir, check_values=check_values, int8=int8,
                           loaded=loaded, int8_min_cosine=int8_min_cosine)
