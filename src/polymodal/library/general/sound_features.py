"""A sound source's clips as ``builtin:general``'s locked audio towers hear them,
computed once and kept on disk: what Whisper says was said and how surely it is speech
(:meth:`~polymodal.encoders.audio.SpeechToText.listen`), MiniLM's vector of that
transcript, and Whisper's encoder states pooled (mean and standard deviation over the
frames that hold sound); and MiniLM's vector of each clip's caption."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from polymodal.library.general.features import rows_by_key, text_vectors
from polymodal.library.general.sources import caption_key
from polymodal.library.general.tuning import paths_digest

log = logging.getLogger(__name__)


@dataclass
class SoundFeatures:
    """One source's clips: ``captions``; ``said`` (N, 384) MiniLM's normalised vector of
    each transcript ("." where nothing was said, as the ``speech-text`` encoder has
    it); ``speech`` (N,) how surely each clip is speech; ``effect`` (N, 768) Whisper's
    encoder states, mean and standard deviation; ``words`` (N, 384) MiniLM's
    normalised vector of each caption; ``transcripts``, Whisper's words."""

    source: str
    captions: list[str]
    said: np.ndarray
    speech: np.ndarray
    effect: np.ndarray
    words: np.ndarray
    transcripts: list[str]

    def take(self, index: np.ndarray | list[int]) -> SoundFeatures:
        """The clips at ``index``."""
        index = np.asarray(index, dtype=int)
        return SoundFeatures(self.source, [self.captions[i] for i in index], self.said[index],
                             self.speech[index], self.effect[index], self.words[index],
                             [self.transcripts[i] for i in index])

    def distinct(self) -> SoundFeatures:
        """One clip per caption key (the first): "door open" and "doors open" are one
        name, not each other's negatives."""
        return self.take([g[0] for g in rows_by_key([caption_key(c) for c in self.captions])])

    def __len__(self) -> int:
        return len(self.captions)


def concat_sounds(parts: list[SoundFeatures], name: str = "sounds") -> SoundFeatures:
    """Several sources' clips as one."""
    return SoundFeatures(name, [c for p in parts for c in p.captions],
                         *(np.concatenate([getattr(p, f) for p in parts])
                           for f in ("said", "speech", "effect", "words")),
                         [t for p in parts for t in p.transcripts])


def heard_features(paths: list[str], cache: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Each clip's transcript, how surely it is speech, and Whisper's encoder states
    pooled (mean and standard deviation, 768-d), kept in ``cache`` by the paths and
    their sizes and times. A clip that cannot be decoded is silence (logged)."""
    file = cache / f"heard-{paths_digest(paths)}.npz"
    if file.exists():
        z = np.load(file)
        return [str(t) for t in z["text"]], z["speech"], z["effect"]
    from polymodal.data.errors import MediaError
    from polymodal.data.media import decode_audio
    from polymodal.encoders.audio import SpeechToText
    from polymodal.encoders.audio_whisper import WhisperAudioEncoder
    from polymodal.progress import progress_bar

    stt, encoder = SpeechToText(), WhisperAudioEncoder(pooling="mean+std")
    texts, speech, effect = [], [], []
    with torch.no_grad(), progress_bar("listening", len(paths)) as advance:
        for p in paths:
            try:
                wave = decode_audio(Path(p))
            except MediaError as exc:
                log.warning("%s: not decoded (%s): heard as silence", p, exc)
                wave = np.zeros(1600, np.float32)
            heard = stt.listen(wave)
            texts.append(heard.text)
            speech.append(heard.speech)
            effect.append(encoder.encode([wave]).pooled[0].numpy())
            advance(1)
    out = (texts, np.asarray(speech, np.float32), np.stack(effect).astype(np.float32))
    file.parent.mkdir(parents=True, exist_ok=True)
    part = file.with_name(f"{file.stem}.{os.getpid()}.part.npz")
    np.savez(part, text=np.asarray(texts, dtype=str), speech=out[1], effect=out[2])
    os.replace(part, file)
    return out


def sound_features(name: str, table: pd.DataFrame, cache: Path) -> SoundFeatures:
    """The features of a sound source's rows (``sound``, ``caption``)."""
    captions = [str(c) for c in table["caption"]]
    texts, speech, effect = heard_features(list(table["sound"]), cache)
    said = text_vectors([t or "." for t in texts], cache)  # as speech-text embeds silence
    return SoundFeatures(name, captions, said, speech, effect,
                         text_vectors(captions, cache), texts)
