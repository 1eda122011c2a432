"""Manifests: tables whose rows point at media, read from CSV, TSV, Parquet, JSONL, a
pandas DataFrame or a folder of files.

A :class:`Manifest` holds the table (paths and values, never decoded media), the
folder that relative paths resolve against, and the :class:`~polymodal.data.schema.Schema`.
Cells are decoded one at a time, on demand, by :meth:`Manifest.decode`, so a manifest
of a million rows costs the memory of its table and nothing more. The files and
folders are read by :mod:`polymodal.data.reading`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polymodal.data.errors import CellLocation, ManifestError, MediaError
from polymodal.data.media import (
    DEFAULT_LIMITS,
    DEFAULT_SAMPLE_RATE,
    MediaLimits,
    decode_audio,
    decode_image,
    decode_text_file,
)
from polymodal.data.reading import TABLE_SUFFIXES as TABLE_SUFFIXES
from polymodal.data.reading import read_table, scan_folder
from polymodal.data.schema import Role, Schema, infer_schema, split_names

__all__ = ["DecodeOptions", "Manifest", "is_empty", "read_table"]


def is_empty(value: Any) -> bool:
    """True for a cell that means "this row lacks this modality": None, NaN, "" or spaces."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str) and not value.strip():
        return True
    return bool(value is pd.NA or value is pd.NaT)


@dataclass(frozen=True)
class DecodeOptions:
    """How cells are decoded: image mode, audio rate, and size bounds."""

    image_mode: str = "RGB"
    sample_rate: int = DEFAULT_SAMPLE_RATE
    limits: MediaLimits = field(default_factory=lambda: DEFAULT_LIMITS)


