"""An opened shard folder: its schema, labels and rows, checked before anything reads.

:func:`open_shards` reads ``polymodal-shards.json`` (refusing a folder written in a
newer shard format, with the polymodal version that reads it), checks that every
shard is there at its recorded size, and gives a :class:`ShardSource`: the rows as
pieces of shards, split and held out by whole shards, streamed to a model by
:meth:`ShardSource.loader` (:mod:`~polymodal.data.shard_stream`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from polymodal.data.errors import ON_ERROR_CHOICES, DataError, OnError, Problem
from polymodal.data.schema import Role, Schema, split_names
from polymodal.data.shard_files import Where, file_size, join, location, open_file

META_FILE = "polymodal-shards.json"
INDEX_FILE = "index.parquet"
SHARD_FORMAT = 1


class ShardError(DataError):
    """A shard folder, or one of its shards, that cannot be read; says which rows."""


@dataclass(frozen=True)
class Piece:
    """Rows ``start .. start + count`` (counted inside the shard) of one shard file."""

    shard: str
    first: int  # the folder position of the shard's first row
    start: int
    count: int

    @property
    def positions(self) -> range:
        return range(self.first + self.start, self.first + self.start + self.count)


def present_key(column: str) -> str:
    """The index column that says, per row, whether ``column`` holds a value."""
    return f"present:{column}"


def _describe(rows: range) -> str:
    return f"rows {rows.start}-{rows.stop - 1} of the folder" if len(rows) else "no rows"


class ShardSource:
    """The rows of a shard folder (or a part of it), as a model reads them.

    Attributes:
        path: the folder (a local path, or its URL as given).
        meta: the folder's ``polymodal-shards.json``.
        pieces: the shards (or parts of shards) this source reads, in folder order.
        problems: rows of shards found missing or truncated at open (``on_error="skip"``).
    """

    def __init__(self, path: Where, meta: dict[str, Any], pieces: list[Piece],
                 on_error: OnError = "raise", problems: list[Problem] | None = None) -> None:
        self.path, self.meta, self.pieces, self.on_error = path, meta, pieces, on_error
        self.problems = list(problems or [])
        self._index: Any = None

    def __len__(self) -> int:
        return sum(p.count for p in self.pieces)

    def __repr__(self) -> str:
        return f"ShardSource({str(self.path)!r}, rows={len(self)}, shards={len(self.pieces)})"

    @property
    def source(self) -> str:
        """What errors name: the folder."""
        return str(self.path)

    @property
    def schema(self) -> Schema:
        """The roles of the columns, as the manifest had them (texts now inline)."""
        return Schema.from_dict(self.meta["schema"])

    @property
    def modality_columns(self) -> dict[str, Role]:
        return self.schema.modality_columns

    @property
    def splits(self) -> list[str]:
        return sorted({s["split"] for s in self.meta["shards"]})

    def _with(self, pieces: list[Piece]) -> ShardSource:
        out = ShardSource(self.path, self.meta, pieces, self.on_error, self.problems)
        out._index = self._index
        return out

    def split(self, name: str) -> ShardSource:
        """The rows of one split ("train", "val", ...) of the manifest that was sharded."""
        split_of = {s["name"]: s["split"] for s in self.meta["shards"]}
        wanted = split_names(name)
        pieces = [p for p in self.pieces if split_of[p.shard] in wanted]
        if not pieces:
            raise ShardError(f"{self.path}: no shards of split {name!r}; splits: {self.splits}")
        return self._with(pieces)

    def holdout(self, fraction: float = 0.1, seed: int = 0) -> tuple[ShardSource, ShardSource]:
        """(rows to train on, rows to tune on): a seeded ``fraction`` of the shards held
        out (at least one); with a single shard, its last rows."""
        pieces = self.pieces
        if len(pieces) == 1:
            p = pieces[0]
            n_val = max(1, int(p.count * fraction))
            return (self._with([replace(p, count=p.count - n_val)]),
                    self._with([replace(p, start=p.start + p.count - n_val, count=n_val)]))
        order = np.random.default_rng(seed).permutation(len(pieces))
        n_val = max(1, round(len(pieces) * fraction))
        held = set(order[:n_val].tolist())
        return (self._with([p for i, p in enumerate(pieces) if i not in held]),
                self._with([p for i, p in enumerate(pieces) if i in held]))

    def _arrow(self) -> Any:
        """The folder's ``index.parquet`` as an Arrow table (read once per folder; its
        row k is folder position k), shared by the sources cut from it."""
        if self._index is None:
            import pyarrow as pa
            import pyarrow.parquet as pq

            with open_file(self.path, INDEX_FILE) as fh:  # in batches: less held at once
                parquet = pq.ParquetFile(fh)
                batches = parquet.iter_batches(batch_size=65536, use_threads=False)
                self._index = pa.Table.from_batches(list(batches),
                                                    schema=parquet.schema_arrow)
        return self._index

    def _column(self, name: str) -> Any:
        """Index column ``name`` for this source's rows (an Arrow array)."""
        column = self._arrow().column(name)
        positions = self.positions()
        if len(positions) == len(column) and (len(positions) == 0 or (
                positions[0] == 0 and positions[-1] == len(column) - 1)):
            return column  # the whole folder, in order: no copy
        import pyarrow as pa

        return column.take(pa.array(positions))

    def index(self) -> Any:
        """A pandas table of this source's rows: position, manifest row, id, label, split
        and the ``present:<column>`` flags."""
        import pandas as pd

        table = self._arrow()
        columns = {name: self._column(name).to_numpy(zero_copy_only=False)
                   for name in table.column_names}
        return pd.DataFrame(columns).set_index("position", drop=False)

    def labels(self) -> list[Any]:
        """Every row's label (None where it has none), in folder order."""
        return [None if v != v else v for v in self._column("label").to_pylist()]  # NaN

    # -- the rows as the estimators read a manifest's ---------------------------------
    @property
    def table(self) -> Any:
        """A table of this source's rows with the manifest's label and id columns (the
        media stay in the shards): what a task learns its classes from."""
        index = self.index().reset_index(drop=True)
        names = {"label": self.schema.label, "id": self.schema.id}
        return index.rename(columns={k: v for k, v in names.items() if v is not None})

    def _all_labels(self) -> list[Any]:
        if getattr(self, "_labels", None) is None:
            self._labels = self.labels()
        return self._labels

    def label(self, row: int) -> Any:
        """Row ``row``'s (counted in this source) label, or None."""
        return self._all_labels()[row]

    def ids(self) -> list[str]:
        """Each row's id: the manifest's id column where it had one, else its row."""
        return [str(r) if i is None or i != i else str(i)
                for i, r in zip(self._column("id").to_pylist(),
                                self._column("row").to_pylist(), strict=True)]

    def source_row(self, row: int) -> int:
        """The manifest row that row ``row`` of this source was sharded from."""
        if getattr(self, "_source_rows", None) is None:
            self._source_rows = self._column("row").to_numpy()
        return int(self._source_rows[row])

    def positions(self) -> np.ndarray:
        """The folder position of each row of this source, in order."""
        if getattr(self, "_positions", None) is None:
            self._positions = np.concatenate(
                [np.arange(p.positions.start, p.positions.stop) for p in self.pieces]
            ) if self.pieces else np.zeros(0, dtype=np.int64)
        return self._positions

    def rows_of(self, positions: Any) -> np.ndarray:
        """This source's row number of each folder position (a batch's ``indices``)."""
        return np.searchsorted(self.positions(), np.asarray(positions))

    def subset(self, rows: Sequence[int] | np.ndarray) -> ShardSource:
        """The given rows (counted in this source, kept in folder order) as pieces:
        each run of consecutive rows of one shard is one piece."""
        keep = np.zeros(len(self), dtype=bool)
        keep[np.asarray(list(rows), dtype=np.int64)] = True
        pieces, offset = [], 0
        for p in self.pieces:
            mask = keep[offset: offset + p.count]
            offset += p.count
            edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
            for a, b in zip(edges[::2], edges[1::2], strict=True):
                pieces.append(replace(p, start=p.start + int(a), count=int(b - a)))
        return self._with(pieces)

    def training_split(self, seed: int = 0, fraction: float = 0.1, minimum: int = 1
                       ) -> tuple[ShardSource, ShardSource]:
        """(rows to train on, rows to tune on): the "train" and "val" splits when the
        folder has a val split, else :meth:`holdout` (``minimum`` is one shard or row)."""
        split_of = {s["split"] for s in self.meta["shards"]}
        if split_of & split_names("val"):
            return self.split("train"), self.split("val")
        return self.holdout(fraction, seed)

    def select_modality_columns(self, wanted: Sequence[str] | None = None) -> list[str]:
        """The modality columns ``wanted`` names (by column or by modality); all of them
        when None (as a manifest's)."""
        return self.schema.select_modality_columns(wanted, self.source)

    def present(self, column: str) -> np.ndarray:
        """Per row: does ``column`` hold a value? (Every row, in a folder written before
        shards recorded it.)"""
        key = present_key(column)
        if key not in self._arrow().column_names:
            return np.ones(len(self), dtype=bool)
        return self._column(key).to_numpy(zero_copy_only=False).astype(bool)

    def is_empty_column(self, column: str) -> bool:
        """Is every row of ``column`` empty?"""
        return not self.present(column).any()

    def cells(self, column: str, on_error: OnError = "raise") -> Iterator[Any]:
        """Each row's decoded ``column`` value (None where the row lacks it), in folder
        order: what an encoder fits its vocabulary on."""
        from polymodal.data.shard_stream import iter_rows

        roles = {column: self.modality_columns[column]}
        for _position, cells, _fields in iter_rows(self, roles, on_error=on_error):
            yield cells[column] if cells is not None else None

    def dataset(self, **options: Any) -> Any:
        """A :class:`~polymodal.data.shard_stream.ShardDataset` over these rows."""
        from polymodal.data.shard_stream import ShardDataset

        options.setdefault("on_error", self.on_error)
        return ShardDataset(self, **options)

    def loader(self, transforms: Mapping[str, Callable[[Any], Any]] | None = None,
               batch_size: int = 32, *, rank: int | None = None,
               world_size: int | None = None, shuffle: bool = False, seed: int = 0,
               num_workers: int = 0, drop_last: bool = False,
               columns: Sequence[str] | None = None,
               label_transform: Callable[[Any], Any] | None = None,
               on_error: OnError | None = None, window: int = 512) -> Any:
        """A :class:`~polymodal.data.shard_stream.ShardLoader` of collated batches.

        ``rank`` / ``world_size`` default to the process group's (or RANK and
        WORLD_SIZE), read when an epoch starts; each process then reads its own equal
        share of the rows, cut into batches of ``batch_size``.
        """
        from polymodal.data.shard_stream import ShardLoader

        ds = self.dataset(transforms=transforms, batch_size=batch_size, rank=rank,
                          world_size=world_size, shuffle=shuffle, seed=seed,
                          drop_last=drop_last, columns=columns,
                          label_transform=label_transform,
                          on_error=on_error or self.on_error, window=window)
        return ShardLoader(ds, num_workers=num_workers)


