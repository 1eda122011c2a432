"""The text side of a captioner, one interface over two kinds of tokens: the word
vocabulary of the scratch decoder (:class:`~polymodal.generate.tokens.Vocabulary`) and
a pretrained language model's own tokenizer (``AutoTokenizer``).

A training caption is one sequence: ``start``, then (for a captioner trained with
questions) the question's tokens and ``end`` as the separator, then the caption's
tokens and ``end``. The loss is on the caption's tokens and its ``end`` only; the
question is read, never predicted. Search starts from :meth:`Wording.prompt` and writes
the rest.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import torch

from polymodal.generate.tokens import BOS, EOS, PAD, UNK, Vocabulary


class Wording:
    """Token ids of prompts and captions, and captions from ids.

    Subclasses set :attr:`start`, :attr:`end`, :attr:`pad`, :attr:`never` (ids search
    never writes) and :attr:`size`, and implement :meth:`tokens` and :meth:`decode`.
    """

    start: int
    end: int
    pad: int
    never: tuple[int, ...]
    size: int

    def tokens(self, text: str) -> list[int]:
        """``text``'s ids, no special tokens."""
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:
        """The caption that ``ids`` (written after the prompt) spell."""
        raise NotImplementedError

    def prompt(self, question: str | None, max_question: int | None) -> list[int]:
        """The ids a caption starts from: ``start`` alone (no questions), or
        ``start``, the question's first ``max_question`` tokens and ``end``."""
        if max_question is None:
            return [self.start]
        return [self.start, *self.tokens(question or "")[:max_question], self.end]

    @staticmethod
    def length(max_length: int, max_question: int | None) -> int:
        """The ids of one training sequence: the longest prompt + ``max_length``."""
        return (1 if max_question is None else max_question + 2) + max_length

    def target(self, question: str | None, caption: str, max_length: int,
               max_question: int | None) -> torch.Tensor:
        """(2, :meth:`length`) longs: the ids (prompt, caption cut to ``max_length - 1``
        tokens, ``end``; then padding) and 1 where an id is one the loss predicts (the
        caption's and its ``end``), else 0."""
        prompt = self.prompt(question, max_question)
        caption_ids = [*self.tokens(str(caption))[: max_length - 1], self.end]
        total = self.length(max_length, max_question)
        pad = total - len(prompt) - len(caption_ids)
        ids = torch.tensor([*prompt, *caption_ids, *[self.pad] * pad], dtype=torch.long)
        mask = torch.tensor([0] * len(prompt) + [1] * len(caption_ids) + [0] * pad,
                            dtype=torch.long)
        return torch.stack([ids, mask])


class WordWording(Wording):
    """The scratch decoder's words (ids 0-3 ``<pad>``, ``<bos>``, ``<eos>``,
    ``<unk>``)."""

    start, end, pad, never = BOS, EOS, PAD, (PAD, BOS, UNK)

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary
        self.size = len(vocabulary)

    def tokens(self, text: str) -> list[int]:
        return self.vocabulary.encode(text, 10**9)[1:-1]

    def decode(self, ids: Sequence[int]) -> str:
        return self.vocabulary.decode(ids)


class TokenizerWording(Wording):
    """A pretrained language model's tokenizer: it starts from its ``bos`` token (its
    ``eos`` where it has none, as GPT-2's are one) and ends with its ``eos``; search
    never writes its other special tokens.

    Raises:
        ValueError: the tokenizer has no end-of-text token (``source`` named).
    """

    def __init__(self, tokenizer: Any, source: str, size: int) -> None:
        end = tokenizer.eos_token_id
        if end is None:
            raise ValueError(f"decoder {source!r}: its tokenizer has no end-of-text (eos) "
                             "token, which a caption needs to end; give a causal language "
                             "model whose tokenizer has one")
        self.tokenizer, self.size = tokenizer, size
        self.start = end if tokenizer.bos_token_id is None else tokenizer.bos_token_id
        self.end = self.pad = end
        self.never = tuple(sorted({i for i in tokenizer.all_special_ids if i != end}))

    def tokens(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True,
                                     clean_up_tokenization_spaces=True).strip()


def prompted(question: Any, caption: Any) -> str:
    """One training cell that holds a question and its caption (JSON)."""
    return json.dumps(["" if question is None else str(question), str(caption)])


class CaptionTarget:
    """A caption cell (or a :func:`prompted` one) -> its :meth:`Wording.target` (the
    dataset's label transform; picklable)."""

    def __init__(self, wording: Wording, max_length: int, max_question: int | None
                 ) -> None:
        self.wording, self.max_length, self.max_question = wording, max_length, max_question

    def __call__(self, cell: Any) -> torch.Tensor:
        question, caption = (None, str(cell)) if self.max_question is None \
            else json.loads(cell)
        return self.wording.target(question, caption, self.max_length, self.max_question)
