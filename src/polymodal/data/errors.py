"""One error type for every bad cell, and the report that collects skipped rows.

Every failure to read a cell (a missing file, a truncated image, a label of the wrong
type) becomes a :class:`MediaError` that names where it happened: the manifest, the
row, the column, the file and the reason. Nothing deeper in the stack (Pillow,
libsndfile, pandas) reaches the user with its own, unlocated exception.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

OnError = Literal["raise", "skip"]
ON_ERROR_CHOICES: tuple[str, ...] = ("raise", "skip")


class PolymodalError(Exception):
    """Base class of polymodal's own errors."""


class ManifestError(PolymodalError, ValueError):
    """A manifest cannot be read or its schema makes no sense."""


class DataError(PolymodalError, ValueError):
    """A cell of a manifest cannot be used; the message says where and why."""


@dataclass(frozen=True)
class CellLocation:
    """Where a cell lives: manifest file, 0-based data row, column, resolved media path."""

    manifest: str | None = None
    row: int | None = None
    column: str | None = None
    path: str | None = None

    def describe(self) -> str:
        parts: list[str] = []
        if self.manifest:
            parts.append(str(self.manifest))
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column is not None:
            parts.append(f"column {self.column!r}")
        if self.path:
            parts.append(f"file {self.path}")
        return ", ".join(parts)


class MediaError(DataError):
    """A cell that could not be decoded or checked.

    Attributes:
        reason: short, human-readable cause ("file not found", "truncated PNG", ...).
        kind: a stable machine-readable category (``missing_file``, ``unreadable``,
            ``too_large``, ``not_text``, ``bad_label``, ``duplicate_id``, ...).
        location: manifest, row, column and path of the bad cell.
    """

    def __init__(self, reason: str, *, kind: str = "unreadable",
                 location: CellLocation | None = None) -> None:
        self.reason = reason
        self.kind = kind
        self.location = location or CellLocation()
        super().__init__(self._message())

    def _message(self) -> str:
        where = self.location.describe()
        return f"{where}: {self.reason}" if where else self.reason

    def at(self, **where: object) -> MediaError:
        """Return a copy of this error with more of its location filled in."""
        merged = {k: v for k, v in asdict(self.location).items() if v is not None}
        merged.update({k: v for k, v in where.items() if v is not None})
        return MediaError(self.reason, kind=self.kind, location=CellLocation(**merged))  # type: ignore[arg-type]

    def __reduce__(self):  # picklable across DataLoader worker processes
        return (_rebuild_media_error, (self.reason, self.kind, asdict(self.location)))


def _rebuild_media_error(reason: str, kind: str, location: dict) -> MediaError:
    return MediaError(reason, kind=kind, location=CellLocation(**location))


@dataclass(frozen=True)
class Problem:
    """One bad cell, as a row of a validation table or a skip report."""

    row: int | None
    column: str | None
    kind: str
    reason: str
    path: str | None = None
    manifest: str | None = None

    @classmethod
    def from_error(cls, err: MediaError) -> Problem:
        loc = err.location
        return cls(row=loc.row, column=loc.column, kind=err.kind, reason=err.reason,
                   path=loc.path, manifest=loc.manifest)

    def to_error(self) -> MediaError:
        """This problem as the error that reports it."""
        return MediaError(self.reason, kind=self.kind, location=CellLocation(
            manifest=self.manifest, row=self.row, column=self.column, path=self.path))


class SkipReport:
    """Every row skipped under ``on_error="skip"``, with its reason; written as CSV.

    Nothing is dropped silently: a training or indexing run that skips rows writes this
    report and says where it is.
    """

    FIELDS = ("row", "column", "kind", "reason", "path", "manifest")

    def __init__(self, manifest: str | None = None) -> None:
        self.manifest = manifest
        self.problems: list[Problem] = []

    def add(self, problem: Problem | MediaError) -> None:
        if isinstance(problem, MediaError):
            problem = Problem.from_error(problem)
        self.problems.append(problem)

    def extend(self, problems: Iterable[Problem | MediaError]) -> None:
        for p in problems:
            self.add(p)

    def deduplicate(self) -> SkipReport:
        """Keep one problem per (manifest, row, column, kind): a bad row met in every
        epoch is reported once."""
        unique: dict[tuple, Problem] = {}
        for p in self.problems:
            unique.setdefault((p.manifest, p.row, p.column, p.kind), p)
        self.problems = list(unique.values())
        return self

    @property
    def rows(self) -> list[int]:
        """Sorted distinct data rows that were skipped."""
        return sorted({p.row for p in self.problems if p.row is not None})

    def __len__(self) -> int:
        return len(self.problems)

    def __iter__(self) -> Iterator[Problem]:
        return iter(self.problems)

    def write(self, path: str | Path) -> Path:
        """Write the report as CSV (one line per bad cell) and return its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.FIELDS)
            writer.writeheader()
            for p in sorted(self.problems, key=lambda p: (p.manifest or "",
                                                         p.row if p.row is not None else -1,
                                                         p.column or "")):
                writer.writerow(asdict(p))
        return path
