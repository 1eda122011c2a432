"""Validation: decode every cell of a manifest and report every problem with its place.

An empty cell is not a problem: it means the row lacks that modality, and the summary
counts such rows per column. A caller may *require* modalities, and then an empty cell
of a required modality is a problem.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from polymodal.data.errors import MediaError, Problem, SkipReport
from polymodal.data.manifest import DecodeOptions, Manifest, is_empty
from polymodal.data.schema import Role
from polymodal.progress import progress_bar

LabelType = Literal["auto", "numeric", "categorical"]


@dataclass
class ColumnSummary:
    """Counts for one modality column."""

    column: str
    role: str
    present: int = 0
    empty: int = 0
    bad: int = 0


@dataclass
class ValidationReport:
    """Everything :func:`validate` found: problems (one per bad cell) and counts."""

    source: str
    n_rows: int
    problems: list[Problem] = field(default_factory=list)
    columns: dict[str, ColumnSummary] = field(default_factory=dict)
    label_column: str | None = None
    label_counts: dict[str, int] = field(default_factory=dict)
    rows_without_modality: int = 0

    @property
    def bad_rows(self) -> list[int]:
        return sorted({p.row for p in self.problems if p.row is not None})

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def problems_by_kind(self) -> dict[str, int]:
        return dict(Counter(p.kind for p in self.problems))

    def to_skip_report(self) -> SkipReport:
        report = SkipReport(self.source)
        report.extend(self.problems)
        return report

    def summary(self) -> dict[str, Any]:
        """A plain dict of the counts, for JSON output and tests."""
        return {
            "source": self.source, "rows": self.n_rows, "bad_rows": len(self.bad_rows),
            "problems": len(self.problems), "problems_by_kind": self.problems_by_kind,
            "rows_without_any_modality": self.rows_without_modality,
            "columns": {c.column: {"role": c.role, "present": c.present, "empty": c.empty,
                                   "bad": c.bad} for c in self.columns.values()},
            "label": self.label_column, "label_counts": self.label_counts,
        }


def _is_number(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, int | float | np.integer | np.floating):
        return True
    if isinstance(v, str):
        try:
            float(v)
        except ValueError:
            return False
        return True
    return False


def check_labels(manifest: Manifest, label_type: LabelType = "auto") -> list[Problem]:
    """Missing labels and labels of the wrong type (not the type of the column's others)."""
    col = manifest.schema.label
    if col is None:
        return []
    problems: list[Problem] = []
    values = manifest.table[col].tolist()
    present = [(i, v) for i, v in enumerate(values) if not is_empty(v)]
    numeric = [_is_number(v) for _, v in present]
    if label_type == "auto":
        label_type = "numeric" if present and sum(numeric) > 0.5 * len(present) else \
            "categorical"
    for i, v in enumerate(values):
        if is_empty(v):
            problems.append(Problem(manifest.source_row(i), col, "missing_label",
                                    "label is missing"))
    for (i, v), is_num in zip(present, numeric, strict=True):
        if isinstance(v, list | dict | tuple | set):
            problems.append(Problem(manifest.source_row(i), col, "bad_label",
                                    f"label must be one value, got {type(v).__name__} {v!r}"))
        elif label_type == "numeric" and not is_num:
            problems.append(Problem(manifest.source_row(i), col, "bad_label",
                                    f"label {v!r} is not a number like the column's other "
                                    "labels"))
    return problems


def check_ids(manifest: Manifest) -> list[Problem]:
    """Every repeated id after its first row."""
    col = manifest.schema.id
    if col is None:
        return []
    first: dict[Any, int] = {}
    problems = []
    for i, v in enumerate(manifest.table[col].tolist()):
        if is_empty(v):
            problems.append(Problem(manifest.source_row(i), col, "missing_id",
                                    "id is missing"))
            continue
        key = str(v)
        if key in first:
            problems.append(Problem(manifest.source_row(i), col, "duplicate_id",
                                    f"id {key!r} is also on row {first[key]}"))
        else:
            first[key] = manifest.source_row(i)
    return problems


class _FileVerdicts:
    """Remembers the verdict on each media file, so that a file shared by many rows
    (an image with 20 questions) is decoded once per validation."""

    def __init__(self, manifest: Manifest, options: DecodeOptions) -> None:
        self.manifest, self.options = manifest, options
        self.seen: dict[tuple[str, str], MediaError | bool] = {}

    def decode(self, row: int, column: str) -> bool:
        """True when the cell holds a value, False when empty; raises MediaError."""
        spec = self.manifest.schema[column]
        if spec.source != "path" or not spec.role.is_modality:
            return self.manifest.decode(row, column, self.options) is not None
        path = self.manifest.resolve(row, column)  # raises located errors itself
        if path is None:
            return False
        key = (spec.role.value, str(path))
        if key not in self.seen:
            try:  # a text file of only whitespace decodes to None: the row lacks text
                self.seen[key] = self.manifest.decode(row, column, self.options) is not None
            except MediaError as err:
                self.seen[key] = err
        verdict = self.seen[key]
        if isinstance(verdict, MediaError):
            raise verdict.at(row=self.manifest.source_row(row), column=column, path=str(path))
        return verdict


def _check_row(verdicts: _FileVerdicts, row: int, columns: Sequence[str],
               required: set[str]) -> tuple[int, dict[str, str], list[Problem]]:
    manifest = verdicts.manifest
    states: dict[str, str] = {}
    problems: list[Problem] = []
    for col in columns:
        try:
            has_value = verdicts.decode(row, col)
        except MediaError as err:
            states[col] = "bad"
            problems.append(Problem.from_error(err.at(manifest=manifest.source,
                                                      row=manifest.source_row(row),
                                                      column=col)))
            continue
        if not has_value:
            states[col] = "empty"
            role = manifest.schema[col].role.value
            if col in required or role in required:
                problems.append(Problem(manifest.source_row(row), col, "missing_required",
                                        f"{role} is required but the cell is empty"))
        else:
            states[col] = "present"
    return row, states, problems


def validate(manifest: Manifest, *, require: Iterable[str] = (),
             options: DecodeOptions | None = None, label_type: LabelType = "auto",
             workers: int = 1, show_progress: bool = True) -> ValidationReport:
    """Decode every media cell, check labels, ids and numbers; return the report.

    Args:
        manifest: what to check.
        require: modalities ("image") or column names that every row must have.
        options: decoding options (image mode, sample rate, size limits).
        label_type: "numeric" to demand numbers (regression), "categorical", or "auto"
            (the type most labels have).
        workers: threads that decode in parallel; they pay off for large images and
            SVGs, not for small files (see docs/benchmarks.md).
        show_progress: show a progress bar.
    """
    options = options or DecodeOptions()
    required = set(require)
    known = set(manifest.table.columns) | {r.value for r in Role if r.is_modality}
    unknown = required - known
    if unknown:
        raise ValueError(f"require={sorted(unknown)} names no column or modality of "
                         f"{manifest.source}")
    columns = [c for c, spec in manifest.schema.columns.items()
               if spec.role.is_modality or spec.role is Role.NUMERIC]
    report = ValidationReport(source=manifest.source, n_rows=len(manifest),
                              label_column=manifest.schema.label)
    report.columns = {c: ColumnSummary(c, manifest.schema[c].role.value) for c in columns}
    modality_cols = set(manifest.modality_columns)
    verdicts = _FileVerdicts(manifest, options)

    def check(row: int) -> tuple[int, dict[str, str], list[Problem]]:
        return _check_row(verdicts, row, columns, required)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, \
            progress_bar(f"validating {Path(manifest.source).name}", len(manifest),
                         enabled=show_progress) as advance:
        rows = range(len(manifest))
        results = map(check, rows) if workers <= 1 else pool.map(check, rows)
        for _row, states, problems in results:
            for col, state in states.items():
                summary = report.columns[col]
                setattr(summary, state, getattr(summary, state) + 1)
            if modality_cols and all(states.get(c) != "present" for c in modality_cols):
                report.rows_without_modality += 1
            report.problems.extend(problems)
            advance(1)
    report.problems.extend(check_labels(manifest, label_type))
    report.problems.extend(check_ids(manifest))
    report.problems.sort(key=lambda p: (p.row if p.row is not None else -1, p.column or ""))
    if manifest.schema.label is not None:
        counts = pd.Series(manifest.table[manifest.schema.label]).dropna().astype(str)
        report.label_counts = {str(k): int(v) for k, v in counts.value_counts().items()}
    return report