class Manifest:
    """A table of rows pointing at media, with the roles of its columns.

    Build one with :meth:`Manifest.read`; the constructor only stores its arguments.

    Args:
        table: one row per example; media columns hold paths.
        schema: the role of every column.
        root: folder that relative paths resolve against.
        source: where the table came from (a file path, "DataFrame" or a folder), used
            in error messages.
        confine: refuse media paths that resolve (symlinks followed) outside ``root``.
        origin: for a subset, the row of ``source`` that each row comes from, so that
            errors and reports name the row of the file the user wrote.
    """

    def __init__(self, table: pd.DataFrame, schema: Schema, *, root: Path,
                 source: str = "DataFrame", confine: bool = False,
                 origin: np.ndarray | None = None) -> None:
        self.table = table
        self.schema = schema
        self.root = root
        self.source = source
        self.confine = confine
        self.origin = origin
        self._cells: dict[str, list[Any]] = {}

    # -- construction -------------------------------------------------------------
    @classmethod
    def read(cls, source: str | os.PathLike[str] | pd.DataFrame | Manifest, *,
             label: str | None = None, roles: Mapping[str, Role | str] | None = None,
             root: str | os.PathLike[str] | None = None, confine: bool = False) -> Manifest:
        """Read a manifest from a file, a folder or a DataFrame and infer its schema.

        Args:
            source: CSV/TSV/Parquet/JSONL file, a folder of media files, or a DataFrame.
            label: the label column (inferred from its name when not given).
            roles: overrides, column name -> role name ("text", "image", "audio",
                "label", "id", "numeric", "categorical", "split", "ignore").
            root: folder for relative paths; defaults to the manifest file's folder (the
                current folder for a DataFrame).
            confine: refuse media outside ``root`` (paths with ``..``, absolute paths
                and symlinks that lead out).
        """
        if isinstance(source, Manifest):
            return source
        if isinstance(source, pd.DataFrame):
            table, name = source.reset_index(drop=True), "DataFrame"
            base = Path(root) if root is not None else Path.cwd()
            schema = infer_schema(table, label=label, overrides=roles)
        else:
            path = Path(source).expanduser()
            name = str(path)
            if path.is_dir():
                table, folder_schema = scan_folder(path)
                base = Path(root) if root is not None else path
                schema = folder_schema
                if label or roles:
                    schema = infer_schema(table, label=label, overrides={
                        **{c: s.role for c, s in folder_schema.columns.items()},
                        **(roles or {})})
                    for col, spec in folder_schema.columns.items():
                        if schema[col].role is spec.role:
                            schema.columns[col] = spec
            else:
                table = read_table(path)
                base = Path(root) if root is not None else path.parent
                schema = infer_schema(table, label=label, overrides=roles)
        table.columns = [str(c) for c in table.columns]
        return cls(table, schema, root=base.resolve(), source=name, confine=confine)

    # -- access -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        return (f"Manifest({self.source!r}, rows={len(self)}, "
                f"modalities={self.schema.modalities}, label={self.schema.label!r})")

    @property
    def modality_columns(self) -> dict[str, Role]:
        return self.schema.modality_columns

    def source_row(self, row: int) -> int:
        """The row of the manifest the user wrote that row ``row`` of this (maybe
        subset) manifest comes from; what errors and skip reports name."""
        return int(self.origin[row]) if self.origin is not None else row

    def location(self, row: int, column: str | None = None, path: str | None = None
                 ) -> CellLocation:
        return CellLocation(manifest=self.source, row=self.source_row(row), column=column,
                            path=path)

    def value(self, row: int, column: str) -> Any:
        """The raw cell, or None where it is empty."""
        cells = self._cells.get(column)
        if cells is None:  # one list per column: a cell lookup is then a list index
            cells = self._cells[column] = self.table[column].tolist()
        v = cells[row]
        if isinstance(v, np.generic):
            v = v.item()
        return None if is_empty(v) else v

    def resolve(self, row: int, column: str) -> Path | None:
        """The absolute path that a media cell points at, or None for an empty cell."""
        v = self.value(row, column)
        if v is None:
            return None
        if not isinstance(v, str | os.PathLike):
            raise MediaError(f"expected a file path, got {type(v).__name__} {v!r}",
                             kind="bad_value", location=self.location(row, column))
        if "\x00" in str(v):  # found by tests/test_reliability_fuzz.py: os calls raise
            raise MediaError("path holds a NUL byte", kind="bad_value",
                             location=self.location(row, column))
        p = Path(os.path.expanduser(str(v).strip()))
        p = p if p.is_absolute() else self.root / p
        if self.confine:
            try:
                real = p.resolve()
            except (OSError, RuntimeError) as exc:  # a symlink loop, a name too long
                raise MediaError(f"cannot resolve the path ({exc})", kind="unreadable",
                                 location=self.location(row, column, str(p))) from None
            if not real.is_relative_to(self.root):
                raise MediaError(
                    f"path leads outside the manifest's folder {self.root} (to {real}); "
                    "move the file inside it or read the manifest with confine=False",
                    kind="outside_root", location=self.location(row, column, str(p)))
        return p

    def decode(self, row: int, column: str, options: DecodeOptions | None = None) -> Any:
        """Decode one cell by its column's role; None for an empty cell.

        Returns a Pillow image (image), a float32 mono waveform (audio), a string (text),
        a float (numeric) or the raw value (label, categorical, id).

        Raises:
            MediaError: the cell is bad; the error names manifest, row, column and path.
        """
        options = options or DecodeOptions()
        spec = self.schema[column]
        path: Path | None = None
        try:
            if spec.role is Role.IMAGE:
                path = self.resolve(row, column)
                return None if path is None else decode_image(
                    path, mode=options.image_mode, limits=options.limits)
            if spec.role is Role.AUDIO:
                path = self.resolve(row, column)
                return None if path is None else decode_audio(
                    path, sample_rate=options.sample_rate, limits=options.limits)
            if spec.role is Role.TEXT:
                if spec.source == "path":
                    path = self.resolve(row, column)
                    text = None if path is None else decode_text_file(path,
                                                                      limits=options.limits)
                else:
                    text = self._inline_text(row, column)
                return text if text is None or text.strip() else None
            if spec.role is Role.NUMERIC:
                return self._numeric(row, column)
            return self.value(row, column)
        except MediaError as err:
            raise err.at(manifest=self.source, row=self.source_row(row), column=column,
                         path=str(path) if path else None) from None

    def _inline_text(self, row: int, column: str) -> str | None:
        v = self.value(row, column)
        if v is None:
            return None
        if isinstance(v, bytes):
            from polymodal.data.media import decode_text_bytes

            return decode_text_bytes(v)
        if not isinstance(v, str):
            return str(v)
        return v

    def _numeric(self, row: int, column: str) -> float | None:
        v = self.value(row, column)
        if v is None:
            return None
        try:
            return float(v)
        except (TypeError, ValueError):
            raise MediaError(f"expected a number, got {v!r}", kind="bad_value") from None

    def decode_row(self, row: int, options: DecodeOptions | None = None,
                   columns: list[str] | None = None) -> dict[str, Any]:
        """Decode every modality column of one row (None where a cell is empty)."""
        cols = columns if columns is not None else list(self.modality_columns)
        return {c: self.decode(row, c, options) for c in cols}

    def label(self, row: int) -> Any:
        """The row's label value, or None (no label column, or an empty cell)."""
        col = self.schema.label
        return None if col is None else self.value(row, col)

    def ids(self) -> list[str]:
        """Stable row ids: the id column where there is one, else the row number."""
        col = self.schema.id
        if col is None:
            return [str(i) for i in range(len(self))]
        return [str(v) for v in self.table[col].tolist()]

    def rows(self) -> Iterator[int]:
        return iter(range(len(self)))

    # -- subsets ------------------------------------------------------------------
    def subset(self, rows: list[int] | np.ndarray) -> Manifest:
        """A manifest of the given rows (renumbered from 0), same schema and root; its
        errors still name the rows of the original file (:meth:`source_row`)."""
        rows = np.asarray(list(rows), dtype=np.int64)
        table = self.table.iloc[rows].reset_index(drop=True)
        origin = self.origin[rows] if self.origin is not None else rows
        return Manifest(table, self.schema, root=self.root, source=self.source,
                        confine=self.confine, origin=origin)

    def split(self, name: str) -> Manifest:
        """The rows whose split column equals ``name`` ("train", "val", "test")."""
        col = self.schema.split
        if col is None:
            raise ManifestError(f"{self.source}: no split column; add one named 'split' "
                                "or pass roles={COLUMN: 'split'}")
        values = self.table[col].astype(str).str.lower()
        mask = values.isin(split_names(name)).to_numpy()
        return self.subset(np.flatnonzero(mask))

    def select_modality_columns(self, wanted: Sequence[str] | None = None) -> list[str]:
        """The modality columns named in ``wanted`` by column name or by modality
        ("image" picks every picture column); every one when ``wanted`` is None
        (:meth:`Schema.select_modality_columns`)."""
        return self.schema.select_modality_columns(wanted, self.source)

    def present(self, column: str) -> np.ndarray:
        """Per row: does ``column`` hold a value (not missing, not blank)?"""
        values = self.table[column]
        return (values.notna() & (values.astype(str).str.strip() != "")).to_numpy()

    def is_empty_column(self, column: str) -> bool:
        """Is every cell of ``column`` empty?"""
        return not self.present(column).any()

    def training_split(self, seed: int = 0, fraction: float = 0.1, minimum: int = 1
                       ) -> tuple[Manifest, Manifest]:
        """(rows to train on, rows to tune on): the "train" and "val" splits when the
        split column has a val split, else a seeded ``fraction`` of the rows (at least
        ``minimum``) held out."""
        if self.schema.split is not None and len(self.split("val")):
            return self.split("train"), self.split("val")
        order = np.random.default_rng(seed).permutation(len(self))
        n_val = max(minimum, int(len(self) * fraction))
        return self.subset(sorted(order[n_val:])), self.subset(sorted(order[:n_val]))

    def stratified_subset(self, column: str, share: float, seed: int = 0) -> Manifest:
        """A seeded ``share`` of the rows with ``column``'s class balance (at least one
        row of every class): few labels to fine-tune on. Every row when ``share`` >= 1."""
        if share >= 1:
            return self
        rng = np.random.default_rng(seed)
        labels = self.table[column].astype(str).to_numpy()
        rows: list[int] = []
        for value in np.unique(labels):
            idx = np.flatnonzero(labels == value)
            rows += rng.choice(idx, max(1, round(share * len(idx))), replace=False).tolist()
        return self.subset(sorted(rows))

    def with_schema(self, schema: Schema) -> Manifest:
        return Manifest(self.table, schema, root=self.root, source=self.source,
                        confine=self.confine, origin=self.origin)

    def with_columns(self, values: Mapping[str, Any]) -> Manifest:
        """This manifest with columns added (or replaced), each set to one value in
        every row (``None``: the row lacks it); give their roles with
        :meth:`with_roles`."""
        table = self.table.copy()
        for column, value in values.items():
            table[column] = pd.Series([value] * len(table), dtype=object)
        return Manifest(table, self.schema, root=self.root, source=self.source,
                        confine=self.confine, origin=self.origin)

    def with_roles(self, roles: Mapping[str, Mapping[str, str]]) -> Manifest:
        """This manifest with the saved ``roles`` (``Schema.to_dict`` form) applied to the
        columns it has: a model reads new data as it read its training data."""
        current = self.schema.to_dict()
        known = {c: spec for c, spec in roles.items() if c in self.table.columns}
        if all(current.get(c) == spec for c, spec in known.items()):
            return self
        return self.with_schema(Schema.from_dict({**current, **known}))

