"""Batched audio front ends in torch that agree with librosa: log-mel spectrograms in dB
(:class:`LogMel`) and MFCCs (:class:`MFCC`).

Both take a padded batch of mono waveforms ``(B, N)`` and, optionally, each clip's
length in samples, and return ``(B, features, frames)`` with each clip's frame count.
The maths is librosa's::

    S = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop_length,
                                       win_length=win_length, n_mels=n_mels, fmin=fmin,
                                       fmax=fmax, power=2.0, center=True,
                                       pad_mode="constant")
    log_mel = librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=top_db)
    mfcc = scipy.fft.dct(log_mel, axis=-2, type=2, norm="ortho")[:n_mfcc]

(``librosa.feature.mfcc`` with ``dct_type=2, norm="ortho", lifter=0``). The mel filterbank
is librosa's own (Slaney scale and area normalisation), built once and kept as a buffer;
the window is scipy's periodic Hann, zero-padded to ``n_fft`` in the centre as librosa
does. librosa's ``top_db`` floor is relative to the spectrogram's own maximum: here it is
taken per clip, over that clip's valid frames only, so a clip gives the same features on
its valid frames whether it is alone or padded in a batch (samples past a clip's length
are taken as zeros, whatever the padding held). Frames past a clip's length hold what
silence gives (the clip's floor).

The transform runs in the buffers' dtype, float32 unless the module is cast (librosa
takes its FFT in float64). The float32 FFT's rounding is relative to a frame's energy, so
bins far below it are the least exact: with ``top_db=80`` the log-mel agrees with librosa
to about 1e-3 dB; with no floor, bins 100 dB and more down differ by a few 1e-2 dB.
``tests/test_audio_features.py`` states the tolerances checked.
"""

from __future__ import annotations

import librosa
import numpy as np
import scipy.fft
import scipy.signal
import torch
from torch import Tensor, nn

AMIN = 1e-10
"""librosa.power_to_db's default ``amin``: powers below it count as it (-100 dB)."""


