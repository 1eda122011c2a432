"""Streaming a shard folder to a model: each process and worker reads its own rows.

Each epoch has a plan that is a function of (seed, epoch, world size) only: the pieces
of shards in a seeded order, their rows one stream, cut into ``world_size`` equal
spans (process ``rank`` reads span ``rank``; under several processes the fewer than
``world_size`` rows left over sit out this epoch, others the next), each span's rows
shuffled inside windows of ``window`` consecutive rows, then cut into batches. A
DataLoader worker takes a contiguous run of its process's batches, so it reads only
its own stretch of shards, sequentially, holding about one window of rows.

:class:`ShardLoader` is a DataLoader with ``state_dict`` / ``load_state_dict`` (what
Lightning saves in a checkpoint): a loader restored mid-epoch yields the rest of that
epoch's batches, the same ones an uninterrupted run would have.
"""

from __future__ import annotations

import os
import tarfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from polymodal.data.dataset import Example, SkippedRow, collate_examples, image_to_tensor
from polymodal.data.errors import ON_ERROR_CHOICES, CellLocation, MediaError, OnError, Problem
from polymodal.data.schema import Role
from polymodal.data.shard_codec import decode_row, key_position
from polymodal.data.shard_files import open_file
from polymodal.data.shard_source import Piece, ShardError, ShardSource, shard_problems

# Lightning warns of any iterable dataset with a length under several workers; a
# ShardDataset's length is exact, each worker yielding its own run of batches
warnings.filterwarnings("ignore", message="Your `IterableDataset` has `__len__` defined")


