"""The one path from a manifest row to a model: a lazy torch Dataset and its collate.

:class:`MultimodalDataset` decodes a row only when it is asked for (in DataLoader
workers when there are some), applies per-column or per-modality transforms, and
returns an :class:`Example`. :func:`collate_examples` turns a list of examples into a
:class:`Batch`: one tensor (or list of strings) per modality column, keys sorted, with
a presence mask per column, because rows may lack a modality.

Under ``on_error="skip"`` a bad row becomes a :class:`SkippedRow`; collate moves it to
``Batch.skipped`` so that the consumer can write it to a :class:`SkipReport`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from polymodal.data.errors import ON_ERROR_CHOICES, MediaError, OnError, Problem, SkipReport
from polymodal.data.manifest import DecodeOptions, Manifest
from polymodal.data.media_cache import MediaCache, disk_transforms
from polymodal.data.schema import Role

Transform = Callable[[Any], Any]
CellLoader = Callable[[Manifest, int, str], Any]


@dataclass
class Example:
    """One decoded row: ``inputs`` maps modality column -> value (None when absent)."""

    index: int
    id: str
    inputs: dict[str, Any]
    label: Any = None


@dataclass
class SkippedRow:
    """A row left out under ``on_error="skip"``, with every problem it had."""

    index: int
    problems: list[Problem]


@dataclass
class Batch:
    """A collated batch. Dict keys are modality column names in sorted order.

    Attributes:
        indices: manifest rows of the batch, (B,).
        ids: row ids.
        inputs: per column, a tensor with a leading batch dim (zeros where absent) or a
            list of strings ("" where absent).
        present: per column, a bool tensor (B,): does the row have this modality?
        lengths: per variable-length column (audio), the true length of each row.
        labels: (B,) tensor for numeric or mapped labels, else a list, or None.
        skipped: problems of rows left out of this batch (``on_error="skip"``).
        skipped_indices: the dataset positions of those rows.
    """

    indices: torch.Tensor
    ids: list[str]
    inputs: dict[str, torch.Tensor | list[str]]
    present: dict[str, torch.Tensor]
    lengths: dict[str, torch.Tensor] = field(default_factory=dict)
    labels: torch.Tensor | list[Any] | None = None
    skipped: list[Problem] = field(default_factory=list)
    skipped_indices: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def to(self, device: torch.device | str) -> Batch:
        """Move every tensor to ``device``."""
        def move(x: Any) -> Any:
            return x.to(device) if isinstance(x, torch.Tensor) else x
        return Batch(move(self.indices), self.ids,
                     {k: move(v) for k, v in self.inputs.items()},
                     {k: move(v) for k, v in self.present.items()},
                     {k: move(v) for k, v in self.lengths.items()},
                     move(self.labels), self.skipped, self.skipped_indices)


def image_to_tensor(img: Image.Image, size: int | tuple[int, int] | None = None
                    ) -> torch.Tensor:
    """A Pillow image to a float tensor (C, H, W) in [0, 1], resized when ``size`` is set."""
    if size is not None:
        hw = (size, size) if isinstance(size, int) else size
        img = img.resize((hw[1], hw[0]), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(arr))


class DecodedCache:
    """Transformed cells by (column, file or text), filled until ``max_mb`` is reached and
    then left as it is: under shuffled reads an evicting cache would keep replacing what
    it holds, while a full one keeps a steady share of the hits."""

    def __init__(self, max_mb: float = 0) -> None:
        if max_mb < 0:
            raise ValueError(f"memory_cache_mb must be >= 0, got {max_mb}")
        self.max_bytes = int(max_mb * 2**20)
        self.bytes = 0
        self._cells: dict[tuple[str, str], torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._cells)

    @property
    def enabled(self) -> bool:
        """Whether the cache has a budget (off: the row's cell is not even looked up)."""
        return self.max_bytes > 0

    def get(self, column: str, cell: Any) -> torch.Tensor | None:
        """The cached tensor of ``cell`` (a file path, or a text) in ``column``, or None."""
        if not self.max_bytes or cell is None:
            return None
        return self._cells.get((column, str(cell)))

    def put(self, column: str, cell: Any, value: Any) -> None:
        """Keep ``value`` if it is a tensor and fits in what is left of the budget."""
        if not self.max_bytes or cell is None or not isinstance(value, torch.Tensor):
            return
        size = value.element_size() * value.nelement()
        if self.bytes + size <= self.max_bytes and (column, str(cell)) not in self._cells:
            self._cells[column, str(cell)] = value
            self.bytes += size


class MultimodalDataset(Dataset):
    """Rows of a manifest, decoded lazily, one at a time.

    Args:
        manifest: the rows (a :class:`Manifest`, or anything :meth:`Manifest.read` takes).
        columns: modality columns to load (default: all of them).
        transforms: per column name or per modality ("image", "audio", "text"), a
            function applied to the decoded value (e.g. an encoder's ``preprocess``).
            Images without one become (C, H, W) float tensors.
        image_size: resize images to this size in the default image transform.
        label_map: class -> index; labels become ints (a LongTensor in the batch).
        label_transform: a function of the raw label (overrides ``label_map``); a
            label it rejects (KeyError, ValueError) is a ``bad_label`` error.
        options: decoding options (image mode, sample rate, limits).
        on_error: "raise" stops at the first bad row and names it; "skip" leaves the
            row out of its batch and reports it in ``Batch.skipped``.
        require: modalities or columns every row must have (an empty cell is then an
            error, handled by ``on_error``).
        cell_loaders: per column, ``fn(manifest, row, column) -> features | None`` used
            instead of decode + transform (e.g. an encoder's feature cache, which may
            skip decoding altogether).
        memory_cache_mb: keep decoded and transformed image, audio and text cells in
            memory, by file (by the text itself for text), up to this many MiB (0: off),
            so a file that many rows name (a picture with twenty questions) or that
            every epoch reads again is decoded once, and a repeated text tokenized once.
            Only for deterministic transforms (no noise, no random augmentation); each
            DataLoader worker holds its own cache.
        media_cache: a :class:`~polymodal.data.media_cache.MediaCache`: image and audio
            cells the memory cache lacks are read from it, or decoded, preprocessed and
            stored in it for later epochs, runs and processes; only columns whose
            transform it can name (an encoder's ``preprocess``, the default; not noise).
    """

    def __init__(self, manifest: Manifest | Any, *, columns: Sequence[str] | None = None,
                 transforms: Mapping[str, Transform] | None = None,
                 image_size: int | tuple[int, int] | None = None,
                 label_map: Mapping[Any, int] | None = None,
                 options: DecodeOptions | None = None, on_error: OnError = "raise",
                 require: Iterable[str] = (),
                 cell_loaders: Mapping[str, CellLoader] | None = None,
                 label_transform: Transform | None = None,
                 memory_cache_mb: float = 0, media_cache: MediaCache | None = None) -> None:
        if on_error not in ON_ERROR_CHOICES:
            raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")
        self.manifest = Manifest.read(manifest)
        available = self.manifest.modality_columns
        wanted = list(columns) if columns is not None else list(available)
        missing = [c for c in wanted if c not in available]
        if missing:
            raise ValueError(f"columns {missing} are not modality columns of "
                             f"{self.manifest.source}; modality columns: {list(available)}")
        self.columns = sorted(wanted)
        self.roles = {c: available[c] for c in self.columns}
        self.transforms = dict(transforms or {})
        self.image_size = image_size
        if label_transform is None and label_map is not None:
            label_transform = dict(label_map).__getitem__
        self.options = options or DecodeOptions()
        self.on_error = on_error
        self.require = set(require)
        self.cell_loaders = dict(cell_loaders or {})
        self.label_transform = label_transform
        self._ids = self.manifest.ids()
        self.memory_cache = DecodedCache(memory_cache_mb)
        self.media_cache = media_cache
        self._media_keys = {} if media_cache is None else disk_transforms(  # col -> key
            self.roles, self.transforms, set(self.cell_loaders), image_size, self.options)

    def __len__(self) -> int:
        return len(self.manifest)

    def _transform(self, column: str, value: Any) -> Any:
        role = self.roles[column]
        fn = self.transforms.get(column) or self.transforms.get(role.value)
        if fn is not None:
            return fn(value)
        if role is Role.IMAGE:
            return image_to_tensor(value, self.image_size)
        if role is Role.AUDIO:
            return torch.from_numpy(value)
        return value

    def _label(self, index: int) -> Any:
        label = self.manifest.label(index)
        if label is None or self.label_transform is None:
            return label
        try:
            return self.label_transform(label)
        except (KeyError, ValueError):
            raise MediaError(f"label {label!r} is not one of the known classes",
                             kind="bad_label",
                             location=self.manifest.location(index, self.manifest.schema.label)
                             ) from None

    def load(self, index: int) -> Example:
        """Decode and transform one row; raises :class:`MediaError` on a bad cell."""
        inputs: dict[str, Any] = {}
        for col in self.columns:
            loader = self.cell_loaders.get(col)
            disk = None
            if loader is not None:
                value = loader(self.manifest, index, col)
            else:
                cell = self.manifest.value(index, col) if self.memory_cache.enabled else None
                cached = self.memory_cache.get(col, cell)
                if cached is not None:
                    inputs[col] = cached
                    continue
                if self.media_cache is not None and col in self._media_keys:
                    disk = self.media_cache.cell_key(self.manifest, index, col,
                                                     self._media_keys[col])
                if disk is not None and (stored := self.media_cache.get(disk)) is not None:
                    inputs[col] = stored
                    self.memory_cache.put(col, cell, stored)
                    continue
                value = self.manifest.decode(index, col, self.options)
            if value is None:
                if col in self.require or self.roles[col].value in self.require:
                    raise MediaError(f"{self.roles[col].value} is required but the cell is "
                                     "empty", kind="missing_required",
                                     location=self.manifest.location(index, col))
                inputs[col] = None
            elif loader is not None:
                inputs[col] = value
            else:
                try:
                    inputs[col] = self._transform(col, value)
                except MediaError as err:
                    raise err.at(manifest=self.manifest.source, row=self.manifest.source_row(index),
                                 column=col) from None
                if self.roles[col] in (Role.IMAGE, Role.AUDIO, Role.TEXT):
                    self.memory_cache.put(col, cell, inputs[col])
                if disk is not None:
                    self.media_cache.put(disk, inputs[col])
        return Example(index, self._ids[index], inputs, self._label(index))

    def __getitem__(self, index: int) -> Example | SkippedRow:
        try:
            return self.load(index)
        except MediaError as err:
            if self.on_error == "raise":
                raise
            return SkippedRow(index, [Problem.from_error(err)])

    def loader(self, batch_size: int = 32, *, shuffle: bool = False, num_workers: int = 0,
               **kwargs: Any) -> DataLoader:
        """A DataLoader over this dataset that collates into :class:`Batch`."""
        return DataLoader(self, batch_size=batch_size, shuffle=shuffle,
                          num_workers=num_workers, collate_fn=collate_examples,
                          persistent_workers=num_workers > 0, **kwargs)


class EpochShuffleSampler(torch.utils.data.Sampler[int]):
    """A shuffle whose order is a function of (seed, epoch) only, so a run resumed from
    a checkpoint sees the same batches as one never stopped (Lightning calls
    ``set_epoch`` each epoch)."""

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def collate_column(values: list[Any]) -> tuple[Any, torch.Tensor, torch.Tensor | None]:
    """Stack one column's values; zeros (or "") where absent; pad variable lengths."""
    present = torch.tensor([v is not None for v in values], dtype=torch.bool)
    given = [v for v in values if v is not None]
    if not given:
        return [""] * len(values), present, None
    if all(isinstance(v, str) for v in given):
        return [v if v is not None else "" for v in values], present, None
    tensors = [torch.as_tensor(v) if v is not None else None for v in values]
    ref = next(t for t in tensors if t is not None)
    shapes = {tuple(t.shape) for t in tensors if t is not None}
    if len(shapes) == 1:
        out = torch.zeros((len(values), *ref.shape), dtype=ref.dtype)
        for i, t in enumerate(tensors):
            if t is not None:
                out[i] = t
        return out, present, None
    lead = {s[:-1] for s in shapes}
    if len(lead) != 1:
        raise ValueError(f"cannot batch values of shapes {sorted(shapes)}: only the last "
                         "dimension may vary (set image_size= or a transform)")
    max_len = max(s[-1] for s in shapes)
    out = torch.zeros((len(values), *ref.shape[:-1], max_len), dtype=ref.dtype)
    lengths = torch.zeros(len(values), dtype=torch.long)
    for i, t in enumerate(tensors):
        if t is not None:
            out[i, ..., : t.shape[-1]] = t
            lengths[i] = t.shape[-1]
    return out, present, lengths


def collate_examples(items: list[Example | SkippedRow]) -> Batch:
    """Collate examples into a :class:`Batch`; skipped rows go to ``Batch.skipped``."""
    examples = [x for x in items if isinstance(x, Example)]
    skipped = [p for x in items if isinstance(x, SkippedRow) for p in x.problems]
    columns = sorted({c for x in examples for c in x.inputs})
    inputs: dict[str, Any] = {}
    present: dict[str, torch.Tensor] = {}
    lengths: dict[str, torch.Tensor] = {}
    for col in columns:
        value, mask, lens = collate_column([x.inputs.get(col) for x in examples])
        inputs[col], present[col] = value, mask
        if lens is not None:
            lengths[col] = lens
    labels: Any = [x.label for x in examples]
    if labels and all(isinstance(v, torch.Tensor) for v in labels):
        labels = torch.stack(labels)
    elif labels and all(isinstance(v, int | np.integer) and not isinstance(v, bool)
                      for v in labels):
        labels = torch.tensor(labels, dtype=torch.long)
    elif labels and all(isinstance(v, float | int) and not isinstance(v, bool)
                        for v in labels):
        labels = torch.tensor(labels, dtype=torch.float32)
    elif all(v is None for v in labels):
        labels = None
    return Batch(torch.tensor([x.index for x in examples], dtype=torch.long),
                 [x.id for x in examples], inputs, present, lengths, labels, skipped,
                 [x.index for x in items if isinstance(x, SkippedRow)])


def sweep_unvisited(dataset: MultimodalDataset, visited: Iterable[int],
                    report: SkipReport) -> int:
    """Load every row of ``dataset`` whose position is not in ``visited`` and add the
    problems of the bad ones to ``report``; returns how many rows were loaded.

    A training run under ``on_error="skip"`` reports the bad rows its batches met; rows
    that no batch met (a last partial batch dropped, a run stopped by its time limit)
    are checked here, so that the report names every bad row."""
    seen = set(visited)
    loaded = 0
    for position in range(len(dataset)):
        if position in seen:
            continue
        loaded += 1
        item = dataset[position]
        if isinstance(item, SkippedRow):
            report.extend(item.problems)
    return loaded


def iterate_with_report(loader: Iterable[Batch], report: SkipReport) -> Iterable[Batch]:
    """Yield non-empty batches; record every skipped row in ``report``."""
    for batch in loader:
        report.extend(batch.skipped)
        if len(batch):
            yield batch
