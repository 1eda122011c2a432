"""One row as the members of a WebDataset sample, and back.

A row of a shard folder is a tar sample whose members share its key (the row's
position in the folder, nine digits): ``<key>.<column>.png`` for a picture (resized,
lossless), ``<key>.<column>.npy`` for a sound (float32 mono at the folder's sample
rate), ``<key>.<column>.txt`` for a text (UTF-8), and ``<key>.json`` for the rest: the
row of the manifest it came from, its id, its label and its numeric / categorical
values. An empty cell has no member: the row lacks that modality.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
from PIL import Image

from polymodal.data.errors import MediaError
from polymodal.data.schema import Role

KEY_DIGITS = 9
EXTENSIONS = {Role.IMAGE: "png", Role.AUDIO: "npy", Role.TEXT: "txt"}


def row_key(position: int) -> str:
    """The tar key of the row at ``position`` of a shard folder."""
    return f"{position:0{KEY_DIGITS}d}"


def key_position(name: str) -> int | None:
    """The row position that a member's name (``000000042.image.png``) belongs to."""
    stem = name.split(".", 1)[0]
    return int(stem) if stem.isdigit() else None


def _plain(value: Any) -> Any:
    """A JSON-ready copy of a cell (numpy scalars to Python ones)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


def shrink(img: Image.Image, image_size: int | None) -> Image.Image:
    """``img`` fitted inside an ``image_size`` square (aspect kept, never enlarged)."""
    if image_size is None or max(img.size) <= image_size:
        return img
    scale = image_size / max(img.size)
    size = (max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale)))
    return img.resize(size, Image.Resampling.BILINEAR)


def encode_cell(role: Role, value: Any, image_size: int | None) -> bytes:
    """The bytes of one decoded cell (a Pillow image, a waveform or a text)."""
    if role is Role.IMAGE:
        buf = io.BytesIO()
        shrink(value, image_size).save(buf, format="PNG", compress_level=1)
        return buf.getvalue()
    if role is Role.AUDIO:
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(value, dtype=np.float32), allow_pickle=False)
        return buf.getvalue()
    return str(value).encode("utf-8")


def encode_row(position: int, cells: dict[str, tuple[Role, Any]], fields: dict[str, Any],
               image_size: int | None) -> dict[str, Any]:
    """A WebDataset sample (``__key__`` + members as bytes) for one decoded row."""
    sample: dict[str, Any] = {"__key__": row_key(position)}
    for column, (role, value) in cells.items():
        if value is not None:
            sample[f"{column}.{EXTENSIONS[role]}"] = encode_cell(role, value, image_size)
    sample["json"] = json.dumps({k: _plain(v) for k, v in fields.items()}).encode("utf-8")
    return sample


def decode_member(role: Role, data: bytes, mode: str = "RGB") -> Any:
    """One member's bytes back to what :meth:`Manifest.decode` gives for its cell."""
    if role is Role.IMAGE:
        img = Image.open(io.BytesIO(data))
        img.load()
        return img.convert(mode) if img.mode != mode else img
    if role is Role.AUDIO:
        return np.load(io.BytesIO(data), allow_pickle=False)
    return data.decode("utf-8")


def decode_row(members: dict[str, bytes], columns: dict[str, Role], mode: str = "RGB"
               ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(cells by column, fields) of one sample read back from a shard.

    Raises:
        MediaError: a member that does not decode (kind ``bad_shard_member``).
    """
    fields = json.loads(members["json"].decode("utf-8")) if "json" in members else {}
    cells: dict[str, Any] = {}
    for column, role in columns.items():
        data = members.get(f"{column}.{EXTENSIONS[role]}")
        try:
            cells[column] = None if data is None else decode_member(role, data, mode)
        except Exception as exc:  # Pillow, numpy and codecs each raise their own
            raise MediaError(f"the shard's {column!r} member does not decode ({exc})",
                             kind="bad_shard_member") from None
    return cells, fields
