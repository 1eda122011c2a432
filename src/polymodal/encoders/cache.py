"""The feature cache: outputs of frozen encoders on disk, keyed by content and encoder.

An entry's key is the SHA-1 of the cell's content (the file's bytes, or the inline
text) under a folder named by the encoder's fingerprint (class, settings, weights). A
changed file has another key; a changed encoder another folder: stale entries are never
read. :class:`CachedFeatures` keeps its entries in a
:class:`~polymodal.encoders.cache_store.ChunkedFeatureCache` (a few chunk files and an
SQLite index, safe for concurrent writers, a damaged entry recomputed): millions of
cells are a few files. :class:`FeatureCache` is the one-file-per-cell store of 0.3 and
before (safetensors files written atomically), kept as the baseline it is measured
against; a cache folder it filled is not read by the chunked store (entries are
computed again once).

Use it through the dataset: ``MultimodalDataset(m, cell_loaders={"image":
CachedFeatures(encoder, cache_dir)})`` and the model's side ``CachedEncoder(encoder)``,
which takes the cached features where the encoder took its inputs.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from polymodal.data.errors import MediaError
from polymodal.data.manifest import DecodeOptions, Manifest
from polymodal.data.media import check_file
from polymodal.data.schema import Role
from polymodal.encoders.base import Encoded, ModalityEncoder, lengths_to_mask
from polymodal.encoders.cache_store import ChunkedFeatureCache


def content_key(manifest: Manifest, row: int, column: str) -> str | None:
    """SHA-1 of a cell's content (file bytes or inline text); None for an empty cell."""
    spec = manifest.schema[column]
    if spec.source == "path" or spec.role in (Role.IMAGE, Role.AUDIO):
        path = manifest.resolve(row, column)
        if path is None:
            return None
        try:
            check_file(path)
        except MediaError as err:
            raise err.at(manifest=manifest.source, row=manifest.source_row(row),
                         column=column, path=str(path)) from None
        with path.open("rb") as fh:
            return hashlib.file_digest(fh, "sha1").hexdigest()
    value = manifest.decode(row, column)
    return None if value is None else hashlib.sha1(f"text:{value}".encode()).hexdigest()


class FeatureCache:
    """Cached (tokens, pooled) of one frozen encoder under ``root/<fingerprint>/``, one
    safetensors file per entry (the baseline of the chunked store)."""

    def __init__(self, root: str | os.PathLike[str], encoder: ModalityEncoder) -> None:
        if encoder.trainable:
            raise ValueError("only a frozen encoder's outputs can be cached: call "
                             "encoder.freeze() first")
        self.root = Path(root)
        self.folder = self.root / encoder.fingerprint()
        self.hits = 0
        self.misses = 0

    def path_for(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.safetensors"

    def get(self, key: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        path = self.path_for(key)
        if not path.exists():
            self.misses += 1
            return None
        try:
            entry = load_file(path)
        except Exception:  # a half-written or damaged entry is recomputed, never trusted
            path.unlink(missing_ok=True)
            self.misses += 1
            return None
        self.hits += 1
        return entry["tokens"], entry["pooled"]

    def put(self, key: str, tokens: torch.Tensor, pooled: torch.Tensor) -> None:
        path = self.path_for(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        # clones: an encoder whose pooled vector is a view of its tokens (one token)
        # hands over shared storage, which safetensors refuses
        save_file({"tokens": tokens.clone().contiguous(), "pooled": pooled.clone().contiguous()},
                  tmp)
        tmp.replace(path)


def pack(tokens: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
    """(T, d) tokens and (d,) pooled -> one (d, T + 1) tensor that collate can pad."""
    return torch.cat([pooled[None], tokens], dim=0).T.contiguous()


class CachedFeatures:
    """A dataset cell loader: the cached features of a cell, computed on a miss.

    Picklable (DataLoader workers); each worker runs the encoder on its misses.
    """

    def __init__(self, encoder: ModalityEncoder, root: str | os.PathLike[str],
                 options: DecodeOptions | None = None) -> None:
        self.encoder = encoder
        self.cache = ChunkedFeatureCache(root, encoder)
        self.options = options or DecodeOptions()

    def fill(self, manifest: Manifest, column: str, *, batch_size: int = 64,
             num_workers: int = 0, show_progress: bool = True) -> int:
        """Compute every missing entry of ``column`` in batches (faster than one by one
        on a miss); returns how many were computed. Bad cells are left for the dataset's
        ``on_error`` to handle."""
        from polymodal.data.dataset import MultimodalDataset
        from polymodal.progress import progress_bar

        todo: dict[str, int] = {}
        for row in range(len(manifest)):
            try:
                key = content_key(manifest, row, column)
            except MediaError:
                continue
            if key is not None and key not in todo and key not in self.cache:
                todo[key] = row
        if not todo:
            return 0
        subset = manifest.subset(list(todo.values()))
        keys = list(todo)
        ds = MultimodalDataset(subset, columns=[column], on_error="skip", options=self.options,
                               transforms={column: self.encoder.preprocess})
        with torch.no_grad(), progress_bar(f"caching {column}", len(keys),
                                           enabled=show_progress) as advance:
            for batch in ds.loader(batch_size, num_workers=num_workers):
                if len(batch):
                    out = self.encoder(batch.inputs[column], batch.lengths.get(column))
                    with self.cache.writing():  # a batch a transaction: others may write
                        for i, row in enumerate(batch.indices.tolist()):
                            n = int(out.mask[i].sum())
                            self.cache.put(keys[row], out.tokens[i, :n].float().cpu(),
                                           out.pooled[i].float().cpu())
                advance(len(batch) + len(batch.skipped))
        return len(keys)

    def __call__(self, manifest: Manifest, row: int, column: str) -> torch.Tensor | None:
        key = content_key(manifest, row, column)
        if key is None:
            return None
        hit = self.cache.get(key)
        if hit is None:
            value = manifest.decode(row, column, self.options)
            if value is None:
                return None
            with torch.no_grad():
                out = self.encoder.encode([value])
            n = int(out.mask[0].sum())
            hit = (out.tokens[0, :n].float().cpu(), out.pooled[0].float().cpu())
            self.cache.put(key, *hit)
        return pack(*hit)


class CachedEncoder(ModalityEncoder):
    """The model's side of the cache: takes packed cached features, returns ``Encoded``."""

    def __init__(self, encoder: ModalityEncoder) -> None:
        super().__init__()
        self.modality = encoder.modality  # type: ignore[misc]
        self.output_dim = encoder.output_dim
        self.trainable = False

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> Encoded:
        pooled = inputs[:, :, 0]
        tokens = inputs[:, :, 1:].transpose(1, 2)
        token_lengths = None if lengths is None else (lengths - 1).clamp(min=1)
        mask = lengths_to_mask(token_lengths, tokens.shape[1], tokens.shape[0], inputs.device)
        return Encoded(tokens, mask, pooled)

    def config(self) -> dict[str, Any]:
        return {}
