"""Corrupt decoded cells on purpose, to measure robustness (MultiBench style): one
``level`` from 0 (clean) to 1 (the signal drowned) per modality."""

from __future__ import annotations

from collections.abc import Callable
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
