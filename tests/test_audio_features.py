"""The torch front ends (LogMel, MFCC) against librosa, batched and with lengths."""

from __future__ import annotations

import warnings
from typing import Any

import librosa
import numpy as np
import pytest
import scipy.signal
import torch

from polymodal.encoders.audio_features import MFCC, LogMel

# Tolerances, max abs difference against librosa. librosa takes its FFT in float64, ours
# is float32, whose rounding is relative to a frame's energy: bins far below it are the
# least exact. The worst cases measured (torch 2.13 CPU) over the signals and settings
# below are in brackets.
LOGMEL_TOL_DB = 3e-3  # log-mel, floored at top_db (80 or 40) below the max [1.1e-3 dB]
MFCC_TOL = 1.5e-3  # MFCCs, same floors [5.5e-4]
NO_FLOOR_NEAR_TOL_DB = 3e-3  # top_db=None, bins within 80 dB of the max [1.1e-3 dB]
NO_FLOOR_TOL_DB = 0.1  # top_db=None, every bin down to -100 dB, and MFCCs [3.9e-2 dB]
BATCH_TOL_DB = 1e-4  # a clip in a padded batch against the same clip alone [0, bit-equal]

PARAMS: list[dict[str, Any]] = [
    {},  # the defaults: 16 kHz, n_fft 512, win 400, hop 160, 64 mels, top_db 80
    {"n_fft": 400, "win_length": 400, "n_mels": 40, "fmin": 20.0, "fmax": 7600.0,
     "n_mfcc": 13},
    {"sample_rate": 22050, "n_fft": 1024, "win_length": 1024, "hop_length": 256,
     "n_mels": 128, "n_mfcc": 40},
    {"n_fft": 401, "win_length": 301, "hop_length": 100, "n_mels": 48, "top_db": 40.0},
    {"sample_rate": 8000, "n_fft": 256, "win_length": 200, "hop_length": 80, "n_mels": 32,
     "top_db": None},
]
DEFAULTS: dict[str, Any] = {"sample_rate": 16000, "n_fft": 512, "win_length": 400,
                            "hop_length": 160, "n_mels": 64, "fmin": 0.0, "fmax": None,
                            "top_db": 80.0, "n_mfcc": 20}


