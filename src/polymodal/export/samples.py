"""Check values for an export: tuxpaint-like captions, pictures and sounds, made here
(deterministic, no download), on which each ONNX graph is compared with torch.

Real inputs, not random tensors: captions of different lengths (so the padding path of
a text tower is traced and checked), drawn pictures of several sizes and colours (the
encoder's own resize brings them to its input), and tones, chirps and noise of several
durations at 16 kHz. Pass your own with ``export_towers(check_values=...)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

CAPTIONS = (
    "A frog.", "a red apple", "A cow says moo.", "the yellow sun over green hills",
    "a small blue bird with a long tail", "Penguin", "a big brown bear in the forest",
    "two fish swimming in the sea", "a wooden boat on a calm lake at night",
    "an orange cat asleep", "A green tree.", "a purple flower in a pot",
    "a fire truck with its ladder up", "the moon and three stars",
    "a snowman with a carrot nose and a black hat", "a car",
)

_COLOURS = ((220, 30, 30), (30, 200, 40), (30, 40, 220), (230, 220, 30), (10, 10, 10),
            (245, 245, 245), (240, 130, 20), (150, 40, 200))


def pictures(n: int = 12, seed: int = 0) -> list[Any]:
    """``n`` drawn pictures (PIL, RGB): a shape of one colour on a background of another,
    sizes from 24 to 300 pixels, with a little pixel noise."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        w, h = (int(v) for v in rng.integers(24, 300, 2))
        back, fore = _COLOURS[i % len(_COLOURS)], _COLOURS[(3 * i + 1) % len(_COLOURS)]
        img = Image.new("RGB", (w, h), back)
        draw = ImageDraw.Draw(img)
        box = [int(w * 0.2), int(h * 0.2), int(w * 0.8), int(h * 0.8)]
        if i % 3 == 0:
            draw.ellipse(box, fill=fore)
        elif i % 3 == 1:
            draw.rectangle(box, fill=fore)
        else:
            draw.polygon([(box[0], box[3]), ((box[0] + box[2]) // 2, box[1]),
                          (box[2], box[3])], fill=fore)
        noise = rng.normal(0, 8, (h, w, 3))
        pixels = np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255)
        out.append(Image.fromarray(pixels.astype(np.uint8)))
    return out


def sounds(n: int = 8, seed: int = 0, sample_rate: int = 16_000) -> list[np.ndarray]:
    """``n`` float32 mono clips at ``sample_rate``: tones, chirps and noise bursts of
    0.3 to 2 seconds."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        seconds = float(rng.uniform(0.3, 2.0))
        t = np.arange(int(seconds * sample_rate)) / sample_rate
        if i % 3 == 0:
            wave = np.sin(2 * np.pi * rng.uniform(150, 1500) * t)
        elif i % 3 == 1:
            f0, f1 = rng.uniform(200, 800), rng.uniform(900, 4000)
            wave = np.sin(2 * np.pi * (f0 + (f1 - f0) * t / (2 * seconds)) * t)
        else:
            wave = rng.normal(0, 1, t.size) * np.exp(-3 * t)
        out.append((0.3 * wave).astype(np.float32))
    return out


def captions(n: int = 12) -> list[str]:
    """``n`` tuxpaint-like captions of different lengths."""
    return [CAPTIONS[i % len(CAPTIONS)] for i in range(n)]


def default_values(modality: str) -> list[Any]:
    """The check values for a tower of ``modality``."""
    if modality == "text":
        return captions()
    if modality == "image":
        return pictures()
    if modality == "audio":
        return sounds()
    raise ValueError(f"no check values for modality {modality!r}")


def check_values_for(column: str, modality: str,
                     given: Mapping[str, Sequence[Any]] | None) -> list[Any]:
    """The values to check ``column`` on: ``given[column]``, else ``given[modality]``,
    else :func:`default_values`. At least two are needed (one batch is traced, the
    rest are held out)."""
    given = given or {}
    values = list(given.get(column, given.get(modality, ())) or default_values(modality))
    values = [v for v in values if v is not None]
    if len(values) < 3:
        raise ValueError(f"check_values for {column!r}: give at least 3 values (2 are "
                         f"traced, the others held out), got {len(values)}")
    return values
