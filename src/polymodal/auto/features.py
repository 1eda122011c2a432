"""The feature matrices of the ``auto`` fit: each column through fixed extractors.

A *feature set* names one extractor per modality: ``pretrained`` (the offline
pretrained towers: EfficientNet-Lite0, MiniLM, Whisper's encoder) or ``handcrafted``
(colour statistics, TF-IDF, MFCC statistics). A column's block is its extractor's
pooled vector for each row, zeros where the cell is absent, and one more column that
says whether it is present: a modality missing from a row (or dropped by
``evaluate(drop=...)``) is a row of zeros and a 0, never an error. Tower outputs go
through the feature cache (content + encoder keyed, shared across runs); decoding
goes through the media cache.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polymodal.data import Manifest, MultimodalDataset
from polymodal.data.errors import MediaError, OnError, Problem
from polymodal.data.media_cache import MediaCache
from polymodal.encoders.base import ModalityEncoder
from polymodal.encoders.cache import CachedFeatures

#: per feature set, the extractor of each modality, best first (the first one that
#: can load offline here is used)
FEATURE_SETS: dict[str, dict[str, tuple[str, ...]]] = {
    "handcrafted": {"image": ("colour-stats",), "audio": ("mfcc-stats",),
                    "text": ("tfidf-words+chars",)},
    "pretrained": {"image": ("efficientnet-lite0", "colour-stats"),
                   "audio": ("whisper-encoder", "mfcc-stats"),
                   "text": ("minilm", "tfidf-words+chars")},
}
TFIDF = "tfidf-words+chars"


def feature_cache_root(cache_dir: str | os.PathLike[str] | None,
                       media_cache: MediaCache | None, run_dir: Path) -> Path:
    """Where tower outputs are cached: ``cache_dir``; else, when media are cached
    across runs, ``$POLYMODAL_FEATURE_CACHE`` or ``~/.cache/polymodal/features`` (so
    a second fit on the same files computes nothing); else the run folder."""
    if cache_dir is not None:
        return Path(cache_dir)
    if media_cache is None:
        return run_dir / "feature-cache"
    env = os.environ.get("POLYMODAL_FEATURE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "polymodal" / "features"


def extractor_name(feature_set: str, modality: str) -> str:
    """The extractor ``feature_set`` uses for ``modality`` here (offline fallbacks)."""
    from polymodal.encoders.registry import ENCODERS

    choices = FEATURE_SETS[feature_set][modality]
    for name in choices:
        if name == TFIDF or ENCODERS.get(name).offline():
            return name
    return choices[-1]


@dataclass
class Block:
    """One column's features over some rows: values (dense or sparse) and presence."""

    values: Any  # (N, d) float32 ndarray or scipy CSR matrix
    present: np.ndarray  # (N,) bool

    def dropped(self) -> Block:
        """The block as if the column were absent from every row."""
        import scipy.sparse as sp

        zeros = sp.csr_matrix(self.values.shape, dtype=np.float32) \
            if sp.issparse(self.values) else np.zeros_like(self.values)
        return Block(zeros, np.zeros_like(self.present))


