"""The data layer: manifests, column roles, media decoding, validation, the lazy
dataset that feeds every model, and the bundled benchmark datasets.

Names load on first use (PEP 562), so that importing one module of the layer (the
errors, for the command line's error handler) pays for no other: pandas, Pillow and
librosa load with the manifest and decoders, torch with the dataset."""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: where each public name is defined
_WHERE = {
    **dict.fromkeys(("CellLocation", "DataError", "ManifestError", "MediaError",
                     "PolymodalError", "Problem", "SkipReport"), "errors"),
    **dict.fromkeys(("DecodeOptions", "Manifest", "is_empty", "read_table"), "manifest"),
    **dict.fromkeys(("MediaLimits", "decode_audio", "decode_image", "decode_text_bytes",
                     "decode_text_file"), "media"),
    **dict.fromkeys(("ColumnSpec", "Role", "Schema", "infer_schema"), "schema"),
    **dict.fromkeys(("ValidationReport", "validate"), "validation"),
    **dict.fromkeys(("Batch", "Example", "MultimodalDataset", "SkippedRow",
                     "collate_examples", "image_to_tensor", "iterate_with_report"),
                    "dataset"),
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"polymodal.data.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'polymodal.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(_WHERE)


__all__ = sorted(_WHERE)
