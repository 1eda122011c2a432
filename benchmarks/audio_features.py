"""Audio front ends: librosa's MFCC and log-mel, one clip at a time, against polymodal's
torch modules (:class:`~polymodal.encoders.audio_features.MFCC`, ``LogMel``) on the same
clips with the same settings, one clip at a time and in batches."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from benchmarks.report import Section, best_of
from polymodal.data import Manifest, decode_audio
from polymodal.data.bundled import make_dataset
from polymodal.encoders.audio_features import MFCC, LogMel

SAMPLE_RATE = 16_000
BATCH = 64
SETTINGS: dict[str, Any] = {"n_fft": 512, "win_length": 400, "hop_length": 160, "n_mels": 64,
                            "fmin": 0.0, "fmax": None}
N_MFCC = 20
TOP_DB = 80.0



def _librosa_kwargs() -> dict[str, Any]:
    return {"sr": SAMPLE_RATE, **SETTINGS, "center": True, "pad_mode": "constant"}


def librosa_mfcc(clips: list[np.ndarray]) -> int:
    """The baseline: ``librosa.feature.mfcc`` on each clip."""
    import librosa

    kw = _librosa_kwargs()
    for y in clips:
        librosa.feature.mfcc(y=y, n_mfcc=N_MFCC, dct_type=2, norm="ortho", lifter=0, **kw)
    return len(clips)


def librosa_logmel(clips: list[np.ndarray]) -> int:
    """The baseline: ``librosa.power_to_db(librosa.feature.melspectrogram(...))``."""
    import librosa

    kw = _librosa_kwargs()
    for y in clips:
        mel = librosa.feature.melspectrogram(y=y, power=2.0, **kw)
        librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=TOP_DB)
    return len(clips)


def torch_front_end(module: torch.nn.Module, clips: list[np.ndarray], batch: int) -> int:
    """Our module on ``batch`` clips at a time: collate (zero-pad, lengths), then forward."""
    with torch.inference_mode():
        for start in range(0, len(clips), batch):
            part = clips[start: start + batch]
            lengths = torch.tensor([c.size for c in part])
            waves = torch.zeros(len(part), int(lengths.max()))
            for i, c in enumerate(part):
                waves[i, : c.size] = torch.from_numpy(c)
            module(waves, lengths)
    return len(clips)


def _max_diff(clips: list[np.ndarray], mfcc: MFCC, logmel: LogMel) -> tuple[float, float]:
    """Max abs difference from librosa over the first clips: (log-mel dB, MFCC)."""
    import librosa

    kw, part = _librosa_kwargs(), clips[:BATCH]
    lengths = torch.tensor([c.size for c in part])
    waves = torch.zeros(len(part), int(lengths.max()))
    for i, c in enumerate(part):
        waves[i, : c.size] = torch.from_numpy(c)
    with torch.inference_mode():
        ours_db, frames = logmel(waves, lengths)
        ours_mfcc, _ = mfcc(waves, lengths)
    db_diff = mfcc_diff = 0.0
    for i, y in enumerate(part):
        n = int(frames[i])
        ref = librosa.power_to_db(librosa.feature.melspectrogram(y=y, power=2.0, **kw),
                                  ref=1.0, amin=1e-10, top_db=TOP_DB)
        ref_mfcc = librosa.feature.mfcc(y=y, n_mfcc=N_MFCC, dct_type=2, norm="ortho",
                                        lifter=0, **kw)
        db_diff = max(db_diff, float(np.abs(ours_db[i, :, :n].numpy() - ref).max()))
        mfcc_diff = max(mfcc_diff, float(np.abs(ours_mfcc[i, :, :n].numpy() - ref_mfcc).max()))
    return db_diff, mfcc_diff


def run(quick: bool = False) -> Section:
    manifest = Manifest.read(make_dataset("av-digits", limit=20 if quick else None))
    repeats = 1 if quick else 3
    # decoded once, up front: decoding is not part of either side's time
    clips = [decode_audio(path, sample_rate=SAMPLE_RATE) for row in range(len(manifest))
             if (path := manifest.resolve(row, "audio")) is not None]
    seconds = sum(c.size for c in clips) / SAMPLE_RATE / max(len(clips), 1)
    mfcc = MFCC(sample_rate=SAMPLE_RATE, n_mfcc=N_MFCC, top_db=TOP_DB, **SETTINGS).eval()
    logmel = LogMel(sample_rate=SAMPLE_RATE, top_db=TOP_DB, **SETTINGS).eval()
    for module in (mfcc, logmel):  # warm up (first-call allocations, FFT plans)
        torch_front_end(module, clips[:BATCH], BATCH)

    section = Section(
        key="audio-features", title="Audio front ends: torch MFCC and log-mel against librosa",
        command="python -m benchmarks --only audio-features" + (" --quick" if quick else ""),
        columns=["what", "clips", "clips/s", "ratio to baseline"])
    for label, baseline, module in (("MFCC", librosa_mfcc, mfcc),
                                    ("log-mel", librosa_logmel, logmel)):
        base_s, n = best_of(lambda b=baseline: b(clips), repeats)
        lib_name = ("librosa.feature.mfcc" if label == "MFCC" else
                    "librosa melspectrogram + power_to_db")
        section.rows.append([f"{label}: {lib_name}, one clip at a time (baseline)", f"{n}",
                             f"{n / base_s:,.0f}", "1.00"])
        for batch in (1, BATCH):
            s, n = best_of(lambda m=module, b=batch: torch_front_end(m, clips, b), repeats)
            how = "one clip at a time" if batch == 1 else f"batch {batch}"
            section.rows.append([f"{label}: polymodal {type(module).__name__} (torch), {how}",
                                 f"{n}", f"{n / s:,.0f}", f"{base_s / s:.2f}"])
    db_diff, mfcc_diff = _max_diff(clips, mfcc, logmel)
    section.notes = (
        f"av-digits clips ({seconds:.2f} s mean, 16 kHz mono), decoded once before timing. "
        f"Same settings on both sides: n_fft {SETTINGS['n_fft']}, window "
        f"{SETTINGS['win_length']} (Hann), hop {SETTINGS['hop_length']}, "
        f"{SETTINGS['n_mels']} mel bands, top_db {TOP_DB:g}, {N_MFCC} MFCCs. Ratios above 1 "
        "are faster than librosa; best of "
        f"{repeats} run{'s' if repeats > 1 else ''}; torch with its default thread count "
        f"({torch.get_num_threads()}); the torch rows include collating clips into a padded "
        f"batch. Agreement on the first {min(BATCH, len(clips))} clips, batched with lengths: "
        f"log-mel within {db_diff:.1e} dB of librosa, MFCCs within {mfcc_diff:.1e}.")
    return section
