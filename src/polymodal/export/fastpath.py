"""The library's fast path: queries and indexing embed through onnxruntime when the
library's model has an export, made on first use, and through torch otherwise.

Where the export lives: the model folder's ``onnx/`` subfolder (for a builtin model,
beside it: ``~/.cache/polymodal/models/lit-tuxpaint-onnx``); where that folder cannot be
written, the library's own ``onnx/``. An export that is damaged or stale (the model
was saved again) is refused and made again. A tower with no ONNX form stays on torch,
and so does every tower if the export cannot be made at all.

A library runs the fp32 graphs: they give torch's vectors (to about 1e-6), so a library
indexed on torch before, or by another process on torch, stays one space with exactly
the scores it had. ``POLYMODAL_ONNX=int8`` runs the int8 graph of each tower whose export
kept one (its cosine to torch at least 0.99: faster, scores a little off);
``POLYMODAL_ONNX=0`` turns the fast path off.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.export.record import ExportInvalid

log = logging.getLogger(__name__)
#: the environment variable that turns the fast path off ("0") or to int8 ("int8")
ENV = "POLYMODAL_ONNX"
_OFF = ("0", "false", "no", "off")
#: per library object: its embedder (made once, under the library's loading lock)
_EMBEDDERS: weakref.WeakKeyDictionary[Any, Embedder] = weakref.WeakKeyDictionary()
_EXPORTING = threading.Lock()  # torch's exporter is not safe to run twice at once


def onnx_setting() -> str | None:
    """None when ``POLYMODAL_ONNX`` turns the fast path off, else the precision to run:
    "fp32" (the default), or "kept" for ``int8`` (int8 where the export kept it)."""
    value = os.environ.get(ENV, "1").strip().lower()
    if value in _OFF:
        return None
    return "kept" if value == "int8" else "fp32"


def export_folders(lib: Any) -> list[Path]:
    """Where ``lib``'s model's export is looked for and made, in order: beside or in
    the model's folder, then in the library's folder."""
    from polymodal.library.builtin import BUILTIN, PREFIX, models_home

    model = Path(lib.config["model"])
    builtin = str(lib.config.get("model_name") or "").startswith(PREFIX) or (
        model.parent == models_home().resolve() and
        model.name.removesuffix("-quick") in BUILTIN)
    primary = model.with_name(f"{model.name}-onnx") if builtin else model / "onnx"
    return [primary, lib.folder / "onnx"]


class Embedder:
    """``embed_values`` through onnxruntime for the towers the export holds, through
    the torch model for the others (and for any call the graph cannot take)."""

    def __init__(self, model: Any, towers: Any, precision: str | None) -> None:
        self.model, self.towers, self.precision = model, towers, precision
        self._warned: set[str] = set()

    def uses_onnx(self, column: str) -> bool:
        return self.towers is not None and self.towers.has(column)

    def embed_values(self, column: str, values: Sequence[Any]) -> np.ndarray:
        if self.uses_onnx(column):
            try:
                return self.towers.embed_values(column, values)
            except Exception as exc:  # a value this graph cannot take: torch gives it
                if column not in self._warned:
                    self._warned.add(column)
                    log.warning("onnxruntime could not embed %s (%s: %s); torch did",
                                column, type(exc).__name__, exc)
        return self.model.embed_values(column, values)


def _writable(folder: Path) -> bool:
    """Whether an export can be made at ``folder`` (its parent can be written)."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder.parent, os.W_OK) and (
        not folder.exists() or os.access(folder, os.W_OK))


def open_or_make(lib: Any, precision: str) -> Any:
    """``lib``'s model's export on onnxruntime (a valid one found, else made); None
    where none can be had (onnxruntime missing, no writable place, the export fails)."""
    try:
        from polymodal.export.runtime import OnnxTowers
    except ImportError:
        return None
    model_folder = Path(lib.config["model"])
    folders = export_folders(lib)

    def opened(folder: Path) -> Any:
        return OnnxTowers(folder, model=lib.model, model_folder=model_folder,
                          precision=precision)

    for folder in folders:
        if folder.exists():
            try:
                return opened(folder)
            except ExportInvalid as exc:
                log.info("%s; exporting again", exc)
    for folder in folders:
        if not _writable(folder):
            continue
        try:
            from polymodal.export.exporter import export_lock, make_export

            with _EXPORTING, export_lock(folder):
                try:  # another process may have made it while this one waited
                    return opened(folder)
                except ExportInvalid:
                    pass
                report = make_export(model_folder, folder, loaded=lib.model)
                log.info("exported %s to ONNX in %s (%.1f s; on torch: %s)",
                         model_folder, folder, report.seconds, report.on_torch or "none")
            return opened(folder)
        except PermissionError:
            continue
        except Exception as exc:  # the library still works, on torch
            log.warning("no ONNX export of %s (%s: %s); embedding on torch",
                        model_folder, type(exc).__name__, exc)
            return None
    return None


def embedder(lib: Any) -> Any:
    """What embeds ``lib``'s values: an :class:`Embedder` on the model's export, or the
    torch model itself when the fast path is off."""
    precision = onnx_setting()
    if precision is None:
        return lib.model
    with lib._loading:
        found = _EMBEDDERS.get(lib)
        if found is None or found.precision != precision or found.model is not lib.model:
            found = Embedder(lib.model, open_or_make(lib, precision), precision)
            _EMBEDDERS[lib] = found
        return found
