"""Decode one cell: images with Pillow (SVG with cairosvg), audio with soundfile/librosa,
text as UTF-8 or a detected encoding.

Every failure becomes a :class:`~polymodal.data.errors.MediaError` with a ``kind`` and a
reason; the caller (manifest, dataset) adds the row and column. Decoding is bounded:
images larger than :attr:`MediaLimits.max_image_pixels` are refused before their pixels
are read (decompression bombs), audio longer than :attr:`MediaLimits.max_audio_seconds`
is cut to that length while reading (only that much is read), text files larger than
:attr:`MediaLimits.max_text_bytes` are refused.
"""

from __future__ import annotations

import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from polymodal.data.errors import MediaError
from polymodal.data.svg import decode_svg

# Pillow's own bomb check warns then raises at 2x its limit; ours runs first and raises.
Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclass(frozen=True)
class MediaLimits:
    """Bounds on what one cell may cost to decode (documented in docs/data.md)."""

    max_image_pixels: int = 50_000_000
    max_svg_side: int = 1024
    #: the text an SVG may hold, on disk or inflated from gzip
    max_svg_bytes: int = 20_000_000
    #: the elements drawing an SVG may visit, ``<use>`` references expanded
    max_svg_elements: int = 200_000
    max_audio_seconds: float = 60.0
    max_audio_rate: int = 384_000
    max_text_bytes: int = 10_000_000


DEFAULT_LIMITS = MediaLimits()
DEFAULT_SAMPLE_RATE = 16_000


def check_file(path: Path) -> int:
    """The file's size; a clear error for a missing, empty or non-regular file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise MediaError("file not found", kind="missing_file") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the name
        raise MediaError(f"cannot open file: {getattr(exc, 'strerror', None) or exc}",
                         kind="unreadable") from None
    if stat.S_ISDIR(st.st_mode):
        raise MediaError("is a folder, not a file", kind="unreadable")
    if st.st_size == 0:
        raise MediaError("file is empty (0 bytes)", kind="unreadable")
    return st.st_size


def _looks_like_svg(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(1024).lstrip()
    return head.startswith(b"<svg") or (head.startswith((b"<?xml", b"<!")) and b"<svg" in head)


def _flatten(img: Image.Image, mode: str) -> Image.Image:
    """Convert any Pillow mode to ``mode`` consistently: transparency on white."""
    if img.mode in ("P", "PA"):
        img = img.convert("RGBA")
    if img.mode in ("LA", "RGBA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = arr.max() or 1.0
        img = Image.fromarray((arr / top * 255).astype(np.uint8), mode="L")
    return img.convert(mode)


def decode_image(path: str | os.PathLike[str], *, mode: str = "RGB",
                 limits: MediaLimits = DEFAULT_LIMITS) -> Image.Image:
    """Read an image file as a Pillow image in ``mode`` ("RGB" or "L").

    PNG, JPEG, WebP, BMP, TIFF, GIF (first frame) and SVG (rasterised). The format is
    found from the bytes, not the name (an SVG is tried when Pillow does not know them).
    Palette, grey and transparent images are converted the same way everywhere:
    transparency is composited onto white. An EXIF orientation is applied, so a photo
    decodes upright, as it is shown.

    Raises:
        MediaError: missing, empty, unreadable, truncated or too-large image.
    """
    path = Path(path)
    check_file(path)
    try:  # by content: Pillow first, SVG when Pillow does not know the bytes
        with Image.open(path) as opened:
            w, h = opened.size
            if w * h > limits.max_image_pixels:
                raise MediaError(
                    f"image claims {w}x{h} pixels, over the limit of "
                    f"{limits.max_image_pixels:,} (a decompression bomb?)", kind="too_large")
            if getattr(opened, "n_frames", 1) > 1:
                opened.seek(0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                opened.load()
                # a phone stores a portrait photo sideways with an EXIF orientation:
                # decode it as it is shown
                upright = ImageOps.exif_transpose(opened) or opened
            return _flatten(upright, mode)
    except MediaError:
        raise
    except UnidentifiedImageError:
        if path.suffix.lower() == ".svg" or _looks_like_svg(path):
            return _flatten(decode_svg(path, limits), mode)
        raise MediaError("not an image Pillow can identify (wrong format or corrupt)",
                         kind="unreadable") from None
    except Exception as exc:  # Pillow's plugins raise many types on corrupt input
        # (OSError, SyntaxError, ValueError, and from a damaged TIFF TypeError or
        # KeyError: found by tests/test_reliability_fuzz.py)
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason.lower():
            reason = f"truncated image ({reason})"
        raise MediaError(f"cannot decode image: {reason}", kind="unreadable") from None


def decode_audio(path: str | os.PathLike[str], *, sample_rate: int = DEFAULT_SAMPLE_RATE,
                 limits: MediaLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Read an audio file as mono float32 at ``sample_rate`` Hz.

    WAV, FLAC, OGG/Vorbis, Opus and MP3 through libsndfile (soundfile); other formats
    through librosa's fallback. At most ``limits.max_audio_seconds`` are read (a
    1-hour file costs what a minute does), mixed down to mono block by block; sample
    rates above ``limits.max_audio_rate`` are refused.

    Raises:
        MediaError: missing, empty, unreadable or truncated audio.
    """
    import soundfile as sf

    path = Path(path)
    check_file(path)
    try:
        with sf.SoundFile(str(path)) as fh:
            sr = fh.samplerate
            if not 0 < sr <= limits.max_audio_rate:
                raise MediaError(f"sample rate of {sr:,} Hz is outside 1 to "
                                 f"{limits.max_audio_rate:,} Hz", kind="unreadable")
            data = _read_mono(fh, int(limits.max_audio_seconds * sr))
    except MediaError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        data, sr = _decode_audio_fallback(path, exc, limits)
    if data.ndim == 2:
        data = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)
    if data.size == 0:
        raise MediaError("audio has no samples (empty or truncated stream)", kind="unreadable")
    if not np.all(np.isfinite(data)):
        raise MediaError("audio holds NaN or infinite samples", kind="unreadable")
    if sr != sample_rate:
        import librosa

        data = librosa.resample(data, orig_sr=sr, target_sr=sample_rate, res_type="soxr_hq")
    return np.ascontiguousarray(data, dtype=np.float32)