def _refuse_newer(path: Where, meta: Mapping[str, Any]) -> None:
    from polymodal import __version__

    fmt = meta.get("format")
    if not isinstance(fmt, int):
        raise ShardError(f"{join(path, META_FILE)}: no shard format number; is this a shard "
                         "folder written by `polymodal shard`?")
    if fmt > SHARD_FORMAT:
        raise ShardError(f"{path} is in shard format {fmt}, written by polymodal "
                         f"{meta.get('polymodal', '?')}; this polymodal ({__version__}) "
                         f"reads formats up to {SHARD_FORMAT}: upgrade to polymodal "
                         f">= {meta.get('polymodal', '?')}")


def shard_problems(path: Where, meta: Mapping[str, Any], shard: Mapping[str, Any],
                   rows: Sequence[int], kind: str, why: str) -> list[Problem]:
    """One problem per row of ``rows`` (folder positions) of a bad shard, naming the
    shard and the row of the manifest each came from."""
    import pandas as pd

    try:
        with open_file(path, INDEX_FILE) as fh:
            index = pd.read_parquet(fh, columns=["position", "row"])
        source_row = dict(zip(index["position"], index["row"], strict=True))
    except (OSError, ValueError):
        source_row = {}
    span = range(min(rows), max(rows) + 1) if len(rows) else range(0)
    reason = f"shard {shard['name']} {why} ({_describe(span)})"
    return [Problem(int(source_row.get(r, r)), None, kind, reason,
                    path=str(join(path, shard["name"])), manifest=meta.get("source"))
            for r in rows]


