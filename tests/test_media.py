"""Media decoding: every supported format decodes; every bad file is one MediaError."""

from __future__ import annotations

import numpy as np
import pytest

from polymodal.data import MediaError, MediaLimits, decode_audio, decode_image
from polymodal.data.media import decode_text_file, expand_internal_entities


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
