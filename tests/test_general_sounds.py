"""builtin:general's clips: the sound corpus readers, the audio head (trained beside the
locked caption head, folded into one linear map) and the ``speech-and-sound`` tower's
layout (no package or audio model needed but MiniLM's)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from polymodal.encoders.audio_heard import speech_weight
from polymodal.library.general.sound_features import SoundFeatures, concat_sounds
from polymodal.library.general.sound_head import (
    EFFECT_DIM,
    SoundHeadSettings,
    caption_places,
    embed_sounds,
    encoder_inputs,
    train_sound_head,
)
from polymodal.library.general.sound_loso import both_ways
from polymodal.library.general.sound_sources import (
    _ZERO_AD_WORDS,
    SOUND_PACKAGES,
    SOUND_SOURCES,
    _rewrite,
    sound_folder,
    sound_name,
    zero_ad,
)
from polymodal.library.general.sources import HELD_OUT, has_words

DIM = 385


def test_sound_names_are_words() -> None:
    assert sound_name("bat-hit-2") == "bat hit"
    assert sound_name("BirdyLay") == "birdy lay"
    assert sound_name("Oxygen-Im-New-Mail", "oxygen") == "im new mail"
    assert sound_name("swordhit_10a") == "swordhit"
    assert not has_words(sound_name("1C"))  # a note, not a name
    assert _rewrite(sound_name("hstep_dirt_MN"), _ZERO_AD_WORDS) == "hoof step dirt"
    assert _rewrite(sound_name("sel_barracks"), _ZERO_AD_WORDS) == "select barracks"


def test_no_sound_source_is_held_out_and_every_one_is_installed_by_make_model() -> None:
    packages = {s.package for s in SOUND_SOURCES.values()}
    assert not packages & set(HELD_OUT)
    assert packages <= set(SOUND_PACKAGES)
    makefile = (Path(__file__).parents[1] / "Makefile").read_text()
    assert all(p in makefile for p in SOUND_PACKAGES)


def test_the_tuxpaint_test_split_is_never_a_training_sound() -> None:
    import inspect

    from polymodal.library.general.sound_sources import tuxpaint_sounds

    default = inspect.signature(tuxpaint_sounds).parameters["splits"].default
    assert "test" not in default


def test_a_sound_folder_keeps_one_effect_per_name_and_leaves_music_and_voices_out(
        tmp_path: Path) -> None:
    for rel, size in (("sfx/door-open-1.ogg", 10), ("sfx/door_open_2.ogg", 10),
                      ("sfx/Thunder.wav", 10), ("music/theme.ogg", 10),
                      ("voice/hello.ogg", 10), ("sfx/notes.txt", 10), ("sfx/42.ogg", 10)):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x" * size)
    table = sound_folder(tmp_path)
    assert sorted(table["caption"]) == ["door open", "thunder"]
    assert table.set_index("caption").loc["door open", "sound"].endswith("door-open-1.ogg")


def test_zero_ad_sounds_are_copied_out_of_the_archive_once(tmp_path: Path) -> None:
    archive = tmp_path / "public.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("audio/actor/fauna/animal/cattle_1.ogg", b"moo")
        z.writestr("audio/interface/select/sel_barracks.ogg", b"click")
        z.writestr("audio/voice/greek/civ_male_hello.ogg", b"speech")
        z.writestr("audio/music/Sunrise.ogg", b"song")
        z.writestr("art/textures/cattle.png", b"png")
    cache = tmp_path / "cache"
    table = zero_ad(archive, cache)
    assert sorted(table["caption"]) == ["cattle", "select barracks"]
    cattle = Path(table.set_index("caption").loc["cattle", "sound"])
    assert cattle.read_bytes() == b"moo" and cache in cattle.parents
    stamp = cattle.stat().st_mtime_ns
    zero_ad(archive, cache)
    assert cattle.stat().st_mtime_ns == stamp  # not written again


def _synthetic(n: int, seed: int, speech: float) -> tuple[SoundFeatures, torch.Tensor]:
    """Clips whose sound is a noisy linear mix of their caption's vector."""
    rng = np.random.default_rng(seed)
    words = rng.standard_normal((n, 384)).astype(np.float32)
    words /= np.linalg.norm(words, axis=1, keepdims=True)
    mix = np.random.default_rng(99).standard_normal((384, EFFECT_DIM)).astype(np.float32)
    effect = words @ mix + 0.05 * rng.standard_normal((n, EFFECT_DIM)).astype(np.float32)
    effect = effect * 3 + 5  # not standardised: the head standardises
    said = words + 0.1 * rng.standard_normal((n, 384)).astype(np.float32)
    said /= np.linalg.norm(said, axis=1, keepdims=True)
    f = SoundFeatures("synthetic", [f"name {i} {seed}" for i in range(n)], said,
                      np.full(n, speech, np.float32), effect, words, [""] * n)
    caption_head = torch.zeros(DIM, 384)
    caption_head[:384] = torch.eye(384)
    return f, caption_head


