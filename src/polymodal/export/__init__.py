"""Models exported to ONNX: each tower of a saved model as one graph (encoder forward
and its head), checked against torch, run on onnxruntime for queries and indexing::

    from polymodal.export import OnnxTowers, export_towers

    report = export_towers("pretrained/", "pretrained/onnx")   # fp32, int8 where it agrees
    towers = OnnxTowers("pretrained/onnx")
    towers.embed_values("caption", ["a red bird"])               # as Pretrainer.embed_values

Names load on first use: running an export (:mod:`~polymodal.export.runtime`) imports
onnxruntime and numpy, not torch; exporting (:mod:`~polymodal.export.exporter`) needs
torch. A library uses its model's export by itself (:mod:`~polymodal.export.fastpath`).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    **dict.fromkeys(("export_towers", "torch_embed"), "exporter"),
    "quantize": "tracing",
    **dict.fromkeys(("OnnxTowers", "collate_arrays"), "runtime"),
    **dict.fromkeys(("EXPORT_JSON", "ExportInvalid", "ExportReport", "TowerReport",
                     "model_identity", "read_record"), "record"),
    **dict.fromkeys(("ENV", "embedder", "export_folders", "onnx_setting"), "fastpath"),
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"polymodal.export.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'polymodal.export' has no attribute {name!r}")


__all__ = sorted(_WHERE)
