"""The sound-effect corpus readers and the audio head of builtin:general's sound
experiment (no package or audio model needed)."""

from __future__ import annotations

import numpy as np
import torch

from polymodal.library.general.sounds import (
    SOUND_SOURCES,
    sound_name,
    sound_to_caption,
    train_audio_head,
)
from polymodal.library.general.sources import HELD_OUT, has_words


def test_sound_names_are_words() -> None:
    assert sound_name("bat-hit-2") == "bat hit"
    assert sound_name("BirdyLay") == "birdy lay"
    assert sound_name("Oxygen-Im-New-Mail", "oxygen") == "im new mail"
    assert not has_words(sound_name("1C"))  # a note, not a name


def test_no_sound_source_is_held_out_or_tuxpaints() -> None:
    packages = {p for p, *_ in SOUND_SOURCES.values()}
    assert not packages & set(HELD_OUT)
    assert not any("tuxpaint" in p for p in packages)  # the mixed folder's sounds


def test_the_audio_head_learns_to_map_sounds_to_their_captions() -> None:
    rng = np.random.default_rng(0)
    words = rng.standard_normal((40, 16)).astype(np.float32)
    words /= np.linalg.norm(words, axis=1, keepdims=True)
    mix = rng.standard_normal((16, 12)).astype(np.float32)
    sounds = words @ mix + 0.05 * rng.standard_normal((40, 12)).astype(np.float32)
    sounds /= np.linalg.norm(sounds, axis=1, keepdims=True)
    head = train_audio_head(sounds[:30], words[:30], epochs=300)
    assert head.shape == (16, 12)
    mapped = torch.nn.functional.normalize(torch.as_tensor(sounds) @ head.T, dim=-1).numpy()
    trained = sound_to_caption(mapped[:30], words[:30])
    unseen = sound_to_caption(mapped[30:], words[30:])
    assert trained["R@1"] > 0.8
    assert unseen["R@1"] > 0.5  # a linear map that generalises, not a lookup
