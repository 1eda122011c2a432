"""What an export folder says about itself: ``export.json`` beside the ``.onnx`` files.

The record names the model the graphs were made from (its folder and the SHA-256 of its
``config.yaml``, which itself holds the SHA-256 of the weights), the polymodal version
that made them, and per tower: its inputs, the graph files with their SHA-256, and how
closely each graph agreed with torch on real inputs. A folder whose record is missing or
unreadable, whose files differ from the checksums recorded (truncated, changed, half
written), or whose model has changed since (a stale export) is refused with
:class:`ExportInvalid`, never run in part. Nothing here imports torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from polymodal.data.errors import PolymodalError
from polymodal.files import sha256_file

#: the record's file name inside an export folder
EXPORT_JSON = "export.json"
#: the record format this version writes and reads
FORMAT = 1
#: a graph is kept only where its embeddings agree with torch's at least this well
#: (the smallest cosine over the check values)
FP32_MIN_COSINE = 0.999
#: an int8 graph is kept only at or above this cosine to torch on the held-out values
INT8_MIN_COSINE = 0.99


class ExportInvalid(PolymodalError, ValueError):
    """An export folder that cannot be used: missing, damaged or stale (made from
    another version of the model). Export again (the library does so by itself)."""


def model_identity(model_folder: str | os.PathLike[str]) -> str:
    """A saved model's identity: the SHA-256 of its ``config.yaml`` (which records the
    SHA-256 of its weights and state, so any re-save changes it)."""
    return sha256_file(Path(model_folder) / "config.yaml")


@dataclass
class TowerReport:
    """How one tower was exported and how closely ONNX Runtime agrees with torch.

    Attributes:
        column: the model's column.
        modality: "text", "image" or "audio".
        encoder: the encoder's registered name.
        kept: "fp32" or "int8": the graph used when the export is loaded.
        inputs: the graph's input names ("inputs", and "lengths" for variable length).
        fp32_file, int8_file: graph file names in the folder (int8: "" if not made).
        fp32_max_abs, fp32_cosine: largest absolute difference and smallest cosine
            between the fp32 graph's embeddings and torch's on the check values.
        int8_max_abs, int8_cosine: the same for the int8 graph (None if not made).
        int8_note: why int8 was not kept, or "".
        checked_on: how many check values each number is over.
    """

    column: str
    modality: str
    encoder: str
    kept: str
    inputs: list[str]
    fp32_file: str
    fp32_max_abs: float
    fp32_cosine: float
    int8_file: str = ""
    int8_max_abs: float | None = None
    int8_cosine: float | None = None
    int8_note: str = ""
    checked_on: int = 0
    sha256: dict[str, str] = field(default_factory=dict)

    def file(self, precision: str = "kept") -> str:
        """The graph file for ``precision`` ("kept", "fp32" or "int8")."""
        precision = self.kept if precision == "kept" else precision
        if precision == "int8" and not self.int8_file:
            raise ExportInvalid(f"tower {self.column!r} has no int8 graph "
                                f"({self.int8_note or 'not made'})")
        return self.int8_file if precision == "int8" else self.fp32_file


@dataclass
class ExportReport:
    """An export: where it is, what it was made from, each tower's numbers, and the
    towers left on torch with the reason (no ONNX form, or a graph that disagreed).

    Attributes:
        folder: the export folder (holding ``export.json`` and the ``.onnx`` files).
        model: the model folder it was made from ("" for a model never saved).
        kind: the model's kind ("contrastive-pretraining" or "predictor").
        identity: :func:`model_identity` of the model folder ("" if unsaved).
        output: what a graph gives: "embedding" (a Pretrainer's normalised vector) or
            "projection" (a Predictor's projected tower, before fusion).
        dim: the size of that vector.
        towers: column -> :class:`TowerReport`, for the towers that run on ONNX.
        on_torch: column -> why that tower stays on torch.
        polymodal: the version that made the export.
        opset: the ONNX opset of the graphs.
        seconds: how long the export took.
    """

    folder: Path
    model: str
    kind: str
    identity: str
    output: str
    dim: int
    towers: dict[str, TowerReport] = field(default_factory=dict)
    on_torch: dict[str, str] = field(default_factory=dict)
    polymodal: str = ""
    opset: int = 17
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The record as ``export.json`` holds it (the folder itself is not stored)."""
        out = asdict(self)
        out.pop("folder")
        return {"format": FORMAT, **out}

    @classmethod
    def from_dict(cls, folder: Path, data: dict[str, Any]) -> ExportReport:
        towers = {c: TowerReport(**t) for c, t in dict(data.get("towers") or {}).items()}
        fields = {k: data[k] for k in ("model", "kind", "identity", "output", "dim",
                                       "on_torch", "polymodal", "opset", "seconds")
                  if k in data}
        return cls(folder=Path(folder), towers=towers, **fields)

    def rows(self) -> list[list[str]]:
        """One row per tower: column, format kept, max abs diff, cosine (fp32 and int8),
        or the reason it is left on torch (what ``polymodal export`` prints)."""
        out = []
        for c, t in sorted(self.towers.items()):
            int8 = "" if t.int8_cosine is None else \
                f"{t.int8_max_abs:.2e} / {t.int8_cosine:.5f}"
            out.append([c, t.modality, t.kept, f"{t.fp32_max_abs:.2e}",
                        f"{t.fp32_cosine:.6f}", int8, t.int8_note])
        for c, why in sorted(self.on_torch.items()):
            out.append([c, "", "torch", "", "", "", why])
        return out


def write_record(report: ExportReport) -> Path:
    """Write ``export.json`` into the report's folder (checksums of the graphs taken
    now)."""
    for t in report.towers.values():
        t.sha256 = {name: sha256_file(report.folder / name)
                    for name in (t.fp32_file, t.int8_file) if name}
    path = report.folder / EXPORT_JSON
    tmp = path.with_name(f".{EXPORT_JSON}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_record(folder: str | os.PathLike[str], *,
                model_folder: str | os.PathLike[str] | None = None,
                verify: bool = True) -> ExportReport:
    """The export in ``folder``, checked.

    Args:
        folder: an export folder.
        model_folder: if given, the export must have been made from this model as it
            is now (same ``config.yaml``); else the recorded model folder is checked
            when it still exists.
        verify: check each graph file against its recorded SHA-256.

    Raises:
        ExportInvalid: no record, a damaged record or graph, another format or
            polymodal version, or a model that changed since (stale).
    """
    from polymodal import __version__

    folder = Path(folder)
    path = folder / EXPORT_JSON
    if not path.is_file():
        raise ExportInvalid(f"{folder}: no {EXPORT_JSON} (not an export, or one "
                            "interrupted before it finished)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        report = ExportReport.from_dict(folder, data)
    except Exception as exc:  # any damage to the record: refuse, never run in part
        raise ExportInvalid(f"{path}: cannot read it ({type(exc).__name__}: "
                            f"{str(exc)[:200]})") from None
    if data.get("format") != FORMAT or report.polymodal != __version__:
        raise ExportInvalid(f"{folder}: made by polymodal {report.polymodal or '?'} in "
                            f"export format {data.get('format')}; this is polymodal "
                            f"{__version__} (format {FORMAT}): export again")
    model = Path(model_folder) if model_folder is not None else \
        (Path(report.model) if report.model else None)
    if model is not None and (model_folder is not None or (model / "config.yaml").exists()):
        now = model_identity(model) if (model / "config.yaml").exists() else "missing"
        if now != report.identity:
            raise ExportInvalid(f"{folder}: stale: made from another version of the "
                                f"model in {model} (its config.yaml changed since)")
    if verify:
        for t in report.towers.values():
            for name in (t.fp32_file, t.int8_file):
                if not name:
                    continue
                if Path(name).name != name or name.startswith("."):
                    raise ExportInvalid(f"{path}: graph file {name!r} is not a file of "
                                        "the export folder; refused")
                file = folder / name
                if not file.is_file() or t.sha256.get(name) != sha256_file(file):
                    raise ExportInvalid(f"{file}: damaged or missing (its SHA-256 is not "
                                        f"the one {EXPORT_JSON} recorded); refused")
    return report
