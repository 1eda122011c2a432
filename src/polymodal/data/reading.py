"""Reading manifest tables: a CSV, TSV, Parquet or JSONL file by its suffix (a failure
names the file and the cause, a row with too many fields its line), and a folder of
media files grouped into rows by file stem (the label is the first sub-folder).
:meth:`Manifest.read <polymodal.data.manifest.Manifest.read>` is the public face."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from polymodal.data.errors import ManifestError
from polymodal.data.schema import (
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    TEXT_EXTENSIONS,
    ColumnSpec,
    Role,
    Schema,
)

__all__ = ["TABLE_SUFFIXES", "read_table", "scan_folder"]

TABLE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet",
                  ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}


def _check_field_counts(path: Path, sep: str) -> None:
    """A row with more fields than the header names is a located error: pandas would
    make the extra fields an index (a phantom row, every later row number off by one)
    or fail with a parser message. A row with fewer lacks its last cells (empty)."""
    import csv

    with path.open(newline="", encoding="utf-8-sig", errors="replace") as fh:
        reader = csv.reader(fh, delimiter=sep)
        header = next(reader, None)
        if header is None:
            return
        n = len(header)
        for row, fields in enumerate(reader):
            if len(fields) > n:
                raise ManifestError(
                    f"{path}: row {row} (line {reader.line_num} of the file) has "
                    f"{len(fields)} fields where the header names {n} "
                    f"({', '.join(header)}); a value that holds {sep!r} needs quotes")


def read_table(path: Path) -> pd.DataFrame:
    """Read a manifest table by its suffix; a failure names the file and the cause."""
    if not path.exists():
        raise ManifestError(f"{path} does not exist (give a manifest file or a folder of "
                            "media)")
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ManifestError(f"{path}: unknown manifest format {path.suffix!r}; use one of "
                            f"{sorted(TABLE_SUFFIXES)} or a folder of files")
    try:
        if kind in ("csv", "tsv"):
            sep = "," if kind == "csv" else "\t"
            _check_field_counts(path, sep)
            header = pd.read_csv(path, sep=sep, encoding="utf-8-sig", nrows=0).columns
            ids = {c: str for c in header if _looks_like_id(str(c))}  # keep "0007" as is
            # index_col=False: extra fields never become an index that shifts every row
            return pd.read_csv(path, sep=sep, encoding="utf-8-sig", dtype=ids,
                               index_col=False)
        if kind == "parquet":
            return pd.read_parquet(path)
        return pd.read_json(path, lines=kind == "jsonl", orient="records", dtype=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
            ValueError, OSError) as exc:
        raise ManifestError(f"{path}: cannot read {kind.upper()} manifest: {exc}") from None


def _looks_like_id(name: str) -> bool:
    from polymodal.data.schema import _ID_NAMES

    lowered = name.lower()
    return lowered in _ID_NAMES or lowered.endswith("_id")


def scan_folder(root: Path) -> tuple[pd.DataFrame, Schema]:
    """Group a folder's files into rows by stem; the label is the first sub-folder."""
    groups: dict[tuple[str, str], dict[str, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = Path(dirpath).relative_to(root)
        for fname in sorted(filenames):
            if fname.startswith("."):
                continue
            p = Path(fname)
            ext = p.suffix.lower()
            role = ("image" if ext in IMAGE_EXTENSIONS else "audio" if ext in AUDIO_EXTENSIONS
                    else "text" if ext in TEXT_EXTENSIONS else None)
            if role is None:
                continue
            group = groups.setdefault((rel_dir.as_posix(), p.stem), {})
            group.setdefault(role, (rel_dir / fname).as_posix())
    if not groups:
        raise ManifestError(f"{root}: no image, audio or text files found in this folder")
    rows = []
    for (rel_dir, stem), files in sorted(groups.items()):
        parts = Path(rel_dir).parts
        rows.append({"id": f"{rel_dir}/{stem}" if parts else stem,
                     "image": files.get("image"), "audio": files.get("audio"),
                     "text": files.get("text"), "label": parts[0] if parts else None})
    df = pd.DataFrame(rows)
    df = df[[c for c in df.columns if df[c].notna().any()]]
    specs = {"id": ColumnSpec("id", Role.ID, reason="folder"),
             "image": ColumnSpec("image", Role.IMAGE, "path", "folder"),
             "audio": ColumnSpec("audio", Role.AUDIO, "path", "folder"),
             "text": ColumnSpec("text", Role.TEXT, "path", "folder"),
             "label": ColumnSpec("label", Role.LABEL, reason="sub-folder")}
    return df.reset_index(drop=True), Schema({c: specs[c] for c in df.columns})