def _signals(sr: int, seconds: float = 1.2) -> dict[str, np.ndarray]:
    """A log chirp, white noise, and a voiced-speech-like tone mix (gliding f0, formant-ish
    harmonic weights, gated into syllables with silence between), all float32."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    chirp = 0.5 * scipy.signal.chirp(t, 50.0, t[-1], 0.45 * sr, method="logarithmic")
    noise = rng.normal(0.0, 0.1, t.size)
    f0 = 120.0 + 30.0 * np.sin(2 * np.pi * 1.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    harmonics = [(1, 0.4), (2, 0.25), (3, 0.15), (5, 0.08), (8, 0.04), (13, 0.02)]
    voiced = sum(a * np.sin(k * phase) for k, a in harmonics)
    gate = (np.sin(2 * np.pi * 2.5 * t) > -0.3).astype(np.float64)
    mix = voiced * gate
    return {name: y.astype(np.float32) for name, y in
            {"chirp": chirp, "noise": noise, "tone-mix": mix}.items()}


def _settings(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], int]:
    """(LogMel kwargs, librosa melspectrogram kwargs, n_mfcc)."""
    full = {**DEFAULTS, **params}
    n_mfcc = full.pop("n_mfcc")
    lib = {"sr": full["sample_rate"], "n_fft": full["n_fft"], "hop_length": full["hop_length"],
           "win_length": full["win_length"], "n_mels": full["n_mels"], "fmin": full["fmin"],
           "fmax": full["fmax"], "center": True, "pad_mode": "constant"}
    return full, lib, n_mfcc


def _librosa_logmel(y: np.ndarray, lib: dict[str, Any], top_db: float | None) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n_fft too large for a very short clip
        mel = librosa.feature.melspectrogram(y=y, power=2.0, **lib)
    return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=top_db)


@pytest.mark.parametrize("params", PARAMS, ids=lambda p: "-".join(f"{k}={v}" for k, v in
                                                                  p.items()) or "defaults")
def test_matches_librosa(params: dict[str, Any]) -> None:
    kw, lib, n_mfcc = _settings(params)
    logmel, mfcc = LogMel(**kw), MFCC(n_mfcc=n_mfcc, **kw)
    for name, y in _signals(kw["sample_rate"]).items():
        wave = torch.from_numpy(y).unsqueeze(0)
        ours, frames = logmel(wave)
        ref = _librosa_logmel(y, lib, kw["top_db"])
        assert ours.shape == (1, *ref.shape) and ours.dtype == torch.float32, name
        assert frames.tolist() == [ref.shape[1]], name
        diff = np.abs(ours[0].numpy() - ref)
        if kw["top_db"] is None:
            near = ref >= ref.max() - 80.0
            assert diff[near].max() <= NO_FLOOR_NEAR_TOL_DB, (name, diff[near].max())
            assert diff.max() <= NO_FLOOR_TOL_DB, (name, diff.max())
        else:
            assert diff.max() <= LOGMEL_TOL_DB, (name, diff.max())

        if kw["top_db"] == 80.0:  # librosa.feature.mfcc's own (fixed) floor
            ref_mfcc = librosa.feature.mfcc(y=y, n_mfcc=n_mfcc, dct_type=2, norm="ortho",
                                            lifter=0, **lib)
        else:
            ref_mfcc = librosa.feature.mfcc(S=ref, n_mfcc=n_mfcc, dct_type=2, norm="ortho")
        ours_mfcc, mfcc_frames = mfcc(wave)
        assert ours_mfcc.shape == (1, *ref_mfcc.shape), name
        assert torch.equal(mfcc_frames, frames)
        mfcc_diff = np.abs(ours_mfcc[0].numpy() - ref_mfcc).max()
        tol = MFCC_TOL if kw["top_db"] is not None else NO_FLOOR_TOL_DB
        assert mfcc_diff <= tol, (name, mfcc_diff)


@pytest.mark.parametrize("module", ["logmel", "mfcc"])
def test_padded_batch_matches_each_clip_alone(module: str) -> None:
    sr = 16000
    sig = _signals(sr)
    # different lengths and levels: the quiet clip must not take the loud one's floor
    clips = [sig["tone-mix"], 0.01 * sig["chirp"][: int(0.45 * sr)],
             sig["noise"][: int(0.8 * sr) + 37], sig["chirp"][:300]]
    front = LogMel() if module == "logmel" else MFCC(n_mfcc=13)
    n = max(c.size for c in clips)
    batch = torch.zeros(len(clips), n)
    for i, c in enumerate(clips):
        batch[i, : c.size] = torch.from_numpy(c)
        batch[i, c.size:] = 5.0  # junk padding: must count as zeros
    lengths = torch.tensor([c.size for c in clips])
    out, frames = front(batch, lengths)
    assert out.shape[-1] == 1 + n // 160
    assert frames.tolist() == [1 + c.size // 160 for c in clips]
    assert torch.isfinite(out).all()
    for i, c in enumerate(clips):
        alone, alone_frames = front(torch.from_numpy(c).unsqueeze(0))
        assert alone_frames.tolist() == [frames[i].item()]
        valid = out[i, :, : frames[i]]
        assert (valid - alone[0]).abs().max().item() <= BATCH_TOL_DB, i


def test_quiet_clip_keeps_its_own_floor() -> None:
    loud = torch.from_numpy(_signals(16000)["tone-mix"])  # has silent gaps: reaches a floor
    out, _ = LogMel()(torch.stack([loud, 1e-3 * loud]))
    loud_max, quiet_max = out[0].max().item(), out[1].max().item()
    assert loud_max - quiet_max == pytest.approx(60.0, abs=1e-3)
    assert out[0].min().item() == pytest.approx(loud_max - 80.0, abs=1e-4)
    # the quiet clip's floor is its own max - 80 dB, under -100 dB (amin): its silence
    # stays at -100 dB, well below the loud clip's floor
    assert quiet_max - 80.0 < -100.0
    assert out[1].min().item() == pytest.approx(-100.0, abs=1e-4)


@pytest.mark.parametrize("size", [0, 1, 100, 399])
def test_empty_and_very_short_clips(size: int) -> None:
    kw, lib, n_mfcc = _settings({})
    y = _signals(16000)["tone-mix"][4000: 4000 + size]
    logmel, mfcc = LogMel(), MFCC(n_mfcc=n_mfcc)
    out, frames = logmel(torch.from_numpy(y).unsqueeze(0))
    assert frames.tolist() == [1 + size // 160] and out.shape == (1, 64, 1 + size // 160)
    assert torch.isfinite(out).all()
    ref = _librosa_logmel(y, lib, kw["top_db"])
    assert np.abs(out[0].numpy() - ref).max() <= LOGMEL_TOL_DB
    # and inside a padded batch, next to a long clip
    batch = torch.zeros(2, 16000)
    batch[0, :size] = torch.from_numpy(y)
    batch[1] = torch.from_numpy(_signals(16000)["noise"][:16000])
    feats, frames = mfcc(batch, torch.tensor([size, 16000]))
    assert frames.tolist() == [1 + size // 160, 101] and torch.isfinite(feats).all()
    alone, _ = mfcc(torch.from_numpy(y).unsqueeze(0))
    assert (feats[0, :, : frames[0]] - alone[0]).abs().max().item() <= BATCH_TOL_DB


def test_odd_n_fft_on_an_empty_batch() -> None:
    out, frames = LogMel(n_fft=401, win_length=401)(torch.zeros(3, 0))
    assert out.shape == (3, 64, 1) and frames.tolist() == [1, 1, 1]
    assert torch.isfinite(out).all()


def test_modules_have_no_parameters_and_follow_the_module() -> None:
    for front in (LogMel(), MFCC()):
        assert list(front.parameters()) == []
        assert front.state_dict() == {}  # derived buffers: rebuilt, not saved
        assert {b.dtype for b in front.buffers()} == {torch.float32}
        double = front.double()
        out, _ = double(torch.from_numpy(_signals(16000)["chirp"]).double().unsqueeze(0))
        assert out.dtype == torch.float64
        front.float()


def test_one_dimensional_input_is_a_batch_of_one() -> None:
    y = torch.from_numpy(_signals(16000)["noise"])
    a, fa = MFCC()(y)
    b, fb = MFCC()(y.unsqueeze(0))
    assert torch.equal(a, b) and torch.equal(fa, fb)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="win_length"):
        LogMel(n_fft=256, win_length=400)
    with pytest.raises(ValueError, match="n_mfcc"):
        MFCC(n_mfcc=80, n_mels=64)
    with pytest.raises(ValueError, match=r"\(B, N\)"):
        LogMel()(torch.zeros(2, 1, 100))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    batch = torch.from_numpy(np.stack(list(_signals(16000).values())))
    lengths = torch.tensor([19200, 12000, 500])
    for front in (LogMel(), MFCC()):
        cpu, cpu_frames = front(batch, lengths)
        gpu, gpu_frames = front.cuda()(batch.cuda(), lengths.cuda())
        assert gpu.device.type == "cuda" and torch.equal(gpu_frames.cpu(), cpu_frames)
        assert (gpu.cpu() - cpu).abs().max().item() <= LOGMEL_TOL_DB