@dataclass
class Extractor:
    """The fixed extractor of one column: a frozen encoder by name, or TF-IDF."""

    column: str
    modality: str
    name: str
    state: Any = None  # the fitted TfidfVectorizer
    encoder: ModalityEncoder | None = field(default=None, repr=False)

    def _encoder(self) -> ModalityEncoder:
        if self.encoder is None:
            from polymodal.encoders.registry import build_encoder

            self.encoder = build_encoder(self.name).freeze()
        return self.encoder

    def fit(self, m: Manifest, on_error: OnError) -> Extractor:
        """Learn what the extractor must (TF-IDF's vocabulary) from ``m``'s rows."""
        if self.name != TFIDF:
            return self
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import FeatureUnion

        texts = [t for t in _texts(m, self.column, on_error, None)[0] if t]
        if not texts:
            raise ValueError(f"column {self.column!r} has no text to learn TF-IDF from")
        min_df = 2 if len(texts) >= 200 else 1
        self.state = FeatureUnion([
            ("words", TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=min_df,
                                      max_features=20_000)),
            ("chars", TfidfVectorizer(sublinear_tf=True, analyzer="char_wb",
                                      ngram_range=(2, 4), min_df=min_df,
                                      max_features=20_000))]).fit(texts)
        return self

    def block(self, m: Manifest, *, on_error: OnError, noise: Callable[[Any], Any] | None,
              cache_root: Path | None, media_cache: MediaCache | None, batch_size: int,
              deadline: float | None = None, progress: bool = False
              ) -> tuple[Block, dict[int, Problem]]:
        """This column's block over ``m``'s rows, and the problem of each row whose
        cell could not be read (``on_error="skip"``; under "raise" the first one is
        raised, located), by row position.

        Raises:
            TimeoutError: ``deadline`` (a ``time.time()``) passed before every row was
                encoded (what was encoded stays in the feature cache).
        """
        if self.name == TFIDF:
            texts, bad = _texts(m, self.column, on_error, noise)
            present = np.array([bool(t) for t in texts])
            values = self.state.transform([t or "" for t in texts]).astype(np.float32)
            return Block(values.tocsr(), present), bad
        return _encoder_block(self._encoder(), m, self.column, on_error=on_error,
                              noise=noise, cache_root=cache_root, media_cache=media_cache,
                              batch_size=batch_size, deadline=deadline, progress=progress)


def _texts(m: Manifest, column: str, on_error: OnError,
           noise: Callable[[Any], Any] | None) -> tuple[list[str | None], dict[int, Problem]]:
    out: list[str | None] = []
    bad: dict[int, Problem] = {}
    for row in range(len(m)):
        try:
            value = m.decode(row, column)
        except MediaError as err:
            if on_error == "raise":
                raise
            value, bad[row] = None, Problem.from_error(err)
        if value is not None and noise is not None:
            value = noise(value)
        out.append(None if value is None or not str(value).strip() else str(value))
    return out, bad


def _encoder_block(encoder: ModalityEncoder, m: Manifest, column: str, *, on_error: OnError,
                   noise: Callable[[Any], Any] | None, cache_root: Path | None,
                   media_cache: MediaCache | None, batch_size: int,
                   deadline: float | None, progress: bool
                   ) -> tuple[Block, dict[int, Problem]]:
    from polymodal.progress import progress_bar

    cached = cache_root is not None and noise is None
    transform = encoder.preprocess if noise is None else \
        (lambda v, f=noise, p=encoder.preprocess: p(f(v)))
    ds = MultimodalDataset(m, columns=[column], transforms={column: transform},
                           on_error=on_error, media_cache=None if noise else media_cache,
                           cell_loaders={column: CachedFeatures(encoder, cache_root)}
                           if cached else None)
    values = np.zeros((len(m), encoder.output_dim), np.float32)
    present = np.zeros(len(m), bool)
    bad: dict[int, Problem] = {}
    with torch.no_grad(), progress_bar(f"features of {column} ({type(encoder).__name__})",
                                       len(m), enabled=progress) as advance:
        for batch in ds.loader(batch_size):
            if deadline is not None and time.time() > deadline:
                raise TimeoutError(f"the time limit passed while encoding {column!r}")
            bad.update(zip(batch.skipped_indices, batch.skipped, strict=False))
            mask = batch.present[column].bool() if column in batch.present else None
            if len(batch) and mask is not None and bool(mask.any()):  # else all absent
                inputs = batch.inputs[column]
                pooled = inputs[:, :, 0] if cached else \
                    encoder(inputs, batch.lengths.get(column)).pooled
                rows = batch.indices.numpy()
                values[rows] = pooled.float().cpu().numpy() * mask.numpy()[:, None]
                present[rows] = mask.numpy()
            advance(len(batch) + len(batch.skipped))
    return Block(values, present), bad


def stack(blocks: Sequence[Block]) -> Any:
    """The columns' blocks side by side, each followed by its presence: a dense
    matrix, or a sparse one where a block is sparse."""
    import scipy.sparse as sp

    parts = []
    for b in blocks:
        parts += [b.values, b.present.astype(np.float32)[:, None]]
    if any(sp.issparse(p) for p in parts):
        return sp.hstack([sp.csr_matrix(p) for p in parts], format="csr", dtype=np.float32)
    return np.hstack(parts).astype(np.float32)
