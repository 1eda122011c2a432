"""Captions written from pictures::

    cap = Captioner(image="image", text="caption").fit("tuxpaint/manifest.csv")
    cap.caption("photos/", beam=3)           # a table: id, file, caption, ...
    cap.save("captioner/"); Captioner.load("captioner/").caption(["a.png"])

The fit is the estimator core's (:mod:`polymodal.estimator`): the picture column's
tower (by default the frozen, offline EfficientNet-Lite0, whose outputs are cached, so
an epoch trains the decoder alone), one Lightning run, save / load as safetensors +
YAML. What is the Captioner's own: the vocabulary fitted on the training captions, the
decoder (:mod:`~polymodal.generate.decoder`) and its search
(:mod:`~polymodal.generate.decoding`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from polymodal.data import Manifest
from polymodal.data.errors import ManifestError, OnError, Problem
from polymodal.data.schema import Schema
from polymodal.estimator import Estimator
from polymodal.generate.config import CaptionerConfig
from polymodal.generate.decoder import CaptionLoss, CaptionModel, sequence_log_likelihood
from polymodal.generate.decoding import Hypothesis, decode
from polymodal.generate.inputs import images_manifest
from polymodal.generate.lm_decoder import (
    SCRATCH,
    LMCaptionModel,
    lm_source,
    load_language_model,
)
from polymodal.generate.tokens import Vocabulary
from polymodal.generate.wording import (
    CaptionTarget,
    TokenizerWording,
    Wording,
    WordWording,
    prompted,
)

KIND = "captioner"
#: the label column a Captioner trained with questions reads (question + caption)
PROMPTED = "__question_and_caption__"


class Captioner(Estimator):
    """Learn to write a caption for a picture from rows of pictures and their captions.

    Args:
        image: the picture column (default: the manifest's only picture column).
        text: the caption column (the caption written in the cell).
            Not called ``caption``: that is the method that writes captions.
        layers, heads: the decoder's Transformer layers and attention heads.
        max_length: the longest caption in tokens (words and punctuation); longer
            training captions are cut, and decoding stops there.
        min_count: words seen fewer times in the training captions are ``<unk>``.
        dropout: dropout in the decoder.
        length_penalty: beam search scores log-likelihood / length ** this (0: the
            plain log-likelihood).
        decoder: "scratch" (the default: a Transformer decoder trained here), or a
            pretrained causal language model by name or folder, which
            ``transformers.AutoModelForCausalLM`` loads from this machine (never
            downloaded): prefix-conditioned on the picture, with its own tokenizer.
        fine_tune: train the language model's weights too (default: frozen; only the
            projection of the picture into its embedding space trains).
        question: a column of questions: each caption is written after its row's
            question (read, not predicted), so that ``caption(..., question=...)`` and
            ``Library.ask`` write about a picture given a question.
        max_question_length: a question's tokens kept (the rest cut).
        encoders: the picture tower, e.g. ``{"image": "cnn"}`` (default: the preset's).
        preset: where the tower and sizes come from; "pretrained" (the default) is the
            frozen EfficientNet-Lite0 with cached features, "tiny" a small CNN trained
            with the decoder (tests).
        dim: the decoder's width (default: the preset's).
        max_epochs, batch_size, lr, patience, seed: the training run.
        path: the run folder (checkpoints, logs); default ``runs/caption-<time>``.
        cache_dir: where a frozen tower caches its outputs (default: the run folder).
        precision: Lightning's precision; default: mixed on a GPU that supports it.
        roles: column roles that override the inferred ones.
        memory_cache_mb, media_cache: decoded pictures kept in memory / on disk during
            ``fit`` (see :class:`~polymodal.predictor.Predictor`).
    """

    kind: ClassVar[str] = KIND
    config_class: ClassVar[type] = CaptionerConfig
    run_name: ClassVar[str] = "caption-%Y%m%d-%H%M%S"
    other_kind_hint: ClassVar[str] = ("; a Predictor loads with Predictor.load, a "
                                      "Pretrainer with Pretrainer.load")

    def __init__(self, image: str | None = None, text: str = "caption", layers: int = 2,
                 heads: int = 4, max_length: int = 24, min_count: int = 1,
                 dropout: float = 0.1, length_penalty: float = 0.0,
                 decoder: str = SCRATCH, fine_tune: bool = False,
                 question: str | None = None, max_question_length: int = 16,
                 encoders: Mapping[str, str | tuple[str, dict[str, Any]]] | None = None,
                 preset: str = "pretrained", dim: int | None = None,
                 max_epochs: int | None = None, batch_size: int | None = None,
                 lr: float | None = None, patience: int | None = None, seed: int = 0,
                 path: str | os.PathLike[str] | None = None,
                 cache_dir: str | os.PathLike[str] | None = None,
                 precision: str | None = None, roles: Mapping[str, str] | None = None,
                 memory_cache_mb: float = 1024,
                 media_cache: str | os.PathLike[str] | None = "auto") -> None:
        from polymodal.presets import resolve_preset

        resolve_preset(preset)
        if max_length < 1:
            raise ValueError(f"max_length must be at least 1 token, got {max_length}")
        if max_question_length < 0:
            raise ValueError("max_question_length must be >= 0, got "
                             f"{max_question_length}")
        self._store(locals())

    @property
    def _max_question(self) -> int | None:
        """A question's tokens kept, or None: trained without questions."""
        return None if self.question is None else self.max_question_length

    # -- the rows and columns -----------------------------------------------------
    def _read(self, data: Any) -> Manifest:
        roles = {**(self.roles or {}), self.text: "label"}
        if self.question is not None:
            roles[self.question] = "ignore"
        m = Manifest.read(data, label=self.text, roles=roles)
        for name, what in ((self.text, "caption"), (self.question, "question")):
            if name is not None and name not in m.table.columns:
                raise ManifestError(f"{m.source}: {what} column {name!r} is not in the "
                                    f"manifest; columns: {list(m.table.columns)}")
        if self.question is None:
            return m
        # the label the loss sees: the row's question and caption in one cell
        table = m.table.copy()
        table[PROMPTED] = [prompted(q, c) if isinstance(c, str) and c.strip() else None
                           for q, c in zip(m.table[self.question].where(
                               m.table[self.question].notna(), None),
                               m.table[self.text], strict=True)]
        schema = Schema.from_dict({**m.schema.to_dict(), self.text: "ignore",
                                   PROMPTED: "label"})
        return Manifest(table, schema, root=m.root, source=m.source, confine=m.confine,
                        origin=m.origin)

    def _read_parts(self, train: Any, tuning: Any, on_error: OnError
                    ) -> tuple[Manifest, Manifest, list[Problem]]:
        m = self._read(train)
        if tuning is None:
            m, tune = m.training_split(self.seed, *self.holdout)
        else:
            tune = self._read(tuning)
        return m, tune, []

    def _learn_targets(self, train: Manifest, tuning: Manifest) -> None:
        captions = [c for c in train.table[self.text].tolist()
                    if isinstance(c, str) and c.strip()]
        if not captions:
            raise ValueError(f"{train.source}: caption column {self.text!r} is empty in "
                             "every training row")
        if self.decoder != SCRATCH:
            self._set_language_model(lm_source(self.decoder))
            return
        questions = [] if self.question is None else \
            [q for q in train.table[self.question].tolist() if isinstance(q, str)]
        self.vocabulary_ = Vocabulary.fit([*captions, *questions],
                                          min_count=self.min_count)
        self.wording_: Wording = WordWording(self.vocabulary_)

    def _set_language_model(self, source: str) -> None:
        """Load the language model and its tokenizer (refused, named, if absent)."""
        self._language_model, tokenizer = load_language_model(source)
        self.decoder_source_ = source
        size = self._language_model.get_output_embeddings().weight.shape[0]
        if len(tokenizer) > size:
            raise ValueError(f"decoder {source!r}: its tokenizer has {len(tokenizer)} "
                             f"tokens and the language model writes {size}")
        self.vocabulary_ = None
        self.wording_ = TokenizerWording(tokenizer, source, size)

    def _choose_columns(self, m: Manifest, init_from: Any = None) -> list[str]:
        if init_from is not None:
            raise ValueError("a Captioner starts from its tower's own weights; init_from "
                             "is for Predictor.fit")
        pictures = [c for c, r in m.modality_columns.items() if r.value == "image"]
        if self.image is not None:
            if self.image not in pictures:
                raise ValueError(f"{m.source}: {self.image!r} is not a picture column; "
                                 f"picture columns: {pictures}")
            return [self.image]
        if len(pictures) != 1:
            raise ValueError(f"{m.source}: a Captioner reads one picture column and this "
                             f"manifest has {len(pictures)} ({pictures}); name it with "
                             "image=COLUMN")
        return pictures

    def _training_rows(self, m: Manifest, tune: Manifest
                       ) -> tuple[Manifest, Manifest, list[Problem]]:
        """The rows with a picture and a caption; a problem for each row left out."""
        problems: list[Problem] = []
        kept = []
        for part in (m, tune):
            has_image, has_caption = part.present(self.columns_[0]), part.present(self.text)
            for i in np.flatnonzero(~(has_image & has_caption)):
                column, what = (self.text, "caption") if has_image[i] else \
                    (self.columns_[0], "picture")
                problems.append(Problem(part.source_row(int(i)), column,
                                        f"missing_{what}", f"the row has no {what}: it "
                                        "is left out of training", manifest=part.source))
            kept.append(part.subset(np.flatnonzero(has_image & has_caption)))
        if len(kept[0]) == 0:
            raise ValueError(f"{m.source}: no training row holds both a picture "
                             f"({self.columns_[0]!r}) and a caption ({self.text!r})")
        return kept[0], kept[1], problems

    def _label_transform(self) -> Any:
        return CaptionTarget(self.wording_, self.max_length, self._max_question)

    def _make_model(self, cached: set[str] | None = None) -> torch.nn.Module:
        if self.decoder != SCRATCH:
            return LMCaptionModel(self._encoders, self._language_model,
                                  max_length=self.max_length, fine_tune=self.fine_tune,
                                  never=self.wording_.never, cached=cached)
        return CaptionModel(self._encoders, len(self.vocabulary_), self.dim_,
                            layers=self.layers, heads=self.heads,
                            max_length=self.max_length, dropout=self.dropout, cached=cached,
                            positions=Wording.length(self.max_length, self._max_question))

    def _saved_module(self) -> torch.nn.Module:
        if isinstance(self.model_, LMCaptionModel):
            return self.model_.trained_parts()
        return self.model_

    def _objective(self, train: Manifest) -> torch.nn.Module:
        return CaptionLoss()

    # -- writing ------------------------------------------------------------------
    def _questions(self, question: str | Sequence[str] | None, n: int
                   ) -> list[str | None] | None:
        """One question a picture (or None: trained without questions)."""
        if question is not None and self.question is None:
            raise ValueError("this Captioner was trained without questions (question="
                             "None); it writes from the picture alone: fit one with "
                             "question=COLUMN to write given a question")
        if self.question is None:
            return None
        if question is None or isinstance(question, str):
            return [question] * n
        questions = list(question)
        if len(questions) != n:
            raise ValueError(f"{len(questions)} questions for {n} pictures")
        return questions

    @torch.no_grad()
    def write(self, pictures: torch.Tensor, lengths: torch.Tensor | None = None, *,
              beam: int = 1, max_length: int | None = None,
              length_penalty: float | None = None,
              questions: Sequence[str | None] | None = None) -> list[Hypothesis]:
        """Hypotheses for a batch of collated pictures (the tower's ``preprocess``
        outputs, stacked), each after its question where the model was trained with
        questions."""
        self._check_fitted()
        limit = self.max_length if max_length is None else max_length
        if limit > self.max_length:
            raise ValueError(f"max_length {limit} is past this model's limit of "
                             f"{self.max_length} tokens (set when it was trained)")
        model = self.model_.eval()
        device = next(model.parameters()).device
        memory, padding = model.memory(pictures.to(device),
                                       None if lengths is None else lengths.to(device))
        penalty = self.length_penalty if length_penalty is None else length_penalty
        asked = [None] * memory.shape[0] if questions is None else list(questions)
        out: list[Hypothesis | None] = [None] * len(asked)
        for question in dict.fromkeys(asked):  # one search per distinct question
            rows = [i for i, q in enumerate(asked) if q == question]
            start = torch.tensor(self.wording_.prompt(question, self._max_question))
            for row, hyp in zip(rows, decode(model.next_log_probs, memory[rows],
                                             padding[rows], limit, beam, penalty,
                                             start=start, eos=self.wording_.end),
                                strict=True):
                out[row] = hyp
        return out  # type: ignore[return-value]

    def caption(self, data: Any, *, beam: int = 1, max_length: int | None = None,
                length_penalty: float | None = None,
                question: str | Sequence[str] | None = None,
                on_error: OnError = "raise") -> pd.DataFrame:
        """A caption for every picture of ``data``: a folder, a picture file, a list of
        files or Pillow images, or a manifest (file, DataFrame, Manifest) with a picture
        column. ``question`` (one for every picture, or one each) is read before the
        caption by a Captioner trained with questions.

        Returns one row per input row: ``id``, ``file``, ``caption``,
        ``log_likelihood``, ``cut`` (decoding stopped at the length limit) and
        ``problem``: why a row has no caption (it holds no picture, only audio, say; or
        its file is bad under ``on_error="skip"``), else empty.

        Raises:
            ValueError: ``data`` holds no picture column at all (it names what it holds);
                a question for a Captioner trained without questions.
            MediaError: a picture that cannot be decoded (``on_error="raise"``), located.
        """
        self._check_fitted()
        column = self.columns_[0]
        m, problems = images_manifest(data, column, self.roles_)
        questions = self._questions(question, len(m))
        result = pd.DataFrame({"id": m.ids(), "file": m.table[column].tolist(),
                               "caption": None, "log_likelihood": np.nan, "cut": False,
                               "problem": problems})
        present = np.flatnonzero(m.present(column))
        if len(present) == 0:
            result["caption"] = result["caption"].astype(object)
            return result
        loader = self._loader(m.subset(present), shuffle=False, columns=[column],
                              on_error=on_error)
        for batch in loader:
            for index, problem in zip(batch.skipped_indices, batch.skipped, strict=True):
                result.loc[int(present[index]), "problem"] = str(problem.reason)
            if not len(batch):
                continue
            rows = [int(present[i]) for i in batch.indices.tolist()]
            written = self.write(batch.inputs[column], batch.lengths.get(column),
                                 beam=beam, max_length=max_length,
                                 length_penalty=length_penalty,
                                 questions=None if questions is None
                                 else [questions[r] for r in rows])
            for row, hyp in zip(rows, written, strict=True):
                result.loc[row, "caption"] = self.wording_.decode(hyp.ids)
                result.loc[row, "log_likelihood"] = hyp.log_likelihood
                result.loc[row, "cut"] = hyp.cut
        for name in ("caption", "problem"):  # None, not NaN, where a row has none
            result[name] = result[name].astype(object).where(result[name].notna(), None)
        return result

    def log_likelihood(self, data: Any, captions: Sequence[str], *,
                       question: str | Sequence[str] | None = None) -> np.ndarray:
        """The model's log-likelihood of each given caption (its end token included)
        for the pictures of ``data`` in order (after ``question`` where the model was
        trained with questions): the score the search maximises."""
        self._check_fitted()
        column = self.columns_[0]
        m, _ = images_manifest(data, column, self.roles_)
        if len(captions) != len(m):
            raise ValueError(f"{len(captions)} captions for {len(m)} pictures")
        questions = self._questions(question, len(m))
        out = np.full(len(m), np.nan)
        model = self.model_.eval()
        with torch.no_grad():
            for batch in self._loader(m, shuffle=False, columns=[column]):
                rows = batch.indices.tolist()
                labels = torch.stack([self.wording_.target(
                    None if questions is None else questions[r], captions[r],
                    self.max_length, self._max_question) for r in rows])
                memory, padding = model.memory(batch.inputs[column],
                                               batch.lengths.get(column))
                logits = model.logits(labels[:, 0, :-1], memory, padding)
                out[rows] = sequence_log_likelihood(logits, labels).numpy()
        return out

    # -- save / load ----------------------------------------------------------------
    def _fitted(self) -> dict[str, Any]:
        lm = self.decoder != SCRATCH
        return {"columns": self.columns_, "roles": self.roles_, "dim": self.dim_,
                "batch_size": self.batch_size_,
                "vocabulary": [] if lm else self.vocabulary_.words,
                **({"decoder": self.decoder_source_} if lm else {}),
                "encoders": {c: {"name": n, "options": o}
                             for c, (n, o) in self.encoder_specs_.items()}}

    def _restore(self, fitted: Mapping[str, Any]) -> None:
        self.columns_, self.roles_, self.dim_ = fitted["columns"], fitted["roles"], fitted["dim"]
        self.batch_size_ = fitted["batch_size"]
        if self.decoder != SCRATCH:  # the language model loads from its name or folder
            self._set_language_model(fitted["decoder"])
            return
        self.vocabulary_ = Vocabulary(fitted["vocabulary"])
        self.wording_ = WordWording(self.vocabulary_)

