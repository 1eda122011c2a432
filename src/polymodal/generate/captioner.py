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
from polymodal.estimator import Estimator
from polymodal.generate.config import CaptionerConfig
from polymodal.generate.decoder import CaptionLoss, CaptionModel
from polymodal.generate.decoding import Hypothesis, decode
from polymodal.generate.inputs import images_manifest
from polymodal.generate.tokens import Vocabulary

KIND = "captioner"


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
        self._store(locals())

    # -- the rows and columns -----------------------------------------------------
    def _read(self, data: Any) -> Manifest:
        roles = {**(self.roles or {}), self.text: "label"}
        m = Manifest.read(data, label=self.text, roles=roles)
        if self.text not in m.table.columns:
            raise ManifestError(f"{m.source}: caption column {self.text!r} is not in the "
                                f"manifest; columns: {list(m.table.columns)}")
        return m

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
        self.vocabulary_ = Vocabulary.fit(captions, min_count=self.min_count)

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
        return _CaptionTarget(self.vocabulary_, self.max_length)

    def _make_model(self, cached: set[str] | None = None) -> CaptionModel:
        return CaptionModel(self._encoders, len(self.vocabulary_), self.dim_,
                            layers=self.layers, heads=self.heads,
                            max_length=self.max_length, dropout=self.dropout, cached=cached)

    def _objective(self, train: Manifest) -> torch.nn.Module:
        return CaptionLoss()

    # -- writing ------------------------------------------------------------------
    @torch.no_grad()
    def write(self, pictures: torch.Tensor, lengths: torch.Tensor | None = None, *,
              beam: int = 1, max_length: int | None = None,
              length_penalty: float | None = None) -> list[Hypothesis]:
        """Hypotheses for a batch of collated pictures (the tower's ``preprocess``
        outputs, stacked)."""
        self._check_fitted()
        limit = self.max_length if max_length is None else max_length
        if limit > self.max_length:
            raise ValueError(f"max_length {limit} is past this model's limit of "
                             f"{self.max_length} tokens (set when it was trained)")
        model = self.model_.eval()
        device = next(model.parameters()).device
        memory, padding = model.memory(pictures.to(device),
                                       None if lengths is None else lengths.to(device))
        return decode(model.next_log_probs, memory, padding, limit, beam,
                      self.length_penalty if length_penalty is None else length_penalty)

    def caption(self, data: Any, *, beam: int = 1, max_length: int | None = None,
                length_penalty: float | None = None, on_error: OnError = "raise"
                ) -> pd.DataFrame:
        """A caption for every picture of ``data``: a folder, a picture file, a list of
        files or Pillow images, or a manifest (file, DataFrame, Manifest) with a picture
        column.

        Returns one row per input row: ``id``, ``file``, ``caption``,
        ``log_likelihood``, ``cut`` (decoding stopped at the length limit) and
        ``problem``: why a row has no caption (it holds no picture, only audio, say; or
        its file is bad under ``on_error="skip"``), else empty.

        Raises:
            ValueError: ``data`` holds no picture column at all (it names what it holds).
            MediaError: a picture that cannot be decoded (``on_error="raise"``), located.
        """
        self._check_fitted()
        column = self.columns_[0]
        m, problems = images_manifest(data, column, self.roles_)
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
            written = self.write(batch.inputs[column], batch.lengths.get(column),
                                 beam=beam, max_length=max_length,
                                 length_penalty=length_penalty)
            for index, hyp in zip(batch.indices.tolist(), written, strict=True):
                row = int(present[index])
                result.loc[row, "caption"] = self.vocabulary_.decode(hyp.ids)
                result.loc[row, "log_likelihood"] = hyp.log_likelihood
                result.loc[row, "cut"] = hyp.cut
        for name in ("caption", "problem"):  # None, not NaN, where a row has none
            result[name] = result[name].astype(object).where(result[name].notna(), None)
        return result

    def log_likelihood(self, data: Any, captions: Sequence[str]) -> np.ndarray:
        """The model's log-likelihood of each given caption (``<eos>`` included) for
        the pictures of ``data`` in order: the score the search maximises."""
        self._check_fitted()
        column = self.columns_[0]
        m, _ = images_manifest(data, column, self.roles_)
        if len(captions) != len(m):
            raise ValueError(f"{len(captions)} captions for {len(m)} pictures")
        out = np.full(len(m), np.nan)
        model = self.model_.eval()
        with torch.no_grad():
            for batch in self._loader(m, shuffle=False, columns=[column]):
                rows = batch.indices.tolist()
                targets = torch.stack([self.vocabulary_.target(captions[r], self.max_length)
                                       for r in rows])
                memory, padding = model.memory(batch.inputs[column],
                                               batch.lengths.get(column))
                logp = torch.log_softmax(model.logits(targets[:, :-1], memory, padding), -1)
                picked = logp.gather(-1, targets[:, 1:, None])[..., 0]
                picked = picked.masked_fill(targets[:, 1:] == 0, 0.0)
                out[rows] = picked.sum(-1).numpy()
        return out

    # -- save / load ----------------------------------------------------------------
    def _fitted(self) -> dict[str, Any]:
        return {"columns": self.columns_, "roles": self.roles_, "dim": self.dim_,
                "batch_size": self.batch_size_, "vocabulary": self.vocabulary_.words,
                "encoders": {c: {"name": n, "options": o}
                             for c, (n, o) in self.encoder_specs_.items()}}

    def _restore(self, fitted: Mapping[str, Any]) -> None:
        self.columns_, self.roles_, self.dim_ = fitted["columns"], fitted["roles"], fitted["dim"]
        self.batch_size_ = fitted["batch_size"]
        self.vocabulary_ = Vocabulary(fitted["vocabulary"])


class _CaptionTarget:
    """A caption cell -> its padded ids (the dataset's label transform; picklable)."""

    def __init__(self, vocabulary: Vocabulary, max_length: int) -> None:
        self.vocabulary, self.max_length = vocabulary, max_length

    def __call__(self, caption: Any) -> torch.Tensor:
        return self.vocabulary.target(str(caption), self.max_length)