def _read_mono(fh: object, max_frames: int) -> np.ndarray:
    """At most ``max_frames`` frames of an open SoundFile (all when <= 0), mixed down to
    mono block by block: memory holds one block of every channel and the mono result,
    whatever the file's length or channel count claims."""
    block = max(1024, 2**22 // max(1, fh.channels))  # type: ignore[attr-defined]
    left = max_frames if max_frames > 0 else np.iinfo(np.int64).max
    parts: list[np.ndarray] = []
    while left > 0:
        chunk = fh.read(frames=min(block, left), dtype="float32",  # type: ignore[attr-defined]
                        always_2d=True)
        if not len(chunk):
            break
        parts.append(chunk[:, 0].copy() if chunk.shape[1] == 1 else chunk.mean(axis=1))
        left -= len(chunk)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def _decode_audio_fallback(path: Path, first: Exception,
                           limits: MediaLimits) -> tuple[np.ndarray, int]:
    """Formats libsndfile rejects: try librosa (audioread), else report libsndfile's reason."""
    try:
        import librosa

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data, sr = librosa.load(str(path), sr=None, mono=True,
                                    duration=limits.max_audio_seconds)
        return data.astype(np.float32), int(sr)
    except Exception:
        raise MediaError(f"cannot decode audio: {first}", kind="unreadable") from None


_WESTERN = ("cp1252", "latin_1", "iso8859_15")
_CHAOS_MARGIN = 0.05


def decode_text_bytes(raw: bytes) -> str:
    """Bytes to text: UTF-8 (with or without BOM), else a confidently detected encoding.

    Raises:
        MediaError: binary content, or no encoding fits.
    """
    if b"\x00" in raw[:8192] and not raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise MediaError("binary data, not text", kind="not_text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    matches = from_bytes(raw)
    best = matches.best()
    if best is not None:
        # Short texts fit several 8-bit code pages about equally; prefer Western
        # European (the most common non-UTF-8 text) when it fits almost as well.
        western = [m for m in matches if m.encoding in _WESTERN
                   and m.chaos <= best.chaos + _CHAOS_MARGIN]
        best = western[0] if western else best
    if best is None or best.encoding is None:
        raise MediaError("text is not UTF-8 and its encoding could not be detected; "
                         "re-save it as UTF-8", kind="not_text")
    return str(best)


def decode_text_file(path: str | os.PathLike[str], *,
                     limits: MediaLimits = DEFAULT_LIMITS) -> str:
    """Read a text file (UTF-8, or its encoding detected)."""
    path = Path(path)
    check_file(path)
    size = path.stat().st_size
    if size > limits.max_text_bytes:
        raise MediaError(f"text file of {size:,} bytes is over the limit of "
                         f"{limits.max_text_bytes:,}", kind="too_large")
    return decode_text_bytes(path.read_bytes())