def frame_count(num_samples: int | Tensor, n_fft: int, hop_length: int) -> int | Tensor:
    """Frames of a centred STFT (``center=True``) of ``num_samples`` samples.

    ``1 + num_samples // hop_length`` for an even ``n_fft``; never fewer than one.
    """
    pad = 2 * (n_fft // 2) - n_fft  # 0 for even n_fft, -1 for odd
    if isinstance(num_samples, Tensor):
        return (1 + (num_samples + pad).div(hop_length, rounding_mode="floor")).clamp(min=1)
    return max(1, 1 + (num_samples + pad) // hop_length)


class LogMel(nn.Module):
    """Log-mel spectrogram in dB, batched; ``librosa.power_to_db(melspectrogram(...))``.

    Args:
        sample_rate: sampling rate of the input, in Hz.
        n_fft: FFT size.
        win_length: Hann window length (at most ``n_fft``; centred in it, zero-padded).
        hop_length: samples between frames.
        n_mels: mel bands.
        fmin: lowest band edge, in Hz.
        fmax: highest band edge, in Hz (default ``sample_rate / 2``).
        top_db: floor each clip at its own maximum minus this many dB (``None``: no floor
            other than -100 dB, librosa's ``amin``).

    ``forward(waveforms, lengths)`` returns ``(B, n_mels, frames)`` and frame lengths
    ``(B,)``. The module has buffers (filterbank, window) and no parameters.
    """

    mel_basis: Tensor
    window: Tensor

    def __init__(self, sample_rate: int = 16000, n_fft: int = 512, win_length: int = 400,
                 hop_length: int = 160, n_mels: int = 64, fmin: float = 0.0,
                 fmax: float | None = None, top_db: float | None = 80.0) -> None:
        super().__init__()
        if not 0 < win_length <= n_fft:
            raise ValueError(f"win_length must be in (0, n_fft={n_fft}], got {win_length}")
        if hop_length <= 0:
            raise ValueError(f"hop_length must be positive, got {hop_length}")
        if top_db is not None and top_db < 0:
            raise ValueError(f"top_db must be non-negative, got {top_db}")
        self.sample_rate, self.n_fft, self.win_length = sample_rate, n_fft, win_length
        self.hop_length, self.n_mels, self.fmin, self.fmax = hop_length, n_mels, fmin, fmax
        self.top_db = top_db
        mel = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
                                  fmax=fmax, dtype=np.float32)
        self.register_buffer("mel_basis", torch.from_numpy(np.ascontiguousarray(mel)),
                             persistent=False)
        window = scipy.signal.get_window("hann", win_length, fftbins=True)
        left = (n_fft - win_length) // 2
        window = np.pad(window, (left, n_fft - win_length - left))
        self.register_buffer("window", torch.from_numpy(window.astype(np.float32)),
                             persistent=False)

    def extra_repr(self) -> str:
        return (f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, "
                f"win_length={self.win_length}, hop_length={self.hop_length}, "
                f"n_mels={self.n_mels}, fmin={self.fmin}, fmax={self.fmax}, "
                f"top_db={self.top_db}")

    def frame_lengths(self, lengths: Tensor, frames: int) -> Tensor:
        """Frames of each clip of ``lengths`` samples, at most ``frames``."""
        counts = frame_count(lengths.to(torch.long), self.n_fft, self.hop_length)
        assert isinstance(counts, Tensor)
        return counts.clamp(max=frames)

    def power_mel(self, waveforms: Tensor) -> Tensor:
        """Mel power spectrogram ``(B, n_mels, frames)`` (``power=2``, not in dB)."""
        x = waveforms.to(self.window.dtype)
        short = self.n_fft - 2 * (self.n_fft // 2) - x.shape[-1]  # odd n_fft, empty input
        if short > 0:
            x = nn.functional.pad(x, (0, short))
        spec = torch.stft(x, self.n_fft, hop_length=self.hop_length, win_length=self.n_fft,
                          window=self.window, center=True, pad_mode="constant",
                          normalized=False, onesided=True, return_complex=True)
        ri = torch.view_as_real(spec)
        power = ri[..., 0].square() + ri[..., 1].square()  # (B, n_freq, frames)
        return torch.matmul(self.mel_basis, power)

    def forward(self, waveforms: Tensor, lengths: Tensor | None = None
                ) -> tuple[Tensor, Tensor]:
        """Log-mel features of a batch.

        Args:
            waveforms: ``(B, N)`` float mono waveforms, padded past each clip's end
                (a 1-D ``(N,)`` waveform is taken as a batch of one).
            lengths: ``(B,)`` samples per clip (default: all ``N``).

        Returns:
            ``(B, n_mels, frames)`` log-mel in dB, and ``(B,)`` frames per clip (long).
        """
        if waveforms.dim() == 1:
            waveforms = waveforms.unsqueeze(0)
        if waveforms.dim() != 2:
            raise ValueError(f"waveforms must be (B, N), got shape {tuple(waveforms.shape)}")
        batch, num = waveforms.shape
        if lengths is None:
            lengths = torch.full((batch,), num, dtype=torch.long, device=waveforms.device)
        else:
            lengths = lengths.to(device=waveforms.device, dtype=torch.long).clamp(0, num)
            past_end = torch.arange(num, device=waveforms.device) >= lengths.unsqueeze(1)
            waveforms = waveforms.masked_fill(past_end, 0.0)  # whatever the padding held
        db = 10.0 * torch.log10(self.power_mel(waveforms).clamp(min=AMIN))
        frames = self.frame_lengths(lengths, db.shape[-1])
        if self.top_db is not None:
            valid = torch.arange(db.shape[-1], device=db.device) < frames.unsqueeze(1)
            peak = db.masked_fill(~valid.unsqueeze(1), float("-inf")).amax(dim=(1, 2))
            db = torch.maximum(db, (peak - self.top_db).view(batch, 1, 1))
        return db, frames


class MFCC(nn.Module):
    """MFCCs, batched; ``librosa.feature.mfcc(..., dct_type=2, norm="ortho", lifter=0)``.

    Args:
        sample_rate: sampling rate of the input, in Hz.
        n_mfcc: coefficients kept (the first ``n_mfcc`` of the DCT over ``n_mels``).
        n_fft, win_length, hop_length, n_mels, fmin, fmax, top_db: as for :class:`LogMel`.

    ``forward(waveforms, lengths)`` returns ``(B, n_mfcc, frames)`` and frame lengths
    ``(B,)``. The module has buffers (filterbank, window, DCT matrix) and no parameters.
    ``librosa.feature.mfcc`` always floors at 80 dB; for another ``top_db`` this matches
    ``librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=top_db), ...)``.
    """

    dct: Tensor

    def __init__(self, sample_rate: int = 16000, n_mfcc: int = 20, n_fft: int = 512,
                 win_length: int = 400, hop_length: int = 160, n_mels: int = 64,
                 fmin: float = 0.0, fmax: float | None = None,
                 top_db: float | None = 80.0) -> None:
        super().__init__()
        if not 0 < n_mfcc <= n_mels:
            raise ValueError(f"n_mfcc must be in (0, n_mels={n_mels}], got {n_mfcc}")
        self.n_mfcc = n_mfcc
        self.log_mel = LogMel(sample_rate=sample_rate, n_fft=n_fft, win_length=win_length,
                              hop_length=hop_length, n_mels=n_mels, fmin=fmin, fmax=fmax,
                              top_db=top_db)
        # Column j is the DCT-II (orthonormal) of the j-th unit vector, so dct @ x is
        # scipy.fft.dct(x, type=2, norm="ortho") along the mel axis.
        dct = scipy.fft.dct(np.eye(n_mels), type=2, norm="ortho", axis=0)[:n_mfcc]
        self.register_buffer("dct", torch.from_numpy(dct.astype(np.float32)),
                             persistent=False)

    def extra_repr(self) -> str:
        return f"n_mfcc={self.n_mfcc}"

    def forward(self, waveforms: Tensor, lengths: Tensor | None = None
                ) -> tuple[Tensor, Tensor]:
        """MFCCs of a batch.

        Args:
            waveforms: ``(B, N)`` float mono waveforms, padded past each clip's end.
            lengths: ``(B,)`` samples per clip (default: all ``N``).

        Returns:
            ``(B, n_mfcc, frames)`` MFCCs, and ``(B,)`` frames per clip (long).
        """
        db, frames = self.log_mel(waveforms, lengths)
        return torch.matmul(self.dct, db), frames
