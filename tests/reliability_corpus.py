"""The bad-input corpus of the reliability tests (issue 8), made in a folder by
:func:`make_corpus`: good rows, and one row per kind of bad input with the problem that
``validate`` must name for it.

Layout::

    <tmp>/corpus/manifest.csv      the manifest (paths relative to corpus/)
    <tmp>/corpus/media/...         good and bad files
    <tmp>/corpus/link.png          a symlink that points out of corpus/
    <tmp>/outside/real.png         a good picture outside the manifest's folder
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from PIL import Image

from conftest import png_claiming

SR = 16_000
HOUR = 3600


def silent_wav(path: Path, seconds: float, sr: int = SR) -> Path:
    """A 16-bit mono WAV of ``seconds`` of silence, written as a sparse file (an hour
    takes 115 MB of file length and almost no disk)."""
    n_bytes = int(seconds * sr) * 2
    header = (b"RIFF" + struct.pack("<I", 36 + n_bytes) + b"WAVE"
              + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, sr, sr * 2, 2, 16)
              + b"data" + struct.pack("<I", n_bytes))
    with path.open("wb") as fh:
        fh.write(header)
        fh.truncate(len(header) + n_bytes)
    return path


def _tone(seconds: float = 0.5, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@dataclass
class Corpus:
    """A corpus on disk: its manifest, the good rows, and per bad row the
    (column, kind) that validate must report."""

    root: Path
    manifest: Path
    outside: Path
    good: list[int] = field(default_factory=list)
    bad: dict[int, tuple[str, str]] = field(default_factory=dict)
    cases: dict[int, str] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        return len(self.good) + len(self.bad)


def make_corpus(tmp: Path) -> Corpus:
    """Write the corpus under ``tmp`` and return what it holds."""
    root, outside = tmp / "corpus", tmp / "outside"
    media = root / "media"
    media.mkdir(parents=True)
    outside.mkdir()
    rng = np.random.default_rng(0)

    def picture(name: str, colour: int, fmt: str = "PNG") -> str:
        pixels = np.clip(colour + rng.normal(0, 20, (16, 16, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(media / name, fmt)
        return f"media/{name}"

    def sound(name: str, freq: float, fmt: str = "WAV") -> str:
        kw = {"format": "OGG", "subtype": "VORBIS"} if fmt == "OGG" else {}
        sf.write(media / name, _tone(0.5, freq), SR, **kw)
        return f"media/{name}"

    def note(name: str, text: str) -> str:
        (media / name).write_text(text, encoding="utf-8")
        return f"media/{name}"

    rows: list[dict[str, object]] = []
    corpus = Corpus(root, root / "manifest.csv", outside)

    def add(case: str, bad: tuple[str, str] | None = None, **cells: object) -> None:
        i = len(rows)
        label = i % 2
        row = {"id": f"r{i:02d}", "image": picture(f"p{i}.png", 60 + 150 * label),
               "audio": sound(f"s{i}.wav", 300 + 400 * label),
               "note": note(f"n{i}.txt", ["a dark thing", "a bright thing"][label]),
               "label": str(label)}
        row.update(cells)
        rows.append(row)
        corpus.cases[i] = case
        if bad is None:
            corpus.good.append(i)
        else:
            corpus.bad[i] = bad

    for _ in range(8):
        add("good row")
    add("good row, JPEG picture and OGG sound",
        image=picture("good.jpg", 200, "JPEG"), audio=sound("good.ogg", 700, "OGG"),
        label="1")
    (media / "cp1252.txt").write_bytes("un café très étonnant, déjà".encode("cp1252"))
    add("text in cp1252 (not UTF-8): decoded by detection", note="media/cp1252.txt")
    add("1-hour silent WAV (read up to 60 s)",
        audio=f"media/{silent_wav(media / 'hour.wav', HOUR).name}")

    big = media / "big.png"
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(big)
    (media / "truncated.png").write_bytes(big.read_bytes()[:400])
    add("truncated PNG", ("image", "unreadable"), image="media/truncated.png")
    (media / "empty.png").write_bytes(b"")
    add("zero-byte PNG", ("image", "unreadable"), image="media/empty.png")
    bigj = media / "big.jpg"
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(bigj, "JPEG")
    (media / "truncated.jpg").write_bytes(bigj.read_bytes()[:600])
    add("truncated JPEG", ("image", "unreadable"), image="media/truncated.jpg")
    (media / "empty.jpg").write_bytes(b"")
    add("zero-byte JPEG", ("image", "unreadable"), image="media/empty.jpg")
    (media / "text.png").write_text("hello, I am text in a .png", encoding="utf-8")
    add("text file named .png", ("image", "unreadable"), image="media/text.png")
    png_claiming(media / "bomb.png", 1_000_000, 1_000_000)
    add("PNG claiming 10^6 x 10^6 pixels (decompression bomb)", ("image", "too_large"),
        image="media/bomb.png")
    wav = (media / "s0.wav").read_bytes()
    (media / "truncated.wav").write_bytes(wav[:30])
    add("truncated WAV (cut in its header)", ("audio", "unreadable"),
        audio="media/truncated.wav")
    (media / "empty.wav").write_bytes(b"")
    add("zero-byte WAV", ("audio", "unreadable"), audio="media/empty.wav")
    ogg = (media / "good.ogg").read_bytes()
    (media / "truncated.ogg").write_bytes(ogg[:200])
    add("truncated OGG", ("audio", "unreadable"), audio="media/truncated.ogg")
    (media / "empty.ogg").write_bytes(b"")
    add("zero-byte OGG", ("audio", "unreadable"), audio="media/empty.ogg")
    add("label of the wrong type (a word among numbers)", ("label", "bad_label"),
        label="cat")
    (media / "binary.txt").write_bytes(b"\x00\xff\xfe\x01" * 64)
    add("non-UTF-8 binary text", ("note", "not_text"), note="media/binary.txt")
    picture("p_out.png", 100)
    (outside / "real.png").write_bytes((media / "p_out.png").read_bytes())
    add("path with '..' leading out", ("image", "outside_root"),
        image="../outside/real.png")
    add("absolute path outside the folder", ("image", "outside_root"),
        image=str(outside / "real.png"))
    (root / "link.png").symlink_to(outside / "real.png")
    add("symlink pointing out of the folder", ("image", "outside_root"), image="link.png")
    add("missing file", ("image", "missing_file"), image="media/nope.png")
    add("duplicate id", ("id", "duplicate_id"), id="r00")
    pd.DataFrame(rows).to_csv(corpus.manifest, index=False)
    return corpus
