"""What a captioner is asked about, read as one table of pictures: a folder, a picture
file, a list of files, or a manifest; each row that holds no picture is said so (an
audio-only row is answered with why, not a crash or an invented caption)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from polymodal.data import Manifest
from polymodal.data.schema import IMAGE_EXTENSIONS


def _is_picture_file(value: Any) -> bool:
    return isinstance(value, str | os.PathLike) and Path(value).suffix.lower() in \
        IMAGE_EXTENSIONS and not Path(value).is_dir()


def _source(data: Any, roles: Mapping[str, Mapping[str, str]] | None) -> Manifest:
    if _is_picture_file(data):
        return Manifest.read(pd.DataFrame({"id": [Path(data).name],
                                           "image": [str(Path(data).resolve())]}),
                             roles={"id": "id", "image": "image"})
    if isinstance(data, list | tuple):
        bad = [v for v in data if not _is_picture_file(v)]
        if bad:
            raise ValueError(f"not picture files: {[str(b) for b in bad[:5]]} (give paths "
                             f"ending in one of {sorted(IMAGE_EXTENSIONS)})")
        return Manifest.read(pd.DataFrame({"id": [Path(v).name for v in data],
                                           "image": [str(Path(v).resolve()) for v in data]}),
                             roles={"id": "id", "image": "image"})
    m = Manifest.read(data)
    return m.with_roles(roles) if roles else m


def images_manifest(data: Any, column: str,
                    roles: Mapping[str, Mapping[str, str]] | None = None
                    ) -> tuple[Manifest, list[str | None]]:
    """``data``'s rows as a manifest of one picture column named ``column`` (absolute
    paths; empty where a row has none), and per row why it cannot be captioned (None
    where it can).

    Raises:
        ValueError: ``data`` has no picture column (the message names what it holds),
            or several and none is ``column``.
    """
    m = _source(data, roles)
    modalities = m.modality_columns
    pictures = [c for c, r in modalities.items() if r.value == "image"]
    if column in pictures:
        source = column
    elif len(pictures) == 1:
        source = pictures[0]
    else:
        held = ", ".join(f"{c} ({r.value})" for c, r in modalities.items()) or "none"
        if not pictures:
            raise ValueError(f"{m.source}: nothing to caption: no picture column (its "
                             f"modality columns: {held}); a captioner writes from pictures")
        raise ValueError(f"{m.source}: {len(pictures)} picture columns ({pictures}) and "
                         f"none is {column!r}, the one this captioner was trained on; "
                         f"give a manifest whose picture column is {column!r}")
    present = m.present(source)
    paths, problems = [], []
    for row in range(len(m)):
        if present[row]:
            paths.append(str(m.resolve(row, source)))
            problems.append(None)
            continue
        others = [f"{r.value} ({c})" for c, r in modalities.items()
                  if c != source and m.present(c)[row]]
        paths.append(None)
        problems.append(f"row {m.source_row(row)} ({m.ids()[row]}): no picture to "
                        "caption" + (f"; it holds only {', '.join(others)}" if others
                                     else "; the row is empty"))
    table = pd.DataFrame({"id": m.ids(), column: pd.Series(paths, dtype=object)})
    return Manifest.read(table, roles={"id": "id", column: "image"}), problems
