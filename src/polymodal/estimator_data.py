"""The estimator's data path: rows (a manifest's, or a shard folder's) to batches.

A manifest's rows become a :class:`~polymodal.data.MultimodalDataset` (each cell
decoded, or read from the feature cache of a frozen tower, or from the media cache)
behind a seeded epoch shuffle; a shard folder's rows
(:class:`~polymodal.data.shard_source.ShardSource`) stream from their shards, each
process reading its own share (:mod:`polymodal.data.shard_stream`). Both go through
the same per-column transforms (the encoder's preprocessing, ``noise`` before it), so
a model sees the same tensors from either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from polymodal.data import Manifest, MultimodalDataset
from polymodal.data.dataset import EpochShuffleSampler
from polymodal.data.errors import OnError
from polymodal.data.media_cache import MediaCache
from polymodal.data.noise import corruption_for
from polymodal.data.rows import Rows
from polymodal.data.shard_source import ShardSource

#: ``evaluate(noise=...)``: per column name or role, a level in [0, 1] for
#: :func:`polymodal.data.noise.noisy`, or a function applied to each decoded cell
#: (e.g. ``polymodal.data.noise.noisy_snr("audio", -10)``).
Noise = Mapping[str, float | Callable[[Any], Any]]
#: a vocabulary (word encoders, TF-IDF) is fitted on at most this many rows of a shard
#: folder, streamed in folder order: a pass over millions of rows costs an epoch
SHARD_VOCAB_ROWS = 100_000
class DataPath:
    """The data path the :class:`~polymodal.estimator.Estimator` mixes in."""

    columns_: list[str]
    seed: int
    batch_size_: int
    _encoders: dict[str, Any]
    _cache_loaders: dict[str, Any]
    model_: torch.nn.Module

    _label_transform: Callable[[], Callable[[Any], Any] | None]

    def _transforms(self, m: Rows, columns: Sequence[str], noise: Noise | None
                    ) -> dict[str, Callable[[Any], Any]]:
        """Per column: the encoder's preprocessing, after ``noise`` where it applies."""
        transforms: dict[str, Callable[[Any], Any]] = {
            c: self._encoders[c].preprocess for c in columns}
        for c in columns:
            corrupt = corruption_for(noise, c, m.schema[c].role.value, self.seed)
            if corrupt is not None:
                transforms[c] = lambda v, f=corrupt, p=transforms[c]: p(f(v))
        return transforms

    def _dataset(self, m: Manifest, *, columns: Sequence[str] | None = None,
                 with_labels: bool = False, on_error: OnError = "raise",
                 noise: Noise | None = None, memory_cache_mb: float = 0,
                 media_cache: MediaCache | None = None) -> MultimodalDataset:
        """``m``'s rows as the model reads them: each column decoded and preprocessed
        by its encoder (or read from the cache of a frozen one), ``noise`` applied."""
        columns = list(columns or self.columns_)
        loaders = {c: f for c, f in self._cache_loaders.items()
                   if c in self.model_.cached and c in columns}
        return MultimodalDataset(m, columns=columns,
                                 transforms=self._transforms(m, columns, noise),
                                 on_error=on_error, cell_loaders=loaders,
                                 label_transform=self._label_transform() if with_labels
                                 else None,
                                 memory_cache_mb=0 if noise else memory_cache_mb,
                                 media_cache=None if noise else media_cache)

    def _loader(self, m: Rows, *, shuffle: bool, columns: Sequence[str] | None = None,
                with_labels: bool = False, on_error: OnError = "raise",
                noise: Noise | None = None, memory_cache_mb: float = 0,
                drop_last: bool = False, media_cache: MediaCache | None = None,
                workers: int = 0, per_process: bool = False
                ) -> torch.utils.data.DataLoader:
        """Batches of ``m``: a manifest's through a seeded epoch shuffle, a shard
        folder's streamed (resumable mid-epoch); ``per_process`` (a fit's): under DDP
        each process reads its own share of a shard folder, else every row."""
        if isinstance(m, ShardSource):
            columns = list(columns or self.columns_)
            whole = {} if per_process else {"rank": 0, "world_size": 1}
            return m.loader(self._transforms(m, columns, noise), self.batch_size_,
                            shuffle=shuffle, seed=self.seed, drop_last=drop_last, **whole,
                            columns=columns, on_error=on_error, num_workers=workers,
                            label_transform=self._label_transform() if with_labels
                            else None)
        ds = self._dataset(m, columns=columns, with_labels=with_labels, on_error=on_error,
                           noise=noise, memory_cache_mb=memory_cache_mb,
                           media_cache=media_cache)
        sampler = EpochShuffleSampler(len(ds), self.seed) if shuffle else None
        return ds.loader(self.batch_size_, sampler=sampler, drop_last=drop_last,
                         num_workers=workers)
