"""Corrupt decoded cells on purpose, to measure robustness (MultiBench style): one
``level`` from 0 (clean) to 1 (the signal drowned) per modality, or, for audio, a
signal-to-noise ratio in decibels (:func:`noisy_snr`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from PIL import Image


def noisy(role: str, level: float, seed: int = 0) -> Callable[[Any], Any]:
    """A function that corrupts one decoded cell of ``role`` at ``level`` in [0, 1]:

    - image: Gaussian pixel noise with sigma = ``level`` (pixels in 0..1);
    - audio: white noise with standard deviation 3 x ``level`` x the clip's own;
    - text: each word replaced by a nonsense word with probability ``level``.

    Deterministic for a seed and the order of the calls.
    """
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"noise level must be in [0, 1], got {level}")
    rng = np.random.default_rng(seed)

    def image(img: Image.Image) -> Image.Image:
        arr = np.asarray(img, dtype=np.float32) / 255.0
        arr = np.clip(arr + rng.normal(0.0, level, arr.shape), 0.0, 1.0)
        return Image.fromarray((arr * 255).astype(np.uint8), mode=img.mode)

    def audio(wave: np.ndarray) -> np.ndarray:
        scale = 3.0 * level * (float(np.std(wave)) or 1e-3)
        return (wave + rng.normal(0.0, scale, wave.shape)).astype(np.float32)

    def text(value: str) -> str:
        words = value.split()
        return " ".join("zzxq" if rng.random() < level else w for w in words)

    try:
        return {"image": image, "audio": audio, "text": text}[role]
    except KeyError:
        raise ValueError(f"no noise for role {role!r}; image, audio or text") from None


def corruption_for(noise: Mapping[str, Any] | None, column: str, role: str,
                   seed: int = 0) -> Callable[[Any], Any] | None:
    """What ``evaluate(noise=...)`` does to one column's decoded cells: every entry
    keyed by the column or its role (a level above 0 or a function), composed (a
    later entry applies first), or None when none applies."""
    found = [level if callable(level) else noisy(role, level, seed=seed)
             for key, level in (noise or {}).items()
             if key in (column, role) and (callable(level) or level > 0)]
    if not found:
        return None

    def corrupt(value: Any) -> Any:
        for f in reversed(found):
            value = f(value)
        return value
    return corrupt


def level_for_snr(snr_db: float) -> float:
    """The :func:`noisy` audio level whose added noise has this SNR (level 1 is about
    -9.5 dB): ``10 ** (-snr_db / 20) / 3``; 0 for an infinite SNR (clean)."""
    return 0.0 if math.isinf(snr_db) and snr_db > 0 else 10 ** (-snr_db / 20) / 3


def noisy_snr(role: str, snr_db: float, seed: int = 0) -> Callable[[Any], Any]:
    """A function that adds white Gaussian noise to one decoded audio clip so that the
    ratio of the clip's power (mean square) to the added noise's power is ``snr_db``
    decibels: noise standard deviation = RMS(clip) x 10 ** (-snr_db / 20). ``inf`` (or
    ``float("inf")``) returns the clip unchanged. Any finite SNR is accepted (-10 dB,
    beyond :func:`noisy`'s level 1, included). A silent clip gets noise of standard
    deviation 1e-3 x 10 ** (-snr_db / 20).

    Only ``role="audio"``: a picture's pixels are clipped to their range, so an SNR
    would not hold there. Deterministic for a seed and the order of the calls.
    """
    if role != "audio":
        raise ValueError(f"an SNR applies to audio only, not to {role!r}; use noisy(role, "
                         "level) for images and text")
    if math.isnan(snr_db) or snr_db == -math.inf:
        raise ValueError(f"SNR must be a number of decibels or +inf, got {snr_db}")
    if snr_db == math.inf:
        return lambda wave: wave
    rng = np.random.default_rng(seed)
    ratio = 10 ** (-snr_db / 20)

    def audio(wave: np.ndarray) -> np.ndarray:
        rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) if wave.size else 0.0
        scale = (rms or 1e-3) * ratio
        return (wave + rng.normal(0.0, scale, wave.shape)).astype(np.float32)

    return audio
