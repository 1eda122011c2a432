"""A source's rows as the locked towers see them, computed once and kept on disk: the
concept bridge's 385-d vector of each picture and MiniLM's 384-d vector of each caption
(the inputs of the trained heads, :mod:`.heads`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from polymodal.library.general.sources import Source, caption_key
from polymodal.library.general.tuning import bridge_vectors, chunked_features


@dataclass
class Features:
    """One source's rows: ``captions``, their :func:`~.sources.caption_key`, the
    pictures' bridge vectors ``images`` (N, 385) and the captions' MiniLM vectors
    ``words`` (N, 384), both L2-normalised."""

    source: str
    captions: list[str]
    images: np.ndarray
    words: np.ndarray
    #: EfficientNet-Lite0's pooled features (N, 1280), normalised, scaled by the bridge's
    #: confidence (the picture tower's second part when the heads use them)
    pooled: np.ndarray | None = None

    @property
    def keys(self) -> list[str]:
        """The captions' keys (what counts as the same name across sources)."""
        return [caption_key(c) for c in self.captions]

    def take(self, index: np.ndarray | list[int]) -> Features:
        """The rows at ``index``."""
        index = np.asarray(index, dtype=int)
        return Features(self.source, [self.captions[i] for i in index],
                        self.images[index], self.words[index],
                        None if self.pooled is None else self.pooled[index])

    def __len__(self) -> int:
        return len(self.captions)


def text_vectors(captions: list[str], cache: Path) -> np.ndarray:
    """MiniLM's normalised vectors of ``captions``, kept in ``cache`` by their text."""
    digest = hashlib.sha256("\n".join(captions).encode()).hexdigest()[:16]
    file = cache / f"minilm-{digest}.npy"
    if file.exists():
        return np.load(file)
    from polymodal.encoders.registry import build_encoder

    text = build_encoder("minilm")
    with torch.no_grad():
        parts = [text.encode(captions[i: i + 128]).pooled for i in range(0, len(captions), 128)]
    out = torch.nn.functional.normalize(torch.cat(parts), dim=-1).numpy().astype(np.float32)
    file.parent.mkdir(parents=True, exist_ok=True)
    np.save(file, out)
    return out


def source_features(source: Source, cache: Path, rows: pd.DataFrame | None = None
                    ) -> Features:
    """The bridge and MiniLM vectors of ``source``'s rows (or of ``rows`` given), but
    for those whose picture could not be decoded."""
    from polymodal.encoders.bridge import ImageNetBridge

    table = source.rows() if rows is None else rows
    pooled, decoded = decoded_features(list(table["image"]), cache)
    captions = [str(c) for c, ok in zip(table["caption"], decoded, strict=True) if ok]
    images = bridge_vectors(pooled, _bridge(ImageNetBridge)).astype(np.float32)
    return Features(source.name, captions, images, text_vectors(captions, cache),
                    scaled_pooled(pooled, images))


def decoded_features(paths: list[str], cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """EfficientNet-Lite0's pooled features of the pictures at ``paths`` that could be
    decoded (:func:`~.tuning.chunked_features`), and which those are (a mask over
    ``paths``): a picture that cannot be decoded is left out of its source."""
    pooled = chunked_features(paths, cache)
    decoded = ~np.isnan(pooled).any(axis=1)
    return pooled[decoded], decoded


def scaled_pooled(pooled: np.ndarray, bridged: np.ndarray) -> np.ndarray:
    """Pooled features, normalised and scaled by the bridge's confidence weight (the
    bridge's own :func:`~polymodal.encoders.bridge.with_pooled`)."""
    from polymodal.encoders.bridge import with_pooled

    both = with_pooled(torch.as_tensor(bridged), torch.as_tensor(pooled))
    return both[:, bridged.shape[1]:].numpy().astype(np.float32)


_BRIDGES: dict[str, torch.nn.Module] = {}


def _bridge(kind: type) -> torch.nn.Module:
    if "default" not in _BRIDGES:
        _BRIDGES["default"] = kind()
    return _BRIDGES["default"]


def concat(parts: list[Features], name: str = "corpus") -> Features:
    """Several sources' rows as one."""
    pooled = None if any(p.pooled is None for p in parts) else \
        np.concatenate([p.pooled for p in parts])
    return Features(name, [c for p in parts for c in p.captions],
                    np.concatenate([p.images for p in parts]),
                    np.concatenate([p.words for p in parts]), pooled)


def rows_by_key(keys: list[str]) -> list[np.ndarray]:
    """The rows of each distinct caption key, keys in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    return [np.asarray(g) for g in groups.values()]


def distinct(features: Features) -> Features:
    """One row per caption key (the first): the same name in six icon themes is one
    concept, not six training pairs."""
    return features.take([rows[0] for rows in rows_by_key(features.keys)])
