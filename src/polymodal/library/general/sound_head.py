"""``builtin:general``'s audio head: a clip put into the shared space by what is said in
it and by what it sounds like, weighted by how surely it is speech (measured leaving
each sound source out: :mod:`.sound_loso`).

A clip's input is ``[s t, (1 - s) a, 1 - s]``: ``t`` MiniLM's vector of Whisper's
transcript, ``a`` Whisper's encoder states pooled (standardised on the training clips),
``s`` the words' share (:func:`~polymodal.encoders.audio_heard.speech_weight` of
Whisper's estimate of how surely the clip is speech). The
head is linear: the locked caption head on ``t`` (a transcript is words, so speech
lands where its words do, as before) beside a learnt map of ``a``; only that map is
trained, with symmetric InfoNCE against the captions' places (the caption head on
MiniLM), so a sound effect ranks its name above the others (and reaches pictures
through those words, not directly: docs/general-model.md)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from polymodal.encoders.audio_heard import speech_weight
from polymodal.encoders.audio_whisper import POOLINGS
from polymodal.library.general.heads import DIM
from polymodal.library.general.sound_features import SoundFeatures

#: Whisper's pooled encoder states: mean and standard deviation of 384 axes
EFFECT_DIM = 768


@dataclass(frozen=True)
class SoundHeadSettings:
    """How the audio map is trained: full-batch steps, learning rate, L2 weight,
    InfoNCE temperature, seed, and which pooled states it reads ("mean" or
    "mean+std")."""

    steps: int = 100
    lr: float = 1e-2
    decay: float = 1e-2
    temperature: float = 0.05
    seed: int = 0
    pooling: str = "mean+std"

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")


@dataclass
class SoundHead:
    """A trained audio head: the standardisation of the pooled states (``mean``,
    ``scale``, over :data:`EFFECT_DIM` axes, 0 scale-inverse on axes not read) and the
    map ``weight`` (:data:`DIM`, :data:`EFFECT_DIM`) of standardised states."""

    mean: torch.Tensor
    inverse_scale: torch.Tensor
    weight: torch.Tensor

    def linear(self, caption_head: torch.Tensor) -> torch.Tensor:
        """The whole head as one linear map (no bias) of the encoder's output ``[s t,
        (1 - s) a, 1 - s]``: its weight (DIM, 384 + 768 + 1). The standardisation is
        folded in: ``W ((1 - s)(a - m) / c) = (W / c)((1 - s) a) - (W m / c)(1 - s)``."""
        effect = self.weight * self.inverse_scale
        offset = -(effect @ self.mean)
        return torch.cat([caption_head, effect, offset[:, None]], 1)


def encoder_inputs(f: SoundFeatures, weight: np.ndarray | None = None) -> np.ndarray:
    """The audio encoder's output for these clips: ``[s t, (1 - s) a, 1 - s]``, ``s``
    the words' share (:func:`~polymodal.encoders.audio_heard.speech_weight` of their
    speech estimates, or ``weight`` given)."""
    s = (speech_weight(f.speech) if weight is None else
         np.broadcast_to(np.asarray(weight, np.float32), f.speech.shape))[:, None]
    return np.concatenate([s * f.said, (1 - s) * f.effect, 1 - s], 1).astype(np.float32)


def embed_sounds(head: torch.Tensor, f: SoundFeatures, speech: np.ndarray | None = None
                 ) -> np.ndarray:
    """The clips' normalised places through a whole head (:meth:`SoundHead.linear`);
    ``speech`` overrides the words' share (1: the transcript alone, 0: the sound
    alone)."""
    with torch.no_grad():
        out = torch.as_tensor(encoder_inputs(f, speech)) @ head.T
        return torch.nn.functional.normalize(out, dim=-1).numpy()


def caption_places(caption_head: torch.Tensor, words: np.ndarray) -> np.ndarray:
    """The captions' normalised places (the locked caption head on MiniLM)."""
    with torch.no_grad():
        out = torch.as_tensor(words, dtype=torch.float32) @ caption_head.T
        return torch.nn.functional.normalize(out, dim=-1).numpy()


def train_sound_head(train: SoundFeatures, caption_head: torch.Tensor,
                     settings: SoundHeadSettings = SoundHeadSettings()) -> SoundHead:
    """The audio map trained on ``train``'s clips (one per caption key, so no name is
    its own negative) towards their captions' places; the transcript part stays the
    locked caption head."""
    one = train.distinct()
    if len(one) < 2:
        raise ValueError(f"training the audio head needs at least 2 names, got {len(one)}")
    read = EFFECT_DIM if settings.pooling == "mean+std" else EFFECT_DIM // 2
    mean = torch.zeros(EFFECT_DIM)
    inverse = torch.zeros(EFFECT_DIM)
    effect = torch.as_tensor(one.effect)
    mean[:read] = effect[:, :read].mean(0)
    inverse[:read] = 1 / effect[:, :read].std(0).clamp(min=1e-6)
    s = torch.as_tensor(speech_weight(one.speech))[:, None]
    standard = (effect - mean) * inverse
    fixed = s * (torch.as_tensor(one.said) @ caption_head.T)
    targets = torch.as_tensor(caption_places(caption_head, one.words))
    g = torch.Generator().manual_seed(settings.seed)
    weight = (torch.randn(DIM, EFFECT_DIM, generator=g) * 0.01 * (inverse > 0))
    weight[DIM - 1] = 0  # the "nothing" axis: a sound, like a word, is something
    weight.requires_grad_()
    mask = torch.ones(DIM, EFFECT_DIM)
    mask[DIM - 1] = 0
    mask[:, inverse == 0] = 0
    opt = torch.optim.Adam([weight], lr=settings.lr)
    target = torch.arange(len(one))
    for _ in range(settings.steps):
        w = weight * mask
        u = torch.nn.functional.normalize(fixed + (1 - s) * (standard @ w.T), dim=-1)
        logits = u @ targets.T / settings.temperature
        loss = (torch.nn.functional.cross_entropy(logits, target)
                + torch.nn.functional.cross_entropy(logits.T, target)) / 2
        opt.zero_grad()
        (loss + settings.decay * w.pow(2).sum()).backward()
        opt.step()
    return SoundHead(mean, inverse, (weight * mask).detach().clone())
