"""Issue 8, point 2: the media decoders and the manifest reader under hypothesis. Good
files are mutated (bytes flipped, cut, inserted, headers overwritten) or replaced by
random bytes; any exception other than polymodal's own (MediaError, ManifestError) is a
bug. A short run is in the default suite; ``-m slow`` (or POLYMODAL_FUZZ_EXAMPLES) runs
the long one of docs/reliability.md (5,000 examples per target)."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from polymodal.data import Manifest, MediaError, validate
from polymodal.data.errors import ManifestError
from polymodal.data.media import MediaLimits, decode_audio, decode_image, decode_text_bytes

QUICK = int(os.environ.get("POLYMODAL_FUZZ_EXAMPLES", "25"))
LONG = int(os.environ.get("POLYMODAL_FUZZ_EXAMPLES", "5000"))
LIMITS = MediaLimits(max_image_pixels=4_000_000, max_audio_seconds=5.0)


def _image(fmt: str) -> bytes:
    buf = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, fmt)
    return buf.getvalue()


def _audio(fmt: str, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    wave = (0.3 * np.sin(np.arange(4000) / 5)).astype(np.float32)
    sf.write(buf, wave, 16000, format=fmt, subtype=subtype)
    return buf.getvalue()


SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" width="20" height="10" viewBox="0 0 20 10">'
       b'<rect width="10" height="10" fill="#00f"/><circle cx="15" cy="5" r="4"/></svg>')
IMAGES = {"png": _image("PNG"), "jpg": _image("JPEG"), "gif": _image("GIF"),
          "webp": _image("WEBP"), "bmp": _image("BMP"), "tiff": _image("TIFF"), "svg": SVG}
SOUNDS = {"wav": _audio("WAV"), "flac": _audio("FLAC"), "ogg": _audio("OGG", "VORBIS"),
          "mp3": _audio("MP3")}
TABLES = {"csv": b"id,image,caption,label\n1,a.png,a red square,red\n2,b.png,\"a, b\",blue\n",
          "jsonl": b'{"id": 1, "caption": "red", "label": "x"}\n{"id": 2, "label": [1]}\n',
          "json": b'[{"id": 1, "caption": "red"}, {"id": 2, "caption": null}]'}


@st.composite
def mutated(draw: st.DrawFn, seeds: dict[str, bytes]) -> tuple[str, bytes]:
    """(suffix, bytes): a seed file mutated, or random bytes under a seed's suffix."""
    suffix = draw(st.sampled_from(sorted(seeds)))
    if draw(st.integers(0, 9)) == 0:
        return suffix, draw(st.binary(max_size=2048))
    data = bytearray(seeds[suffix])
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "overwrite", "zero"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            data = data[:at]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif op == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            data[at: at + len(chunk)] = chunk
        elif op == "zero":
            data[at: at + draw(st.integers(1, 64))] = b"\x00" * 8
    return suffix, bytes(data)


def _decode(kind: str, suffix: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"x.{suffix}"
        path.write_bytes(data)
        try:
            if kind == "image":
                decode_image(path, limits=LIMITS)
            elif kind == "audio":
                decode_audio(path, limits=LIMITS)
            else:
                decode_text_bytes(data)
        except MediaError:
            pass  # our own error: a bad file reported, as it should be


def _manifest(suffix: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"m.{suffix}"
        path.write_bytes(data)
        try:
            m = Manifest.read(path, confine=True)
        except ManifestError:
            return
        report = validate(m, show_progress=False)  # problems are reported, not raised
        assert report.n_rows == len(m)


FUZZ = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))


def _run(target, strategy, examples: int) -> None:
    settings(FUZZ, max_examples=examples)(given(case=strategy)(lambda case: target(*case)))()


@pytest.mark.parametrize("examples", [
    pytest.param(QUICK, id="quick"),
    pytest.param(LONG, id="long", marks=pytest.mark.slow),
])
@pytest.mark.parametrize("target", ["image", "audio", "text", "manifest"])
def test_fuzzed_inputs_raise_only_our_own_errors(target, examples):
    if target == "image":
        _run(lambda s, d: _decode("image", s, d), mutated(IMAGES), examples)
    elif target == "audio":
        _run(lambda s, d: _decode("audio", s, d), mutated(SOUNDS), examples)
    elif target == "text":
        _run(lambda s, d: _decode("text", s, d),
             st.tuples(st.just("txt"), st.binary(max_size=4096)), examples)
    else:
        _run(_manifest, mutated(TABLES), examples)


def test_the_fuzz_seeds_are_good_files():
    """Mutations start from files that decode: the fuzzing explores near valid input."""
    with tempfile.TemporaryDirectory() as folder:
        for suffix, data in {**IMAGES, **SOUNDS}.items():
            path = Path(folder) / f"seed.{suffix}"
            path.write_bytes(data)
            if suffix in SOUNDS:
                assert len(decode_audio(path)) > 1000, suffix
            else:
                assert min(decode_image(path).size) >= 10, suffix
        for suffix, data in TABLES.items():
            path = Path(folder) / f"m.{suffix}"
            path.write_bytes(data)
            assert len(Manifest.read(path)) == 2
    assert isinstance(pd.DataFrame(), pd.DataFrame)


def test_a_tiff_whose_second_frame_lacks_its_width_is_our_error(tmp_path):
    """Found by the long fuzz run: Pillow raised TypeError("Missing dimensions") from a
    TIFF whose second IFD has no ImageWidth; it escaped decode_image until it caught
    every exception of Pillow's plugins."""
    import struct

    buf = io.BytesIO()
    frames = [Image.new("RGB", (4, 4), (i * 80, 0, 0)) for i in range(2)]
    frames[0].save(buf, "TIFF", save_all=True, append_images=frames[1:])
    data = bytearray(buf.getvalue())
    first = struct.unpack("<I", data[4:8])[0]
    n = struct.unpack("<H", data[first: first + 2])[0]
    second = struct.unpack("<I", data[first + 2 + 12 * n: first + 6 + 12 * n])[0]
    for i in range(struct.unpack("<H", data[second: second + 2])[0]):
        entry = second + 2 + 12 * i
        if struct.unpack("<H", data[entry: entry + 2])[0] == 256:  # ImageWidth
            data[entry: entry + 2] = struct.pack("<H", 999)
    path = tmp_path / "two-frames.tiff"
    path.write_bytes(bytes(data))
    with pytest.raises(TypeError, match="Missing dimensions"):
        _ = Image.open(path).n_frames  # Pillow's own exception: not one of ours
    with pytest.raises(MediaError, match="Missing dimensions") as info:
        decode_image(path)
    assert info.value.kind == "unreadable"


@pytest.mark.parametrize("confine", [False, True])
def test_a_path_with_a_nul_byte_is_a_bad_cell(tmp_path, confine):
    """Found by the long fuzz run: a manifest cell with a NUL byte made os.stat and
    Path.resolve raise ValueError out of validate."""
    (tmp_path / "m.jsonl").write_text('{"image": "a\\u0000b.png", "caption": "x"}\n'
                                      '{"image": "loop.png", "caption": "y"}\n')
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")  # a symlink to itself
    report = validate(Manifest.read(tmp_path / "m.jsonl", confine=confine),
                      show_progress=False)
    assert [(p.row, p.column, p.kind) for p in report.problems] == [
        (0, "image", "bad_value"), (1, "image", "unreadable")]
    assert "NUL byte" in report.problems[0].reason
