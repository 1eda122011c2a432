"""The applications of issue 7 (audio-visual recognition against audio SNR, image + text
recognition): the SNR noise they rely on, the evaluation hook, and each example run end
to end on tiny data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from polymodal.data.bundled import make_dataset
from polymodal.data.noise import level_for_snr, noisy, noisy_snr


def _measured_snr(clean: np.ndarray, corrupted: np.ndarray) -> float:
    added = corrupted.astype(np.float64) - clean
    return 10 * math.log10(np.mean(np.square(clean, dtype=np.float64))
                           / np.mean(np.square(added)))


@pytest.mark.parametrize("snr_db", [20.0, 10.0, 5.0, 0.0, -5.0, -10.0])
def test_noisy_snr_adds_noise_at_the_asked_snr(snr_db):
    rng = np.random.default_rng(1)
    t = np.arange(16_000) / 16_000
    # a voiced-like clip with a DC offset, quiet: the SNR must follow its power
    clip = (0.05 * np.sin(2 * np.pi * 220 * t) + 0.02 * np.sin(2 * np.pi * 1300 * t)
            + 0.01 + 0.005 * rng.normal(size=t.size)).astype(np.float32)
    corrupt = noisy_snr("audio", snr_db, seed=3)
    out = corrupt(clip)
    assert out.dtype == np.float32 and out.shape == clip.shape
    assert _measured_snr(clip, out) == pytest.approx(snr_db, abs=0.15)
    # every call draws new noise (a sweep over many clips), at the same SNR
    again = corrupt(clip)
    assert not np.array_equal(out, again)
    assert _measured_snr(clip, again) == pytest.approx(snr_db, abs=0.15)
    # deterministic for a seed
    assert np.array_equal(noisy_snr("audio", snr_db, seed=3)(clip), out)


def test_noisy_snr_on_real_speech_and_its_edges(tmp_path):
    import soundfile as sf

    manifest = make_dataset("av-digits", tmp_path / "avd", limit=1, show_progress=False)
    wave, _ = sf.read(next((manifest.parent / "audio").glob("*.wav")), dtype="float32")
    assert _measured_snr(wave, noisy_snr("audio", -10.0)(wave)) == pytest.approx(-10, abs=0.2)
    assert noisy_snr("audio", math.inf)(wave) is wave
    silent = noisy_snr("audio", 0.0)(np.zeros(1000, dtype=np.float32))
    assert 0 < float(np.std(silent)) < 2e-3
    with pytest.raises(ValueError, match="audio only"):
        noisy_snr("image", 10.0)
    with pytest.raises(ValueError, match="decibels"):
        noisy_snr("audio", float("nan"))


def test_level_for_snr_matches_noisy_levels():
    # noisy(level) adds noise of std 3 x level x the clip's std: SNR = -20 log10(3 level)
    assert level_for_snr(math.inf) == 0.0
    assert level_for_snr(-20 * math.log10(3 * 0.5)) == pytest.approx(0.5)
    assert level_for_snr(-10.0) > 1.0  # beyond what noisy accepts: why noisy_snr exists
    rng = np.random.default_rng(0)
    clip = rng.normal(0, 0.2, 48_000).astype(np.float32)
    out = noisy("audio", level_for_snr(0.0))(clip)
    assert _measured_snr(clip, out) == pytest.approx(0.0, abs=0.1)


@pytest.fixture(scope="module")
def tiny_digits(tmp_path_factory):
    return make_dataset("av-digits", tmp_path_factory.mktemp("avd") / "av-digits", limit=3,
                        show_progress=False)


def test_evaluate_accepts_a_corrupting_function(tiny_digits, tmp_path):
    from polymodal import Predictor

    p = Predictor(label="label", modalities=["audio"], fusion="concat", preset="tiny",
                  max_epochs=1, path=tmp_path / "run").fit(
        tiny_digits, progress=False)
    calls: list[int] = []

    def silence(wave: np.ndarray) -> np.ndarray:
        calls.append(len(wave))
        return np.zeros_like(wave)

    data = tiny_digits
    clean = p.evaluate(data)
    silenced = p.evaluate(data, noise={"audio": silence})
    assert len(calls) == 30  # every row's clip went through the function
    # silence makes the rows (nearly) alike: about one predicted class for all, 3 of 30 right
    assert silenced["accuracy"] <= 0.2
    assert silenced["log_loss"] != clean["log_loss"]
    drowned = p.evaluate(data, noise={"audio": noisy_snr("audio", -30.0, seed=1)})
    assert drowned == p.evaluate(data, noise={"audio": noisy_snr("audio", -30.0, seed=1)})
    assert drowned != clean