def test_the_audio_head_maps_sounds_near_their_names_on_names_it_never_saw() -> None:
    train, caption_head = _synthetic(60, 0, speech=0.0)
    test, _ = _synthetic(20, 1, speech=0.0)
    head = train_sound_head(train, caption_head, SoundHeadSettings(steps=200))
    linear = head.linear(caption_head)
    assert linear.shape == (DIM, 384 + EFFECT_DIM + 1)
    assert torch.equal(linear[:, :384], caption_head)  # the transcript's head is locked
    assert torch.all(linear[DIM - 1] == 0)  # a sound is something: no "nothing" axis
    unseen = both_ways(embed_sounds(linear, test), caption_places(caption_head, test.words))
    assert unseen["sound->caption R@1"] > 0.8 and unseen["caption->sound R@1"] > 0.8


def test_the_folded_linear_head_is_the_standardised_map() -> None:
    train, caption_head = _synthetic(30, 0, speech=0.4)
    head = train_sound_head(train, caption_head, SoundHeadSettings(steps=5, pooling="mean"))
    x = torch.as_tensor(encoder_inputs(train))
    s = torch.as_tensor(speech_weight(train.speech))[:, None]
    assert 0 < s[0].item() < 1  # words and sound, each in part
    direct = s * (torch.as_tensor(train.said) @ caption_head.T) + (1 - s) * (
        ((torch.as_tensor(train.effect) - head.mean) * head.inverse_scale) @ head.weight.T)
    assert torch.allclose(x @ head.linear(caption_head).T, direct, atol=1e-4)
    # "mean" pooling reads the first 384 states only
    assert torch.all(head.weight[:, EFFECT_DIM // 2:] == 0)


def test_speech_lands_where_its_words_do() -> None:
    f, caption_head = _synthetic(10, 3, speech=1.0)
    head = train_sound_head(concat_sounds([f, _synthetic(10, 4, 0.0)[0]]), caption_head,
                            SoundHeadSettings(steps=20))
    placed = embed_sounds(head.linear(caption_head), f)
    assert np.allclose(placed, caption_places(caption_head, f.said), atol=1e-5)


def test_distinct_names_keep_one_clip_per_name() -> None:
    f, _ = _synthetic(4, 0, 0.0)
    f.captions[:] = ["door open", "open door", "doors open", "bell"]
    assert f.distinct().captions == ["door open", "bell"]


def test_the_speech_and_sound_tower_weights_words_and_sound_by_speech(monkeypatch) -> None:
    from polymodal.encoders.audio import Heard
    from polymodal.encoders.audio_heard import SpeechAndSoundEncoder
    from polymodal.encoders.base import Encoded

    enc = SpeechAndSoundEncoder()
    assert enc.output_dim == 384 + 768 + 1
    sound = torch.arange(768, dtype=torch.float32)[None]
    monkeypatch.setattr(enc.sound, "encode", lambda values: Encoded(sound[:, None],
                        torch.ones(1, 1, dtype=torch.bool), sound))
    wave = np.zeros(16000, np.float32)
    for estimate, speech in ((0.0, 0.0), (0.2, 0.0), (0.45, 0.5), (0.7, 1.0), (1.0, 1.0)):
        monkeypatch.setattr(enc.speech.stt, "listen",
                            lambda w, e=estimate: Heard("a cow says moo" if e else "", e))
        out = enc.preprocess(wave)
        words = out[:384]
        assert out.shape == (enc.output_dim,)
        assert torch.allclose(out[384:-1], (1 - speech) * sound[0])
        assert out[-1].item() == pytest.approx(1 - speech)
        assert words.norm().item() == pytest.approx(speech, abs=1e-5)
    said = enc.speech.text.encode(["a cow says moo"]).pooled[0]
    assert torch.allclose(words, torch.nn.functional.normalize(said, dim=0), atol=1e-5)


def test_the_shipped_clip_head_reads_words_as_the_caption_head_and_sounds_beside_them(
        ) -> None:
    import yaml

    from polymodal.encoders.audio_heard import SPEECH_AT, SPEECH_FROM
    from polymodal.library.general.build import MODEL_FOLDER, read_heads

    config = yaml.safe_load((MODEL_FOLDER / "config.yaml").read_text())
    tower = config["fitted"]["encoders"]["speech"]
    assert tower["name"] == "speech-and-sound"
    assert (tower["options"]["speech_from"], tower["options"]["speech_at"]) == \
        (SPEECH_FROM, SPEECH_AT)
    heads = read_heads(MODEL_FOLDER)
    clip = heads["speech"]
    assert clip.shape == (DIM, 384 + EFFECT_DIM + 1)
    assert torch.equal(clip[:, :384], heads["caption"])  # speech lands where its words do
    assert torch.all(clip[DIM - 1] == 0) and clip[:, 384:].abs().sum() > 0
