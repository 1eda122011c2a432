"""The media cache (``polymodal.data.media_cache``): seconds per epoch of decoding and
preprocessing real-size media, with the cache off (every epoch decodes: the baseline),
cold (the first epoch: decode, hash, write) and warm (a later run reads the entries).

The data are made in a temp folder: 5 s WAV clips at 44.1 kHz (decoded to 16 kHz mono,
then the ``logmel-cnn`` encoder's preprocess) and 1024 x 768 JPEG photos (decoded,
then the ``resnet`` encoder's preprocess at 224 px). The memory cache is off
throughout, so every number is the disk path alone. ``--quick``: 20 files of each.

``python -m benchmarks --only media-cache [--quick]``, or ``python -m
benchmarks.media_cache [--quick]`` to print the section only.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from PIL import Image

from benchmarks.report import Section, best_of
from polymodal.data import Manifest, MultimodalDataset
from polymodal.data.media_cache import MediaCache
from polymodal.encoders.registry import build_encoder

SECONDS, RATE = 5.0, 44_100
WIDTH, HEIGHT = 1024, 768


def make_clips(folder: Path, n: int, seed: int = 0) -> list[str]:
    """``n`` mono 16-bit WAVs of 5 s at 44.1 kHz: a chord of random tones and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SECONDS * RATE)) / RATE
    paths = []
    for i in range(n):
        freqs = rng.uniform(100, 4000, 3)
        wave = sum(np.sin(2 * np.pi * f * t) for f in freqs) / 4
        wave = wave + rng.normal(0, 0.05, t.size)
        path = folder / f"clip-{i:03d}.wav"
        sf.write(path, wave.astype(np.float32), RATE, subtype="PCM_16")
        paths.append(str(path))
    return paths


def make_photos(folder: Path, n: int, seed: int = 0) -> list[str]:
    """``n`` 1024 x 768 JPEGs (quality 90): smooth gradients, shapes and grain, about
    the size a camera's resized photo has."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    paths = []
    for i in range(n):
        a, b, c = rng.uniform(0.002, 0.02, 3)
        rgb = np.stack([127 + 100 * np.sin(a * x + i), 127 + 100 * np.cos(b * y),
                        127 + 100 * np.sin(c * (x + y))], axis=-1)
        rgb += rng.normal(0, 8, rgb.shape)
        path = folder / f"photo-{i:03d}.jpg"
        Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(str(path))
    return paths


def epoch(manifest: Manifest, column: str, preprocess: Callable,
          cache: MediaCache | None) -> int:
    """One pass over the rows as a fit reads them (DataLoader, batches of 32)."""
    ds = MultimodalDataset(manifest, columns=[column], transforms={column: preprocess},
                           media_cache=cache)
    return sum(len(b) for b in ds.loader(batch_size=32))


def measure(manifest: Manifest, column: str, preprocess: Callable, folder: Path,
            repeats: int) -> dict[str, float]:
    """Seconds per epoch: off (best of ``repeats``), cold (one first epoch), warm (best
    of ``2 * repeats`` later runs, each a new cache object on the filled folder)."""
    epoch(manifest.subset([0]), column, preprocess, None)  # imports (librosa), warm-up
    off, _ = best_of(lambda: epoch(manifest, column, preprocess, None), repeats)
    cold, _ = best_of(lambda: epoch(manifest, column, preprocess, MediaCache(folder)), 1)
    warm, _ = best_of(lambda: epoch(manifest, column, preprocess, MediaCache(folder)),
                      2 * repeats)
    return {"off": off, "cold": cold, "warm": warm,
            "mb": MediaCache(folder).size_bytes() / 2**20}


def run(quick: bool = False) -> Section:
    n = 20 if quick else 200
    repeats = 3
    section = Section(
        key="media-cache", title="Media decoded once: the disk cache of decoded media",
        command="python -m benchmarks --only media-cache" + (" --quick" if quick else ""),
        columns=["what", "files", "off: s/epoch (baseline)", "cold: s/epoch",
                 "warm: s/epoch", "warm speed-up", "cache MB"])
    with tempfile.TemporaryDirectory(prefix="polymodal-media-bench-") as tmp:
        root = Path(tmp)
        (root / "audio").mkdir()
        (root / "images").mkdir()
        cases = [
            (f"{SECONDS:g} s WAV at 44.1 kHz -> 16 kHz mono -> logmel-cnn preprocess",
             "audio", make_clips(root / "audio", n), build_encoder("logmel-cnn")),
            (f"{WIDTH}x{HEIGHT} JPEG -> RGB -> resnet preprocess (224 px)", "image",
             make_photos(root / "images", n), build_encoder("resnet", image_size=224)),
        ]
        for what, column, paths, encoder in cases:
            m = Manifest.read(pd.DataFrame({column: paths}), roles={column: column})
            r = measure(m, column, encoder.preprocess, root / f"cache-{column}", repeats)
            section.rows.append([what, f"{n}", f"{r['off']:.2f}", f"{r['cold']:.2f}",
                                 f"{r['warm']:.3f}", f"{r['off'] / r['warm']:.1f}x",
                                 f"{r['mb']:.0f}"])
    section.notes = (
        "Off decodes and preprocesses every file every epoch (what a fit without the "
        "memory cache did, and what every new run did). Cold is the first epoch with "
        "the cache: the same work plus hashing each file (SHA-256) and writing its "
        "tensor. Warm is a later run: each file is checked (stat, its index entry) and "
        "its tensor read back memory-mapped. The warm entries were just written, so "
        "they come from the OS page cache; after a reboot the first warm epoch reads "
        "them from the disk (about 0.6 MB a picture, 0.3 MB a clip).")
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    print(run(parser.parse_args().quick).render())


if __name__ == "__main__":
    main()