def process_group() -> tuple[int, int]:
    """(rank, world size): the process group's, else RANK / WORLD_SIZE, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _read_piece(source: ShardSource, piece: Piece, wanted: Callable[[int], bool]
                ) -> Iterator[tuple[int, dict[str, bytes]]]:
    """(position, members) of the rows of ``piece`` that ``wanted`` keeps, in order.

    Raises:
        ShardError: the shard is missing or breaks off (names the rows not read).
    """
    from webdataset.tariterators import tar_file_iterator

    rows = piece.positions
    last = rows.stop - 1
    done = rows.start - 1
    current: tuple[int, dict[str, bytes]] | None = None

    def keep(name: str) -> bool:
        pos = key_position(name)
        return pos is not None and pos in rows and wanted(pos)

    try:
        with open_file(source.path, piece.shard) as fh:
            for member in tar_file_iterator(fh, select_files=keep):
                pos = key_position(member["fname"])
                if current is not None and current[0] != pos:
                    yield current
                    done = current[0]
                    if done >= last:
                        return
                current = (pos, {} if current is None or current[0] != pos
                           else current[1])
                current[1][member["fname"].split(".", 1)[1]] = member["data"]
    except (OSError, tarfile.TarError, ValueError) as exc:
        rest = range(done + 1, rows.stop)
        raise ShardError(f"{source.path}: shard {piece.shard} breaks off ({exc}); rows "
                         f"{rest.start}-{rest.stop - 1} of the folder not read") from None
    if current is not None:
        yield current
        done = current[0]
    if done < last and any(wanted(p) for p in range(done + 1, rows.stop)):
        raise ShardError(f"{source.path}: shard {piece.shard} ends early (truncated); rows "
                         f"{done + 1}-{last} of the folder not read")


def iter_rows(source: ShardSource, columns: Mapping[str, Role], *,
              pieces: Sequence[tuple[Piece, int]] | None = None,
              wanted: Callable[[int], bool] = lambda _p: True, on_error: OnError = "raise"
              ) -> Iterator[tuple[int, dict[str, Any] | None, dict[str, Any] | Problem]]:
    """(position, cells, fields) of every row of ``pieces`` (default: the source's, each
    with its offset in the row stream) whose stream offset ``wanted`` keeps, in order;
    under ``on_error="skip"`` a row that cannot be read comes as
    (position, None, problem)."""
    mode = source.meta.get("image_mode", "RGB")
    if pieces is None:
        offsets = np.cumsum([0] + [p.count for p in source.pieces]).tolist()
        pieces = list(zip(source.pieces, offsets, strict=False))
    for piece, offset in pieces:
        position = piece.positions.start - 1
        first = piece.positions.start

        def keep(pos: int, shift: int = offset - first) -> bool:
            return wanted(pos + shift)

        try:
            for position, members in _read_piece(source, piece, keep):
                try:
                    cells, fields = decode_row(members, dict(columns), mode)
                except MediaError as err:
                    if on_error == "raise":
                        raise err.at(manifest=source.source, row=position) from None
                    yield position, None, Problem.from_error(err.at(manifest=source.source,
                                                                    row=position))
                    continue
                yield position, cells, fields
        except ShardError as err:
            if on_error == "raise":
                raise
            shard = next(s for s in source.meta["shards"] if s["name"] == piece.shard)
            rest = [r for r in range(position + 1, piece.positions.stop) if keep(r)]
            why = str(err).split(": ", 1)[-1]
            for r, problem in zip(rest, shard_problems(source.path, source.meta, shard, rest,
                                                       "truncated_shard", why), strict=True):
                yield r, None, problem


class ShardDataset(IterableDataset):
    """The rows of a :class:`ShardSource` as collated :class:`Batch` es, planned per epoch.

    Rows come out as :class:`MultimodalDataset` gives them: each column's decoded
    value through ``transforms`` (by column or modality; pictures without one become
    (C, H, W) tensors), the label through ``label_transform``; a bad row is a
    :class:`SkippedRow` under ``on_error="skip"`` (it lands in ``Batch.skipped``).
    """

    def __init__(self, source: ShardSource, *, batch_size: int = 32,
                 transforms: Mapping[str, Callable[[Any], Any]] | None = None,
                 columns: Sequence[str] | None = None, shuffle: bool = False, seed: int = 0,
                 rank: int | None = None, world_size: int | None = None,
                 drop_last: bool = False, label_transform: Callable[[Any], Any] | None = None,
                 on_error: OnError = "raise", window: int = 512) -> None:
        if on_error not in ON_ERROR_CHOICES:
            raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
        if batch_size < 1 or window < 1:
            raise ValueError("batch_size and window must be >= 1")
        available = source.modality_columns
        wanted = sorted(columns) if columns is not None else sorted(available)
        missing = [c for c in wanted if c not in available]
        if missing:
            raise ValueError(f"columns {missing} are not modality columns of {source.path}; "
                             f"modality columns: {sorted(available)}")
        self.source, self.columns = source, {c: available[c] for c in wanted}
        self.batch_size, self.transforms = batch_size, dict(transforms or {})
        self.shuffle, self.seed, self.window = shuffle, seed, window
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.label_transform, self.on_error = label_transform, on_error
        self.epoch = 0
        self.skip: dict[int, int] = {}  # worker -> batches already consumed (resume)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def group(self) -> tuple[int, int]:
        """(rank, world size) this dataset reads for."""
        rank, world = process_group()
        return (rank if self.rank is None else self.rank,
                world if self.world_size is None else self.world_size)

    # -- the plan -------------------------------------------------------------------
    def _stream(self) -> tuple[list[tuple[Piece, int]], int]:
        """The epoch's pieces in order, each with its offset in the row stream."""
        pieces = list(self.source.pieces)
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch])
            pieces = [pieces[i] for i in rng.permutation(len(pieces))]
        out, offset = [], 0
        for p in pieces:
            out.append((p, offset))
            offset += p.count
        return out, offset

    def span(self) -> tuple[int, int]:
        """(first stream offset, rows) of this process's share of the epoch."""
        rank, world = self.group()
        n = len(self.source)
        share = n if world == 1 else n // world
        return rank * share, share

    def n_batches(self) -> int:
        """Batches this process yields in an epoch (``drop_last`` drops a partial last
        batch, not the only one: a share smaller than a batch is one batch)."""
        _, share = self.span()
        if self.drop_last and share >= self.batch_size:
            return share // self.batch_size
        return -(-share // self.batch_size)

    def worker_batches(self, workers: int) -> list[range]:
        """The contiguous run of this process's batches each worker yields."""
        nb = self.n_batches()
        return [range(k * nb // workers, (k + 1) * nb // workers) for k in range(workers)]

    def _blocks(self, start: int, share: int, first_row: int, stop_row: int
                ) -> Iterator[np.ndarray]:
        """Stream offsets of span rows ``first_row .. stop_row`` in epoch order, a
        shuffle window at a time (the epoch's order is never held whole: at a million
        rows it would be tens of MB of Python ints)."""
        w = self.window
        skip, remaining = first_row - (first_row // w) * w, stop_row - first_row
        for lo in range((first_row // w) * w, stop_row, w):
            if remaining <= 0:
                return
            block = np.arange(lo, min(lo + w, share))
            if self.shuffle:
                rng = np.random.default_rng([self.seed, self.epoch, start + lo])
                block = block[rng.permutation(len(block))]
            block = block[skip: skip + remaining]
            skip, remaining = 0, remaining - len(block)
            yield block + start

    # -- reading --------------------------------------------------------------------
    def _example(self, position: int, cells: dict[str, Any], fields: dict[str, Any]
                 ) -> Example:
        inputs = {}
        for col, value in cells.items():
            role = self.columns[col]
            fn = self.transforms.get(col) or self.transforms.get(role.value)
            if value is None:
                inputs[col] = None
            elif fn is not None:
                inputs[col] = fn(value)
            elif role is Role.IMAGE:
                inputs[col] = image_to_tensor(value)
            elif role is Role.AUDIO:
                inputs[col] = torch.from_numpy(value)
            else:
                inputs[col] = value
        label = fields.get("label")
        if label is not None and self.label_transform is not None:
            try:
                label = self.label_transform(label)
            except (KeyError, ValueError):
                raise MediaError(f"label {label!r} is not one of the known classes",
                                 kind="bad_label", location=CellLocation(
                                     manifest=self.source.meta.get("source"),
                                     row=fields.get("row"))) from None
        ident = fields.get("id")
        return Example(position, str(fields.get("row") if ident is None else ident),
                       inputs, label)

    def _rows(self, pieces: list[tuple[Piece, int]], span: tuple[int, int, int, int]
              ) -> Iterator[Example | SkippedRow]:
        start, share, first_row, stop_row = span
        if stop_row <= first_row:
            return
        w = self.window
        # every offset the order holds lies in these whole windows
        lo = start + (first_row // w) * w
        hi = start + min(share, -(-stop_row // w) * w)
        need = np.zeros(hi - lo, dtype=bool)
        for block in self._blocks(*span):
            need[block - lo] = True
        mine = [(p, off) for p, off in pieces if off < hi and off + p.count > lo]
        starts = np.array([off for _, off in mine], dtype=np.int64)

        def wanted(offset: int) -> bool:
            return lo <= offset < hi and bool(need[offset - lo])

        rows = iter_rows(self.source, self.columns, pieces=mine,
                         wanted=wanted, on_error=self.on_error)
        held: dict[int, Any] = {}
        for offset in (o for block in self._blocks(*span) for o in block.tolist()):
            k = int(np.searchsorted(starts, offset, side="right")) - 1
            target = mine[k][0].positions.start + offset - int(starts[k])
            while target not in held:
                position, cells, fields = next(rows)
                held[position] = (cells, fields)
            cells, fields = held.pop(target)
            if cells is None:
                yield SkippedRow(target, [fields])
                continue
            try:
                yield self._example(target, cells, fields)
            except MediaError as err:
                if self.on_error == "raise":
                    raise
                yield SkippedRow(target, [Problem.from_error(err)])

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        batches = self.worker_batches(workers)[worker]
        start_batch = batches.start + self.skip.get(worker, 0)
        if start_batch >= batches.stop:
            return
        start, share = self.span()
        first_row = start_batch * self.batch_size
        stop_row = min(share, batches.stop * self.batch_size)
        pieces, _ = self._stream()
        items: list[Example | SkippedRow] = []
        for item in self._rows(pieces, (start, share, first_row, stop_row)):
            items.append(item)
            if len(items) == self.batch_size:
                yield collate_examples(items)
                items = []
        if items:
            yield collate_examples(items)

    def __len__(self) -> int:
        return self.n_batches()


def _consumed_per_worker(counts: list[int], consumed: int) -> dict[int, int]:
    """Batches each worker had given when a DataLoader (which takes them round robin,
    passing over a worker that is done) had yielded ``consumed``."""
    done = dict.fromkeys(range(len(counts)), 0)
    while consumed > 0 and any(done[k] < counts[k] for k in done):
        for k in done:
            if consumed and done[k] < counts[k]:
                done[k] += 1
                consumed -= 1
    return done


class ShardLoader(DataLoader):
    """A DataLoader of a :class:`ShardDataset` that knows where it is in an epoch.

    Each new pass over it is the next epoch (Lightning does not set an epoch on an
    iterable dataset); :meth:`state_dict` records (epoch, batches yielded), and
    :meth:`load_state_dict` makes the next pass the rest of that epoch.
    """

    def __init__(self, dataset: ShardDataset, num_workers: int = 0, **kwargs: Any) -> None:
        super().__init__(dataset, batch_size=None, num_workers=num_workers, **kwargs)
        self._epoch, self._yielded, self._resume = -1, 0, False
        self._next: int | None = None

    def set_epoch(self, epoch: int) -> None:
        """Plan the next pass as epoch ``epoch`` (a trainer's count, so that a run
        resumed at an epoch's end reads the next epoch as an unbroken run does); a pass
        restored mid-epoch by :meth:`load_state_dict` keeps its own."""
        self._next = epoch

    def __iter__(self) -> Iterator[Any]:
        ds: ShardDataset = self.dataset  # type: ignore[assignment]
        if self._resume:
            self._resume = False
        else:
            self._epoch = self._epoch + 1 if self._next is None else self._next
            self._yielded = 0
        self._next = None
        ds.set_epoch(self._epoch)
        workers = max(1, self.num_workers)
        counts = [len(r) for r in ds.worker_batches(workers)]
        ds.skip = _consumed_per_worker(counts, self._yielded)
        for batch in super().__iter__():
            self._yielded += 1
            yield batch
        ds.skip = {}

    def __len__(self) -> int:
        return self.dataset.n_batches()  # type: ignore[attr-defined]

    def state_dict(self) -> dict[str, Any]:
        """Where this loader is: the epoch and how many of its batches were yielded."""
        return {"epoch": max(self._epoch, 0), "batches": self._yielded,
                "num_workers": self.num_workers, "world_size": self.dataset.group()[1]}  # type: ignore[attr-defined]

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Make the next pass the rest of the epoch ``state`` was taken in."""
        world = self.dataset.group()[1]  # type: ignore[attr-defined]
        if state.get("world_size", world) != world or \
                state.get("num_workers", self.num_workers) != self.num_workers:
            raise ShardError(f"this loader's state was saved with world size "
                             f"{state.get('world_size')} and {state.get('num_workers')} "
                             f"workers; resume with the same (now {world}, "
                             f"{self.num_workers})")
        self._epoch, self._yielded, self._resume = int(state["epoch"]), int(state["batches"]), True