def open_shards(path: str | os.PathLike[str], *, on_error: OnError = "raise") -> ShardSource:
    """Open a shard folder written by :func:`~polymodal.data.shards.write_shards`: a
    local folder, or a URL of one (``s3://``, ``gs://``, ``https://``, any protocol
    fsspec opens: :mod:`polymodal.data.shard_files`).

    A missing shard, or one whose size is not the recorded one (truncated), is named
    with its rows: ``on_error="raise"`` refuses the folder, ``"skip"`` leaves the
    shard out and lists its rows in :attr:`ShardSource.problems`.

    Raises:
        ShardError: no shard folder at ``path``, a newer shard format, a bad shard.
    """
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
    path = location(path)
    if file_size(path, META_FILE) is None:
        raise ShardError(f"{path}: not a shard folder (no {META_FILE}; write one with "
                         "`polymodal shard MANIFEST --out DIR`)")
    try:
        with open_file(path, META_FILE) as fh:
            meta = json.loads(fh.read().decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise ShardError(f"{join(path, META_FILE)}: unreadable ({exc})") from None
    _refuse_newer(path, meta)
    pieces: list[Piece] = []
    problems: list[Problem] = []
    for shard in meta["shards"]:
        rows = range(shard["first"], shard["first"] + shard["rows"])
        size = file_size(path, shard["name"])
        if size is None or size != shard.get("bytes", size):
            kind = "missing_shard" if size is None else "truncated_shard"
            why = "is missing" if size is None else \
                f"holds {size:,} bytes, not the {shard['bytes']:,} written"
            if on_error == "raise":
                raise ShardError(f"{path}: shard {shard['name']} {why} ({_describe(rows)}); "
                                 "rewrite the folder or open it with on_error='skip'")
            problems.extend(shard_problems(path, meta, shard, rows, kind, why))
            continue
        pieces.append(Piece(shard["name"], shard["first"], 0, shard["rows"]))
    return ShardSource(path, meta, pieces, on_error, problems)


def is_shard_folder(path: Any) -> bool:
    """Is ``path`` a folder written by ``polymodal shard`` (what the estimators ask)?"""
    try:
        return isinstance(path, str | os.PathLike) and \
            file_size(location(path), META_FILE) is not None
    except OSError:
        return False
