"""The words a captioner writes: a word-level vocabulary fitted on the training
captions (case kept, punctuation as tokens), with the four special tokens a decoder
needs. Captions of the bundled sets are short and repetitive ("A frog.", "a photo of a
coat."), where whole words beat characters or sub-words: every written token is a word
the training captions used."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import torch

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
_TOKEN = re.compile(r"\w+(?:['’/-]\w+)*|[^\w\s]")
_NO_SPACE_BEFORE = set(".,;:!?)]}%'’")
_NO_SPACE_AFTER = set("([{")


def words(text: str) -> list[str]:
    """``text`` split into words and punctuation marks (``"A frog."`` -> ``["A",
    "frog", "."]``); contractions and joined words ("t-shirt/top") stay one word."""
    return _TOKEN.findall(text)


def join_words(tokens: Sequence[str]) -> str:
    """The inverse of :func:`words` for ordinary prose: no space before closing
    punctuation or after an opening bracket."""
    out = ""
    for tok in tokens:
        if out and tok not in _NO_SPACE_BEFORE and out[-1] not in _NO_SPACE_AFTER:
            out += " "
        out += tok
    return out


class Vocabulary:
    """Word <-> id; ids 0-3 are ``<pad>``, ``<bos>``, ``<eos>`` and ``<unk>``.

    Args:
        words: the vocabulary's words in id order, without the special tokens (what
            :attr:`words` gives back; saved with a model).
    """

    def __init__(self, words: Sequence[str] = ()) -> None:
        self.tokens = [*SPECIALS, *words]
        self.index = {w: i for i, w in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("a vocabulary lists each word once (and none of "
                             f"{list(SPECIALS)})")

    @classmethod
    def fit(cls, captions: Iterable[str | None], *, min_count: int = 1,
            max_size: int = 20_000) -> Vocabulary:
        """The words of ``captions`` seen at least ``min_count`` times, most frequent
        first (ties in order of appearance), at most ``max_size`` of them."""
        counts: Counter[str] = Counter()
        for caption in captions:
            if caption:
                counts.update(words(str(caption)))
        kept = [w for w, n in counts.most_common() if n >= min_count][:max_size]
        return cls(kept)

    @property
    def words(self) -> list[str]:
        """The words, without the special tokens."""
        return self.tokens[len(SPECIALS):]

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str, max_length: int) -> list[int]:
        """``<bos>``, the ids of ``text``'s words (unknown ones ``<unk>``) cut to
        ``max_length - 1``, and ``<eos>``: at most ``max_length`` ids after ``<bos>``."""
        ids = [self.index.get(w, UNK) for w in words(text)][: max_length - 1]
        return [BOS, *ids, EOS]

    def target(self, text: str, max_length: int) -> torch.Tensor:
        """:meth:`encode` padded to ``max_length + 1`` ids: one caption as the training
        batch holds it (inputs ``[:-1]``, targets ``[1:]``)."""
        ids = self.encode(str(text), max_length)
        return torch.tensor(ids + [PAD] * (max_length + 1 - len(ids)), dtype=torch.long)

    def decode(self, ids: Iterable[int]) -> str:
        """The caption that ``ids`` spell, up to the first ``<eos>`` (special tokens
        other than ``<unk>`` left out)."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i in (PAD, BOS):
                continue
            out.append(self.tokens[i] if 0 <= i < len(self.tokens) else SPECIALS[UNK])
        return join_words(out)
