"""Shared fixtures: small media files of every supported kind, good and bad, made here."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from PIL import Image

SR = 16_000


def pytest_configure(config: pytest.Config) -> None:
    """No test may reach a model hub: pretrained models load from packages or folders
    (set before any test module imports transformers)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # fits keep decoded media in a cache of their own, not the user's (one per run)
    import tempfile

    os.environ["POLYMODAL_MEDIA_CACHE"] = tempfile.mkdtemp(prefix="polymodal-media-")
    os.environ["POLYMODAL_FEATURE_CACHE"] = tempfile.mkdtemp(prefix="polymodal-features-")


def tone(seconds: float = 0.5, sr: int = SR, freq: float = 440.0, channels: int = 1
         ) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    wave = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


def write_png(path: Path, size: tuple[int, int] = (12, 10), mode: str = "RGB",
              colour: object = (200, 30, 30)) -> Path:
    Image.new(mode, size, colour).save(path)
    return path


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A real small PNG whose header claims ``width`` x ``height`` (a decompression bomb)."""
    write_png(path, (4, 4))
    raw = bytearray(path.read_bytes())
    ihdr = raw.index(b"IHDR")
    raw[ihdr + 4: ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(raw[ihdr: ihdr + 17])) & 0xFFFFFFFF
    raw[ihdr + 17: ihdr + 21] = struct.pack(">I", crc)
    path.write_bytes(bytes(raw))
    return path


SVG_WITH_ENTITY = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE svg PUBLIC '-//W3C//DTD SVG 1.1//EN'
  'http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd' [
  <!ENTITY ns_svg "http://www.w3.org/2000/svg">
]>
<svg xmlns="&ns_svg;" width="40" height="20" viewBox="0 0 40 20">
  <rect x="0" y="0" width="20" height="20" fill="#0000ff"/>
</svg>
"""


@pytest.fixture()
def media(tmp_path: Path) -> dict[str, Path]:
    """One file of each kind, good and bad, in ``tmp_path/media``."""
    d = tmp_path / "media"
    d.mkdir()
    f: dict[str, Path] = {}
    f["png"] = write_png(d / "red.png")
    f["jpeg"] = d / "green.jpg"
    Image.new("RGB", (16, 16), (20, 200, 20)).save(f["jpeg"], quality=95)
    f["webp"] = d / "blue.webp"
    Image.new("RGB", (8, 8), (0, 0, 255)).save(f["webp"])
    f["gif"] = d / "anim.gif"
    frames = [Image.new("P", (6, 6), i) for i in (1, 2)]
    frames[0].putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    frames[0].save(f["gif"], save_all=True, append_images=frames[1:])
    f["grey"] = write_png(d / "grey.png", mode="L", colour=128)
    f["rgba"] = write_png(d / "transparent.png", mode="RGBA", colour=(255, 0, 0, 0))
    f["palette"] = d / "palette.png"
    solid = Image.new("RGB", (5, 5), (10, 20, 30))
    solid.convert("P", palette=Image.Palette.ADAPTIVE).save(f["palette"])
    f["svg"] = d / "shape.svg"
    f["svg"].write_bytes(SVG_WITH_ENTITY)
    f["wav"] = d / "tone.wav"
    sf.write(f["wav"], tone(), SR)
    f["wav_stereo_44k"] = d / "stereo.wav"
    sf.write(f["wav_stereo_44k"], tone(0.5, 44_100, channels=2), 44_100)
    f["flac"] = d / "tone.flac"
    sf.write(f["flac"], tone(), SR)
    f["ogg"] = d / "tone.ogg"
    sf.write(f["ogg"], tone(1.0), SR, format="OGG", subtype="VORBIS")
    f["mp3"] = d / "tone.mp3"
    sf.write(f["mp3"], tone(), SR, format="MP3")
    f["txt"] = d / "note.txt"
    f["txt"].write_text("a red square", encoding="utf-8")
    f["latin1"] = d / "latin1.txt"
    f["latin1"].write_bytes("Le café était très étonnant, déjà vu à l'été".encode("latin-1"))
    # bad ones
    f["truncated_png"] = d / "truncated.png"
    big = d / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
                    ).save(big)
    f["truncated_png"].write_bytes(big.read_bytes()[:400])
    f["empty_png"] = d / "empty.png"
    f["empty_png"].write_bytes(b"")
    f["text_as_png"] = d / "not_an_image.png"
    f["text_as_png"].write_text("hello, I am text", encoding="utf-8")
    f["bomb_png"] = png_claiming(d / "bomb.png", 1_000_000, 1_000_000)
    f["truncated_ogg"] = d / "truncated.ogg"
    f["truncated_ogg"].write_bytes(f["ogg"].read_bytes()[:200])
    f["empty_wav"] = d / "empty.wav"
    f["empty_wav"].write_bytes(b"")
    f["binary_txt"] = d / "binary.txt"
    f["binary_txt"].write_bytes(b"\x00\x01\x02\xff" * 50)
    return f


COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220),
           "yellow": (230, 220, 30), "black": (10, 10, 10), "white": (245, 245, 245)}


def make_colours(root: Path, n: int = 72, seed: int = 0) -> pd.DataFrame:
    """Pictures of solid colours (with pixel noise) and captions that name them; the
    last sixth of the rows is the test split."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        name = list(COLOURS)[i % len(COLOURS)]
        pixels = np.clip(np.array(COLOURS[name]) + rng.normal(0, 12, (16, 16, 3)), 0, 255)
        path = root / f"{i:03d}.png"
        Image.fromarray(pixels.astype(np.uint8)).save(path)
        caption = rng.choice([f"{name}", f"a {name} square", f"the colour {name}"])
        rows.append({"id": f"{i:03d}", "image": str(path), "caption": caption,
                     "colour": name, "split": "test" if i >= n * 5 // 6 else "train"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="session")
def colours(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return make_colours(tmp_path_factory.mktemp("colours"))


@pytest.fixture(scope="session")
def colour_model(colours: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory):
    """A tiny Pretrainer that aligns the colour pictures with their captions."""
    from polymodal.pretraining import Pretrainer

    run = tmp_path_factory.mktemp("colour-model")
    return Pretrainer(preset="tiny", path=run, max_epochs=25, batch_size=24, lr=5e-3,
                      ).fit(colours[colours.split == "train"].drop(columns=["colour"]),
                            progress=False)


@pytest.fixture(scope="session")
def colour_library(colour_model, colours, tmp_path_factory) -> Path:
    """The root of a library "photos" holding the colour pictures and captions."""
    from polymodal.library import Library

    root = tmp_path_factory.mktemp("libs")
    folder = tmp_path_factory.mktemp("photos")
    colours.drop(columns=["split"]).to_csv(folder / "photos.csv", index=False)
    model = colour_model.save(tmp_path_factory.mktemp("model") / "m")
    Library.create("photos", model, root=root).index(folder / "photos.csv", progress=False)
    return root


@pytest.fixture()
def decodes(monkeypatch: pytest.MonkeyPatch):
    """How many times each (manifest file, row, column) cell is decoded."""
    from collections import Counter

    from polymodal.data.manifest import Manifest

    counts: Counter = Counter()
    original = Manifest.decode

    def counting(self, row, column, options=None):
        counts[(str(self.source), self.source_row(row), column)] += 1
        return original(self, row, column, options)

    monkeypatch.setattr(Manifest, "decode", counting)
    return counts
