"""Shard folders: a manifest's rows decoded once and written as WebDataset tar shards.

:func:`write_shards` decodes every row of a manifest (pictures fitted in a square and
stored as PNG, sounds resampled to float32 mono, texts as UTF-8; see
:mod:`~polymodal.data.shard_codec`) and writes them in order into tar shards of
``shard_rows`` rows each, one sequence of shards per split when the manifest has a
split column. Bad rows are left out and reported as :func:`~polymodal.data.validate`
reports them. The folder's ``polymodal-shards.json`` is written last: its shard format
version, the schema, and each shard's rows, size and checksum; ``index.parquet`` holds
each row's manifest row, id, label and split.

:func:`open_shards` (also :func:`read`) gives a :class:`~polymodal.data.shard_source.ShardSource`
that streams the rows to a model (:mod:`~polymodal.data.shard_stream`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from polymodal.data.errors import ON_ERROR_CHOICES, MediaError, OnError, Problem
from polymodal.data.manifest import DecodeOptions, Manifest
from polymodal.data.schema import Role
from polymodal.data.shard_codec import encode_row
from polymodal.data.shard_source import (
    INDEX_FILE,
    META_FILE,
    SHARD_FORMAT,
    ShardError,
    ShardSource,
    open_shards,
    present_key,
)
from polymodal.data.validation import ColumnSummary, ValidationReport
from polymodal.progress import progress_bar

__all__ = ["INDEX_FILE", "META_FILE", "SHARD_FORMAT", "ShardError", "ShardReport",
           "ShardSource", "open_shards", "read", "write_shards"]

read = open_shards  # polymodal.data.shards.read(path): the same as open_shards
BLOCK = 64  # rows decoded together by the worker threads


@dataclass
class ShardReport(ValidationReport):
    """What :func:`write_shards` did: a validation report of the rows it decoded (the
    bad ones left out) plus the folder, its shards and the rows written."""

    path: Path = Path()
    shards: list[dict[str, Any]] = field(default_factory=list)
    rows_written: int = 0


def _split_groups(m: Manifest) -> list[tuple[str, Manifest]]:
    """(split name, its rows) in a stable order; one group "all" without a split column."""
    if m.schema.split is None:
        return [("all", m)]
    names = sorted({str(v).strip().lower() for v in m.table[m.schema.split].dropna()})
    groups = [(n, m.subset([i for i, v in enumerate(m.table[m.schema.split].tolist())
                            if str(v).strip().lower() == n])) for n in names]
    unsplit = [i for i, v in enumerate(m.table[m.schema.split].tolist())
               if not isinstance(v, str) or not v.strip()]
    if unsplit:
        groups.append(("all", m.subset(unsplit)))
    return groups


def _decode(m: Manifest, row: int, columns: dict[str, Role], options: DecodeOptions,
            required: set[str]) -> tuple[dict[str, tuple[Role, Any]], dict[str, Any],
                                         list[Problem], dict[str, str]]:
    """(cells, fields, problems, per-column state) of one row; never raises MediaError."""
    cells: dict[str, tuple[Role, Any]] = {}
    problems: list[Problem] = []
    states: dict[str, str] = {}
    for col, role in columns.items():
        try:
            value = m.decode(row, col, options)
        except MediaError as err:
            states[col] = "bad"
            problems.append(Problem.from_error(err.at(manifest=m.source,
                                                      row=m.source_row(row), column=col)))
            continue
        states[col] = "empty" if value is None else "present"
        if value is None and (col in required or role.value in required):
            problems.append(Problem(m.source_row(row), col, "missing_required",
                                    f"{role.value} is required but the cell is empty",
                                    manifest=m.source))
        cells[col] = (role, value)
    fields: dict[str, Any] = {"row": m.source_row(row), "id": None, "label": m.label(row)}
    if m.schema.id is not None:
        fields["id"] = m.value(row, m.schema.id)
    for col, spec in m.schema.columns.items():
        if spec.role in (Role.NUMERIC, Role.CATEGORICAL) and col not in columns:
            fields[col] = m.value(row, col)
    return cells, fields, problems, states


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _ShardSequence:
    """Writes one split's rows into ``<split>-NNNNNN.tar`` shards of ``shard_rows``."""

    def __init__(self, out: Path, split: str, shard_rows: int, first: int) -> None:
        self.out, self.split, self.shard_rows = out, split, shard_rows
        self.position = first
        self.shards: list[dict[str, Any]] = []
        self._writer: Any = None
        self._count = 0

    def write(self, sample: dict[str, Any]) -> None:
        import webdataset as wds

        if self._writer is None:
            name = f"{self.split}-{len(self.shards):06d}.tar"
            self.shards.append({"name": name, "split": self.split, "first": self.position,
                                "rows": 0})
            self._writer = wds.TarWriter(str(self.out / name), encoder=False, mtime=0)
        self._writer.write(sample)
        self.shards[-1]["rows"] += 1
        self.position += 1
        if self.shards[-1]["rows"] >= self.shard_rows:
            self.close()

    def close(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._writer = None
        entry = self.shards[-1]
        path = self.out / entry["name"]
        entry["bytes"] = path.stat().st_size
        entry["sha256"] = _file_digest(path)


def _blocks(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def write_shards(manifest: Manifest | Any, out: str | os.PathLike[str], *,
                 shard_rows: int = 1000, image_size: int | None = 256,
                 options: DecodeOptions | None = None, on_error: OnError = "skip",
                 require: Iterable[str] = (), workers: int = 1, overwrite: bool = False,
                 show_progress: bool = True) -> ShardReport:
    """Decode every row of ``manifest`` and write it into tar shards under ``out``.

    Args:
        manifest: the rows (a :class:`Manifest` or anything :meth:`Manifest.read` takes).
        out: the shard folder (created; refused when it holds a shard folder already,
            unless ``overwrite``).
        shard_rows: rows per shard (the last shard of each split may hold fewer).
        image_size: pictures are fitted inside this square (never enlarged; None:
            stored at their size). A model's preprocess still resizes to its input.
        options: decoding options (image mode, sample rate, limits), as for training.
        on_error: "skip" leaves bad rows out and reports them; "raise" stops at the
            first bad row and names it.
        require: modalities or columns every row must have.
        workers: decoding threads.
        overwrite: replace an existing shard folder.
        show_progress: show a progress bar.

    Returns:
        the report: every bad row (as :func:`validate` gives it), the shards written.
    """
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
    if shard_rows < 1:
        raise ValueError(f"shard_rows must be >= 1, got {shard_rows}")
    m = Manifest.read(manifest)
    options = options or DecodeOptions()
    out = Path(out)
    if (out / META_FILE).exists():
        if not overwrite:
            raise FileExistsError(f"{out} already holds a shard folder; pass overwrite=True "
                                  "(--overwrite) to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    columns = dict(sorted(m.modality_columns.items()))
    required = set(require)
    report = ShardReport(source=m.source, n_rows=len(m), label_column=m.schema.label,
                         path=out)
    report.columns = {c: ColumnSummary(c, r.value) for c, r in columns.items()}
    index: dict[str, list[Any]] = {"position": [], "row": [], "id": [], "label": [],
                                   "split": [], **{present_key(c): [] for c in columns}}
    sequences: list[_ShardSequence] = []
    position = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, \
            progress_bar(f"sharding {Path(m.source).name}", len(m),
                         enabled=show_progress) as advance:
        for split, part in _split_groups(m):
            seq = _ShardSequence(out, split, shard_rows, position)
            sequences.append(seq)
            for block in _blocks(len(part), BLOCK):
                def decode(row: int, part: Manifest = part) -> tuple:
                    return _decode(part, row, columns, options, required)
                for cells, fields, problems, states in pool.map(decode, block):
                    for col, state in states.items():
                        setattr(report.columns[col], state,
                                getattr(report.columns[col], state) + 1)
                    if problems:
                        if on_error == "raise":
                            seq.close()
                            raise problems[0].to_error()
                        report.problems.extend(problems)
                        continue
                    if all(v is None for _, v in cells.values()):
                        report.rows_without_modality += 1
                    seq.write(encode_row(seq.position, cells, fields, image_size))
                    for key, value in (("position", seq.position - 1),
                                       ("row", fields["row"]), ("id", fields["id"]),
                                       ("label", fields["label"]), ("split", split)):
                        index[key].append(value)
                    for col in columns:
                        index[present_key(col)].append(cells.get(col, (None, None))[1]
                                                       is not None)
                advance(len(block))
            seq.close()
            position = seq.position
    report.shards = [s for seq in sequences for s in seq.shards]
    report.rows_written = position
    labels = [None if v is None else str(v) for v in index["label"]]
    counts: dict[str, int] = {}
    for v in labels:
        if v is not None:
            counts[v] = counts.get(v, 0) + 1
    report.label_counts = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
    table = pa.table({"position": pa.array(index["position"], pa.int64()),
                      "row": pa.array(index["row"], pa.int64()),
                      "id": pa.array([None if v is None else str(v) for v in index["id"]],
                                     pa.string()),
                      "label": _label_array(index["label"]),
                      "split": pa.array(index["split"], pa.string()),
                      **{present_key(c): pa.array(index[present_key(c)], pa.bool_())
                         for c in columns}})
    pq.write_table(table, out / INDEX_FILE)
    if report.problems:
        report.to_skip_report().write(out / "problems.csv")
    _write_meta(out, m, report, image_size, options)
    return report


def _label_array(labels: list[Any]) -> pa.Array:
    """Labels as one Arrow type: numbers stay numbers, anything else becomes text."""
    given = [v for v in labels if v is not None]
    if given and all(isinstance(v, int | float) and not isinstance(v, bool) for v in given):
        kind = pa.int64() if all(isinstance(v, int) for v in given) else pa.float64()
        return pa.array(labels, kind)
    return pa.array([None if v is None else str(v) for v in labels], pa.string())


def _write_meta(out: Path, m: Manifest, report: ShardReport, image_size: int | None,
                options: DecodeOptions) -> None:
    from polymodal import __version__

    schema = m.schema.to_dict()
    for spec in schema.values():  # a text that was a file is now inline in the shard
        if spec["role"] == Role.TEXT.value:
            spec["source"] = "inline"
    meta = {"format": SHARD_FORMAT, "polymodal": __version__, "source": m.source,
            "rows": report.rows_written, "schema": schema, "image_size": image_size,
            "image_mode": options.image_mode, "sample_rate": options.sample_rate,
            "bad_rows": len(report.bad_rows), "shards": report.shards}
    tmp = out / (META_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    os.replace(tmp, out / META_FILE)
