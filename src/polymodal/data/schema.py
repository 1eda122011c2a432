"""Which column of a manifest holds what: column roles, inferred and overridable.

Roles are inferred from column names, file extensions and content, in that order of
trust, and the caller may override any of them::

    schema = infer_schema(df, label="category", overrides={"notes": "ignore"})

Media columns hold paths (relative to the manifest's folder or absolute); text columns
hold either inline text or paths to ``.txt`` files (``source="path"``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

import pandas as pd

from polymodal.data.errors import ManifestError


class Role(str, Enum):
    """What a column means to the pipeline."""

    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    LABEL = "label"
    ID = "id"
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    SPLIT = "split"
    IGNORE = "ignore"

    @property
    def is_modality(self) -> bool:
        return self in (Role.TEXT, Role.IMAGE, Role.AUDIO)


MODALITY_ROLES: tuple[Role, ...] = (Role.TEXT, Role.IMAGE, Role.AUDIO)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif",
                              ".tiff", ".svg"})
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3", ".opus", ".aiff",
                              ".aif"})
TEXT_EXTENSIONS = frozenset({".txt", ".md"})

_LABEL_NAMES = {"label", "labels", "target", "y", "class", "answer"}
_ID_NAMES = {"id", "uid", "key", "item_id", "row_id", "sample_id", "stem"}
_SPLIT_NAMES = {"split", "fold", "subset"}
_SPLIT_VALUES = {"train", "training", "val", "valid", "validation", "dev", "test", "testing"}
_NAME_HINTS: dict[Role, tuple[str, ...]] = {
    Role.IMAGE: ("image", "img", "picture", "photo", "pixel", "thumbnail", "scan"),
    Role.AUDIO: ("audio", "sound", "speech", "wav", "voice", "clip", "recording"),
    Role.TEXT: ("text", "caption", "question", "description", "record", "title", "sentence",
                "transcript", "comment", "review", "body", "prompt"),
}
_EXT_RE = re.compile(r"\.[A-Za-z0-9]{2,5}$")
_SAMPLE = 200


#: the names a split goes by: "val" is also "valid", "validation" or "dev"
SPLIT_ALIASES = ({"val", "valid", "validation", "dev"}, {"train", "training"},
                 {"test", "testing"})


def split_names(name: str) -> set[str]:
    """Every (lower-case) name the split ``name`` goes by."""
    return next((set(names) for names in SPLIT_ALIASES if name.lower() in names),
                {name.lower()})


@dataclass(frozen=True)
class ColumnSpec:
    """One column's role; ``source`` is ``"path"`` for files, ``"inline"`` for values."""

    name: str
    role: Role
    source: str = "inline"
    reason: str = ""


@dataclass
class Schema:
    """The roles of a manifest's columns, in the manifest's column order."""

    columns: dict[str, ColumnSpec] = field(default_factory=dict)

    def by_role(self, role: Role | str) -> list[str]:
        role = Role(role)
        return [c.name for c in self.columns.values() if c.role is role]

    def one(self, role: Role | str) -> str | None:
        names = self.by_role(role)
        return names[0] if names else None

    @property
    def label(self) -> str | None:
        return self.one(Role.LABEL)

    @property
    def id(self) -> str | None:
        return self.one(Role.ID)

    @property
    def split(self) -> str | None:
        return self.one(Role.SPLIT)

    @property
    def modality_columns(self) -> dict[str, Role]:
        """Columns that feed an encoder, mapped to their modality."""
        return {c.name: c.role for c in self.columns.values() if c.role.is_modality}

    def select_modality_columns(self, wanted: Sequence[str] | None = None,
                                source: str = "the manifest") -> list[str]:
        """The modality columns named in ``wanted`` by column name or by modality
        ("image" picks every picture column); every one when ``wanted`` is None.

        Raises:
            ValueError: a name in ``wanted`` that matches no modality column of
                ``source`` (what the message names).
        """
        available = self.modality_columns
        if wanted is None:
            return sorted(available)
        unknown = [x for x in wanted if x not in available
                   and x not in {r.value for r in available.values()}]
        if unknown:
            named = {c: r.value for c, r in available.items()}
            raise ValueError(f"modalities {unknown} match no modality column of "
                             f"{source}; modality columns: {named}")
        return sorted(c for c in available if c in wanted or available[c].value in wanted)

    @property
    def modalities(self) -> list[str]:
        """The modalities present, sorted (keys of every per-modality dict)."""
        return sorted({c.role.value for c in self.columns.values() if c.role.is_modality})

    def __getitem__(self, name: str) -> ColumnSpec:
        return self.columns[name]

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {n: {"role": c.role.value, "source": c.source} for n, c in self.columns.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, str] | str]) -> Schema:
        cols = {}
        for name, spec in data.items():
            if isinstance(spec, str):
                spec = {"role": spec}
            cols[name] = ColumnSpec(name, Role(spec["role"]), spec.get("source", "inline"),
                                    "given")
        return cls(cols)


