"""Handcrafted features: what a practitioner computes in ten lines, as frozen encoders.

``mfcc-stats`` (librosa MFCCs summarised over time) and ``colour-stats`` (colour
moments, an HSV histogram, a small grey thumbnail and a gradient-orientation
histogram) learn nothing and run in ``preprocess`` (CPU, picklable, in DataLoader
workers); ``forward`` hands the vector on as one token. They are the cheap candidates
of the ``auto`` fit (:mod:`polymodal.auto`) and a floor any learned tower must beat.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image

from polymodal.encoders.base import Encoded, ModalityEncoder, single_token
from polymodal.encoders.registry import register_encoder

SAMPLE_RATE = 16_000


class _Fixed(ModalityEncoder):
    """A feature function in ``preprocess``; nothing to train (frozen, cacheable)."""

    def __init__(self) -> None:
        super().__init__()
        self.freeze()

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> Encoded:
        return single_token(inputs.float())


@register_encoder("mfcc-stats", modality="audio", output_dim=3 * 20 + 3,
                  description="20 MFCCs' means and standard deviations over time, their "
                              "deltas' deviations, loudness and length (librosa; nothing "
                              "trained)")
class MFCCStats(_Fixed):
    """A clip (16 kHz mono) to MFCC statistics: per coefficient the mean and standard
    deviation over frames and the deviation of its delta; the mean and deviation of
    the frames' RMS loudness; the log of the clip's length in seconds.

    Args:
        n_mfcc: coefficients per frame.
        max_seconds: the part of each clip summarised.
    """

    modality = "audio"

    def __init__(self, n_mfcc: int = 20, max_seconds: float = 30.0) -> None:
        super().__init__()
        if n_mfcc < 2:
            raise ValueError(f"n_mfcc must be >= 2, got {n_mfcc}")
        self.n_mfcc, self.max_seconds = int(n_mfcc), float(max_seconds)
        self.output_dim = 3 * self.n_mfcc + 3

    def config(self) -> dict[str, Any]:
        return {"n_mfcc": self.n_mfcc, "max_seconds": self.max_seconds}

    def preprocess(self, value: np.ndarray) -> torch.Tensor:
        import librosa

        wave = np.asarray(value, dtype=np.float32).reshape(-1)
        wave = wave[: int(self.max_seconds * SAMPLE_RATE)]
        seconds = len(wave) / SAMPLE_RATE
        if len(wave) < 2048:
            wave = np.pad(wave, (0, 2048 - len(wave)))
        mfcc = librosa.feature.mfcc(y=wave, sr=SAMPLE_RATE, n_mfcc=self.n_mfcc)
        frames = mfcc.shape[1]
        width = 9 if frames >= 9 else frames - (1 - frames % 2)  # odd, <= frames
        delta = librosa.feature.delta(mfcc, width=width) if width >= 3 \
            else np.zeros_like(mfcc)
        rms = librosa.feature.rms(y=wave)[0]
        out = np.concatenate([mfcc.mean(axis=1), mfcc.std(axis=1), delta.std(axis=1),
                              [np.log1p(100 * rms.mean()), np.log1p(100 * rms.std()),
                               np.log(seconds + 1e-3)]])
        return torch.from_numpy(np.nan_to_num(out).astype(np.float32))


@register_encoder("colour-stats", modality="image", output_dim=6 + 72 + 64 + 32,
                  description="colour moments, an HSV histogram, an 8x8 grey thumbnail "
                              "and a gradient-orientation histogram (numpy; nothing "
                              "trained)")
class ColourStats(_Fixed):
    """A picture to cheap global statistics: the mean and deviation of R, G and B; an
    8 x 3 x 3 histogram of hue, saturation and value; an 8 x 8 grey thumbnail; an
    8-bin histogram of gradient orientations (weighted by magnitude) in each quarter.
    Transparent pixels are composited on white (as the picture is shown)."""

    modality = "image"

    def __init__(self) -> None:
        super().__init__()
        self.output_dim = 6 + 72 + 64 + 32

    def preprocess(self, value: Image.Image) -> torch.Tensor:
        img = value
        if img.mode in ("RGBA", "LA", "P"):
            rgba = img.convert("RGBA")
            img = Image.new("RGB", rgba.size, (255, 255, 255))
            img.paste(rgba, mask=rgba.getchannel("A"))
        img = img.convert("RGB").resize((64, 64), Image.Resampling.BILINEAR)
        rgb = np.asarray(img, dtype=np.float32) / 255.0
        moments = np.concatenate([rgb.mean(axis=(0, 1)), rgb.std(axis=(0, 1))])
        hsv = np.asarray(img.convert("HSV"), dtype=np.float32) / 255.0
        hist, _ = np.histogramdd(hsv.reshape(-1, 3), bins=(8, 3, 3),
                                 range=((0, 1), (0, 1), (0, 1)))
        hist = hist.reshape(-1) / hsv.shape[0] / hsv.shape[1]
        grey = np.asarray(img.convert("L").resize((8, 8), Image.Resampling.BOX),
                          dtype=np.float32).reshape(-1) / 255.0
        g = np.asarray(img.convert("L").resize((32, 32), Image.Resampling.BILINEAR),
                       dtype=np.float32) / 255.0
        gy, gx = np.gradient(g)
        magnitude, angle = np.hypot(gx, gy), np.mod(np.arctan2(gy, gx), np.pi)
        quarters = []
        for rows in (slice(0, 16), slice(16, 32)):
            for cols in (slice(0, 16), slice(16, 32)):
                h, _ = np.histogram(angle[rows, cols], bins=8, range=(0, np.pi),
                                    weights=magnitude[rows, cols])
                quarters.append(h / (magnitude[rows, cols].sum() + 1e-6))
        out = np.concatenate([moments, hist, grey, *quarters])
        return torch.from_numpy(out.astype(np.float32))
