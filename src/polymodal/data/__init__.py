"""The data layer: manifests, column roles, media decoding, validation, the lazy
dataset that feeds every model, and the bundled benchmark datasets."""

from __future__ import annotations

from polymodal.data.errors import (
    CellLocation,
    DataError,
    ManifestError,
    MediaError,
    PolymodalError,
    Problem,
    SkipReport,
)
from polymodal.data.manifest import DecodeOptions, Manifest, is_empty, read_table
from polymodal.data.media import (
    MediaLimits,
    decode_audio,
    decode_image,
    decode_text_bytes,
    decode_text_file,
)
from polymodal.data.schema import ColumnSpec, Role, Schema, infer_schema
from polymodal.data.validate import ValidationReport, validate

#: the torch dataset and its batches load on first use: reading, checking and
#: validating a manifest import no model library
_DATASET_NAMES = frozenset({"Batch", "Example", "MultimodalDataset", "SkippedRow",
                            "collate_examples", "image_to_tensor", "iterate_with_report"})


def __getattr__(name: str) -> object:
    if name in _DATASET_NAMES:
        from polymodal.data import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'polymodal.data' has no attribute {name!r}")


__all__ = [
    "Batch", "CellLocation", "ColumnSpec", "DataError", "DecodeOptions", "Example",
    "Manifest", "ManifestError", "MediaError", "MediaLimits", "MultimodalDataset",
    "PolymodalError", "Problem", "Role", "Schema", "SkipReport", "SkippedRow",
    "ValidationReport", "collate_examples", "decode_audio", "decode_image",
    "decode_text_bytes", "decode_text_file", "image_to_tensor", "infer_schema", "is_empty",
    "iterate_with_report", "read_table", "validate",
]