def _nonempty(series: pd.Series) -> pd.Series:
    s = series.dropna()
    if not pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
        s = s[[not (isinstance(v, str) and not v.strip()) for v in s]]
    return s.head(_SAMPLE)


def _extension_role(values: pd.Series) -> Role | None:
    """The media role most sampled values point at by extension, if most of them do."""
    strs = values.astype(str).str.strip().str.lower()
    exts = strs.str.extract(r"(\.[a-z0-9]{2,5})$", expand=False).dropna()
    if len(strs) == 0 or len(exts) < 0.8 * len(strs):
        return None
    counts = {
        Role.IMAGE: exts.isin(IMAGE_EXTENSIONS).sum(),
        Role.AUDIO: exts.isin(AUDIO_EXTENSIONS).sum(),
        Role.TEXT: exts.isin(TEXT_EXTENSIONS).sum(),
    }
    role, n = max(counts.items(), key=lambda kv: kv[1])
    return role if n >= 0.8 * len(strs) else None


def _name_role(name: str) -> Role | None:
    lowered = name.lower()
    for role, hints in _NAME_HINTS.items():
        if any(h in lowered for h in hints):
            return role
    return None


def infer_column(name: str, series: pd.Series, *, n_rows: int) -> ColumnSpec:
    """Infer one column's role from its name, extensions and content."""
    lowered = name.lower()
    values = _nonempty(series)
    if lowered in _SPLIT_NAMES and set(values.astype(str).str.lower()) <= _SPLIT_VALUES:
        return ColumnSpec(name, Role.SPLIT, reason="name and train/val/test values")
    if lowered in _ID_NAMES or lowered.endswith("_id"):
        return ColumnSpec(name, Role.ID, reason="name")
    if lowered in _LABEL_NAMES:
        return ColumnSpec(name, Role.LABEL, reason="name")
    if len(values) == 0:
        hinted = _name_role(name)
        if hinted is not None:
            return ColumnSpec(name, hinted, "path" if hinted is not Role.TEXT else "inline",
                              reason="name (column empty)")
        return ColumnSpec(name, Role.IGNORE, reason="column empty")
    if pd.api.types.is_bool_dtype(series):
        return ColumnSpec(name, Role.CATEGORICAL, reason="boolean values")
    if pd.api.types.is_numeric_dtype(series):
        return ColumnSpec(name, Role.NUMERIC, reason="numeric values")
    if not all(isinstance(v, str) for v in values):
        return ColumnSpec(name, Role.IGNORE, reason="values are not strings or numbers")
    ext_role = _extension_role(values)
    if ext_role is not None:
        return ColumnSpec(name, ext_role, source="path", reason="file extensions")
    hinted = _name_role(name)
    if hinted is Role.TEXT:
        return ColumnSpec(name, Role.TEXT, reason="name")
    words = values.str.split().str.len()
    n_unique = values.nunique()
    if words.mean() >= 3 or (n_unique > 0.5 * len(values) and words.mean() > 1.5):
        return ColumnSpec(name, Role.TEXT, reason="free text content")
    if n_unique <= max(2, min(50, int(0.5 * max(n_rows, 1)))):
        return ColumnSpec(name, Role.CATEGORICAL, reason="few distinct short values")
    return ColumnSpec(name, Role.TEXT, reason="string values")


def infer_schema(df: pd.DataFrame, *, label: str | None = None,
                 overrides: Mapping[str, Role | str] | None = None) -> Schema:
    """Infer every column's role; ``label`` and ``overrides`` win over inference.

    Raises:
        ManifestError: an override or label names a column that does not exist, or a
            role name is unknown.
    """
    overrides = dict(overrides or {})
    if label is not None and label not in df.columns:
        raise ManifestError(f"label column {label!r} is not in the manifest; its columns "
                            f"are {list(df.columns)}")
    for name in overrides:
        if name not in df.columns:
            raise ManifestError(
                f"column {name!r} is not in the manifest; its columns are {list(df.columns)}")
    cols: dict[str, ColumnSpec] = {}
    for name in df.columns:
        name = str(name)
        if name in overrides:
            try:
                role = Role(overrides[name])
            except ValueError:
                raise ManifestError(
                    f"unknown role {overrides[name]!r} for column {name!r}; "
                    f"choose one of {[r.value for r in Role]}") from None
            inferred = infer_column(name, df[name], n_rows=len(df))
            source = inferred.source if inferred.role is role else (
                "path" if role in (Role.IMAGE, Role.AUDIO) else "inline")
            if role is Role.TEXT and inferred.role is not Role.TEXT:
                source = "path" if _extension_role(_nonempty(df[name])) is Role.TEXT else "inline"
            cols[name] = ColumnSpec(name, role, source, reason="given")
        else:
            cols[name] = infer_column(name, df[name], n_rows=len(df))
    if label is not None:
        cols[label] = ColumnSpec(label, Role.LABEL, reason="given")
        for name, spec in cols.items():  # only one label unless the caller says so
            if name != label and spec.role is Role.LABEL and name not in overrides:
                cols[name] = ColumnSpec(name, Role.CATEGORICAL, reason="label given elsewhere")
    return Schema(cols)
