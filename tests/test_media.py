"""Media decoding: every supported format decodes; every bad file is one MediaError."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from polymodal.data import MediaError, MediaLimits, decode_audio, decode_image
from polymodal.data.media import decode_text_file
from polymodal.data.svg import expand_internal_entities


@pytest.mark.parametrize("kind", ["png", "jpeg", "webp", "gif", "grey", "rgba", "palette",
                                  "svg"])
def test_every_image_format_decodes_to_rgb(media, kind):
    img = decode_image(media[kind])
    assert img.mode == "RGB"
    assert min(img.size) > 0


def test_image_modes_are_converted_consistently(media):
    assert decode_image(media["png"]).getpixel((0, 0)) == (200, 30, 30)
    assert decode_image(media["grey"]).getpixel((0, 0)) == (128, 128, 128)
    # fully transparent red becomes the white background, not black or red
    assert decode_image(media["rgba"]).getpixel((0, 0)) == (255, 255, 255)
    assert decode_image(media["palette"]).getpixel((0, 0)) == (10, 20, 30)
    assert decode_image(media["grey"], mode="L").mode == "L"


def test_gif_first_frame_and_svg_rasterised(media):
    assert decode_image(media["gif"]).getpixel((0, 0)) == (255, 0, 0)
    svg = decode_image(media["svg"])
    assert svg.size == (40, 20)
    assert svg.getpixel((5, 5)) == (0, 0, 255)  # the rect
    assert svg.getpixel((35, 5)) == (255, 255, 255)  # transparent -> white


def test_svg_entities_expanded_only_when_flat():
    nested = (b'<!DOCTYPE svg [<!ENTITY a "x"><!ENTITY b "&a;&a;">]><svg>&b;</svg>')
    assert expand_internal_entities(nested) == nested  # left for the safe parser to refuse
    external = b'<!DOCTYPE svg [<!ENTITY e SYSTEM "file:///etc/passwd">]><svg>&e;</svg>'
    assert expand_internal_entities(external) == external


def test_svg_with_external_entity_is_refused(tmp_path):
    p = tmp_path / "evil.svg"
    p.write_bytes(b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY e SYSTEM '
                  b'"file:///etc/passwd">]><svg xmlns="http://www.w3.org/2000/svg" '
                  b'width="4" height="4"><text>&e;</text></svg>')
    with pytest.raises(MediaError, match="cannot rasterise SVG"):
        decode_image(p)


@pytest.mark.parametrize(("kind", "reason"), [
    ("truncated_png", "truncated"),
    ("empty_png", "empty"),
    ("text_as_png", "not an image"),
    ("bomb_png", "over the limit"),
])
def test_bad_images_raise_one_error_type(media, kind, reason):
    with pytest.raises(MediaError, match=reason) as info:
        decode_image(media[kind])
    assert info.value.kind in {"unreadable", "too_large"}


def test_missing_file(tmp_path):
    with pytest.raises(MediaError, match="file not found") as info:
        decode_image(tmp_path / "nope.png")
    assert info.value.kind == "missing_file"


@pytest.mark.parametrize("kind", ["wav", "flac", "ogg", "mp3", "wav_stereo_44k"])
def test_every_audio_format_decodes_mono_at_the_target_rate(media, kind):
    wave = decode_audio(media[kind], sample_rate=8000)
    assert wave.ndim == 1 and wave.dtype == np.float32
    expected = 8000 * (1.0 if kind == "ogg" else 0.5)
    assert abs(len(wave) - expected) < 0.06 * expected  # mp3 adds encoder padding
    assert 0.1 < np.abs(wave).max() <= 1.0


def test_audio_is_cut_to_the_duration_limit(media):
    wave = decode_audio(media["ogg"], sample_rate=16_000,
                        limits=MediaLimits(max_audio_seconds=0.25))
    assert len(wave) == 4000


@pytest.mark.parametrize("kind", ["truncated_ogg", "empty_wav", "png"])
def test_bad_audio_raises(media, kind):
    with pytest.raises(MediaError, match=r"audio|empty"):
        decode_audio(media[kind])


def test_text_utf8_and_detected_encoding(media):
    assert decode_text_file(media["txt"]) == "a red square"
    assert "café" in decode_text_file(media["latin1"])


def test_binary_text_is_refused(media):
    with pytest.raises(MediaError, match="binary") as info:
        decode_text_file(media["binary_txt"])
    assert info.value.kind == "not_text"


def test_media_error_pickles_with_its_location():
    import pickle

    err = MediaError("bad", kind="unreadable").at(manifest="m.csv", row=3, column="image",
                                                 path="/x.png")
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == str(err) == "m.csv, row 3, column 'image', file /x.png: bad"
    assert back.location.row == 3


SMALL_SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20">'
             b'<rect width="20" height="20" fill="#00f"/></svg>')


def _gzip_bomb(inflated: int) -> bytes:
    """A gzip stream of an SVG padded with ``inflated`` bytes of spaces, streamed so
    the test never holds the inflated text."""
    import gzip
    import io as _io

    out = _io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as gz:
        gz.write(SMALL_SVG[:-6])
        block = b" " * 2**20
        for _ in range(inflated // len(block)):
            gz.write(block)
        gz.write(b"</svg>")
    return out.getvalue()


def test_gzip_bomb_named_svg_is_refused_fast_and_small(tmp_path):
    """Found from outside: a 1 MB gzip stream of 1 GiB named bomb.svg ran past 60 s and
    2.4 GB before it was killed (cairosvg inflates gzip whole). It is a located
    too_large problem now, in well under a second and a few MB."""
    import tracemalloc

    bomb = tmp_path / "bomb.svg"
    bomb.write_bytes(_gzip_bomb(2**30))
    assert bomb.stat().st_size < 2 * 2**20
    small = tmp_path / "small.svg"
    small.write_bytes(SMALL_SVG)
    decode_image(small)  # cairosvg imported before the trace: its modules are not the bomb
    tracemalloc.start()
    try:
        with pytest.raises(MediaError, match="inflates past the limit") as info:
            decode_image(bomb)
        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert info.value.kind == "too_large"
    # the traced peak says it was never inflated (1 GiB would show; the file itself is
    # read whole, 1 MiB); its time is measured in docs/reliability.md, not asserted
    assert peak_mb < 16, peak_mb


def test_compressed_svg_within_the_limits_still_decodes(tmp_path):
    import gzip

    p = tmp_path / "small.svg"
    p.write_bytes(gzip.compress(SMALL_SVG))
    assert decode_image(p).size == (40, 20)
    nested = tmp_path / "nested.svg"
    nested.write_bytes(gzip.compress(gzip.compress(SMALL_SVG)))
    with pytest.raises(MediaError, match="another compressed stream"):
        decode_image(nested)


def test_svg_use_reference_bomb_is_refused(tmp_path):
    """Ten levels of <g>, each drawing the level below ten times: 10^10 shapes."""
    levels = ['<g id="l0"><rect width="1" height="1"/></g>']
    for i in range(1, 11):
        uses = "".join(f'<use xlink:href="#l{i - 1}"/>' for _ in range(10))
        levels.append(f'<g id="l{i}">{uses}</g>')
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/'
           'xlink" width="10" height="10"><defs>' + "".join(levels) + '</defs>'
           '<use xlink:href="#l10"/></svg>')
    p = tmp_path / "laughs.svg"
    p.write_text(svg)
    with pytest.raises(MediaError, match="elements") as info:
        decode_image(p)
    assert info.value.kind == "too_large"
    cycle = tmp_path / "cycle.svg"
    cycle.write_text('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.'
                     'org/1999/xlink" width="4" height="4"><g id="a"><use xlink:href="#a"/>'
                     '</g></svg>')
    with pytest.raises(MediaError, match="elements"):
        decode_image(cycle)


def test_svg_embedding_a_pixel_bomb_or_an_oversized_file_is_refused(media, tmp_path):
    import base64

    png = base64.b64encode(media["bomb_png"].read_bytes()).decode()
    p = tmp_path / "embeds.svg"
    p.write_text('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/'
                 '1999/xlink" width="8" height="8"><image width="8" height="8" '
                 f'xlink:href="data:image/png;base64,{png}"/></svg>')
    with pytest.raises(MediaError, match="embeds a picture"):
        decode_image(p)
    big = tmp_path / "big.svg"
    big.write_bytes(SMALL_SVG[:-6] + b" " * 2000 + b"</svg>")
    with pytest.raises(MediaError, match="over the limit") as info:
        decode_image(big, limits=MediaLimits(max_svg_bytes=1000))
    assert info.value.kind == "too_large"


def test_exif_orientation_is_applied(tmp_path):
    """Found from outside: a phone JPEG stored 60x40 with orientation 6 (rotate 90° to
    show) decoded as 60x40, so rotated photos trained and indexed sideways."""
    stored = Image.new("RGB", (60, 40), (255, 255, 255))
    stored.paste((255, 0, 0), (0, 0, 10, 40))  # a red band on the stored left edge
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "phone.jpg"
    stored.save(p, "JPEG", exif=exif, quality=95)
    shown = decode_image(p)
    assert shown.size == (40, 60)
    r, g, b = shown.getpixel((20, 4))  # orientation 6: the left edge is shown on top
    assert r > 200 and g < 80 and b < 80
    plain = tmp_path / "plain.jpg"
    stored.save(plain, "JPEG", quality=95)
    assert decode_image(plain).size == (60, 40)
