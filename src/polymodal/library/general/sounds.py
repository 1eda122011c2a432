"""Sound effects with words, and an audio head measured leave one source out::

    python -m polymodal.library.general.sounds

Each source is read from an installed Debian package (data cards in
docs/general-model.md); a sound's words are its file name's (numbers dropped, "-" and
"_" to spaces), one sound per name. The audio head is linear, from the locked
``whisper-encoder`` (Whisper tiny.en's encoder states averaged, 384-d) into
``builtin:general``'s caption space (the shipped caption head on MiniLM, which stays
locked): trained with InfoNCE on every sound source but one, measured on that one
(sound -> caption among its names) against the path the library has today, Whisper's
transcript through the shipped speech head. Never read: tuxpaint's sound effects (the
mixed folder's, :mod:`.mixed`) and the held-out packages (:data:`.sources.HELD_OUT`)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from polymodal.library.general.sources import has_words

_SUFFIXES = (".ogg", ".oga", ".wav", ".flac")
_WESNOTH = Path("/usr/share/games/wesnoth/1.16/data/core/sounds")
_SOUNDS = Path("/usr/share/sounds")
#: sound sources: name -> (package, licence, folder, file-name prefix dropped)
SOUND_SOURCES: dict[str, tuple[str, str, Path, str]] = {
    "wesnoth-sounds": ("wesnoth-1.16-data", "GPL-2+", _WESNOTH, ""),
    "supertux-sounds": ("supertux-data", "GPL-2+ / GPL-3+",
                        Path("/usr/share/games/supertux2/sounds"), ""),
    "hedgewars-sounds": ("hedgewars-data", "GFDL-1.3 / GPL-2",
                         Path("/usr/share/games/hedgewars/Data/Sounds"), ""),
    "freedesktop-sounds": ("sound-theme-freedesktop", "GPL-2+ / CC-BY(-SA)-3.0",
                           _SOUNDS / "freedesktop", ""),
    "oxygen-sounds": ("oxygen-sounds", "LGPL-3+", _SOUNDS, "oxygen"),
}


def sound_name(stem: str, prefix: str = "") -> str:
    """A sound's file name as words: ``bat-hit-2`` -> "bat hit", ``BirdyLay`` -> "birdy
    lay", ``Oxygen-Im-New-Mail`` (prefix "oxygen") -> "im new mail"."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", stem).lower()
    words = [re.sub(r"\d+$", "", w) for w in re.split(r"[-_.\s]+", spaced)]
    words = [w for w in words if w and not w.isdigit() and w != prefix]
    return " ".join(dict.fromkeys(words))


def sound_rows(name: str) -> pd.DataFrame:
    """One sound per name of a sound source (the first file in sorted order; the
    Hedgewars voice packs, speech, are left out: only its top folder is read)."""
    _package, _licence, folder, prefix = SOUND_SOURCES[name]
    paths = sorted(folder.iterdir()) if name in ("hedgewars-sounds", "oxygen-sounds") \
        else sorted(folder.rglob("*"))
    rows: dict[str, str] = {}
    for path in paths:
        if path.suffix.lower() not in _SUFFIXES or not path.is_file():
            continue
        if prefix and not path.name.lower().startswith(prefix):
            continue
        caption = sound_name(path.stem, prefix)
        if has_words(caption):
            rows.setdefault(caption, str(path))
    return pd.DataFrame({"sound": list(rows.values()), "caption": list(rows),
                         "source": name})


def audio_features(paths: list[str], cache: Path) -> np.ndarray:
    """``whisper-encoder``'s pooled 384-d vectors of the sounds (first 5 s), normalised,
    kept in ``cache`` by the paths."""
    digest = hashlib.sha256("\n".join(paths).encode()).hexdigest()[:16]
    file = cache / f"whisper-enc-{digest}.npy"
    if file.exists():
        return np.load(file)
    from polymodal.data.media import decode_audio
    from polymodal.encoders.registry import build_encoder

    enc = build_encoder("whisper-encoder")
    out = []
    with torch.no_grad():
        for p in paths:
            x = enc.preprocess(decode_audio(Path(p)))[None]
            out.append(enc(x, torch.tensor([x.shape[-1]])).pooled[0].numpy())
    feats = np.stack(out).astype(np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True).clip(1e-12)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(file, feats)
    return feats


def train_audio_head(sounds: np.ndarray, targets: np.ndarray, epochs: int = 200,
                     lr: float = 1e-2, decay: float = 1e-3, temperature: float = 0.05,
                     seed: int = 0) -> torch.Tensor:
    """A linear head (out, 384) from audio features to fixed caption vectors
    ``targets`` (normalised), full-batch symmetric InfoNCE with an L2 pull to 0."""
    g = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(sounds)
    t = torch.as_tensor(targets)
    w = (torch.randn(t.shape[1], x.shape[1], generator=g) * 0.01).requires_grad_()
    opt = torch.optim.Adam([w], lr=lr)
    target = torch.arange(len(x))
    for _ in range(epochs):
        u = torch.nn.functional.normalize(x @ w.T, dim=-1)
        logits = u @ t.T / temperature
        loss = (torch.nn.functional.cross_entropy(logits, target)
                + torch.nn.functional.cross_entropy(logits.T, target)) / 2
        opt.zero_grad()
        (loss + decay * w.pow(2).sum()).backward()
        opt.step()
    return w.detach()


def sound_to_caption(sounds: np.ndarray, words: np.ndarray) -> dict[str, float]:
    """Sound -> caption metrics (each sound's own name among the source's names)."""
    from polymodal.pretraining.retrieval import retrieval_metrics

    return retrieval_metrics(sounds, words, [[i] for i in range(len(sounds))])


def main() -> None:
    """Leave each sound source out: the audio head trained on the others, next to the
    transcript path and chance, sound -> caption R@1 / R@10 / median rank."""
    from polymodal.data.media import decode_audio
    from polymodal.library.general.build import MODEL_FOLDER
    from polymodal.pretraining import Pretrainer
    from polymodal.pretraining.retrieval import chance_metrics

    torch.set_num_threads(1)
    cache = Path("bench-results/runs/general-model")
    general = Pretrainer.load(MODEL_FOLDER)
    tables = {n: sound_rows(n) for n in SOUND_SOURCES}
    feats, words, said = {}, {}, {}
    for n, t in tables.items():
        feats[n] = audio_features(list(t["sound"]), cache)
        words[n] = general.embed_values("caption", list(t["caption"]))
        file = cache / f"said-{hashlib.sha256(''.join(t['sound']).encode()).hexdigest()[:16]}.npy"
        if not file.exists():
            np.save(file, general.embed_values("speech", [decode_audio(Path(p))
                                                          for p in t["sound"]]))
        said[n] = np.load(file)
        print(f"{n}: {len(t)} sounds with names", flush=True)
    for n in tables:
        others = [m for m in tables if m != n]
        head = train_audio_head(np.concatenate([feats[m] for m in others]),
                                np.concatenate([words[m] for m in others]))
        mine = torch.nn.functional.normalize(torch.as_tensor(feats[n]) @ head.T,
                                             dim=-1).numpy()
        _print(f"{n} left out", mine, said[n], words[n], chance_metrics)
    # tuxpaint's test-split sound effects (the mixed folder's; never trained on): the
    # head trained on every sound source
    head = train_audio_head(np.concatenate(list(feats.values())),
                            np.concatenate(list(words.values())))
    t = _tuxpaint_sounds()
    mine = torch.nn.functional.normalize(
        torch.as_tensor(audio_features(list(t["sound"]), cache)) @ head.T, dim=-1).numpy()
    said_t = general.embed_values("speech", [decode_audio(Path(p)) for p in t["sound"]])
    _print(f"tuxpaint test sounds ({len(t)})", mine, said_t,
           general.embed_values("caption", list(t["caption"])), chance_metrics)


def _print(label: str, mine: np.ndarray, said: np.ndarray, words: np.ndarray,
           chance_metrics: object) -> None:
    chance = chance_metrics([[0]] * len(words), len(words))  # type: ignore[operator]
    for model, s in (("audio head", mine), ("transcript (shipped)", said)):
        m = sound_to_caption(s, words)
        print(f"  {label}, {model}: R@1 {m['R@1']:.3f} R@10 {m['R@10']:.3f} "
              f"median {m['median_rank']:.0f}; chance R@10 {chance['R@10']:.3f}", flush=True)


def _tuxpaint_sounds() -> pd.DataFrame:
    """The mixed folder's sound effects: the tuxpaint test split's, one per sound."""
    from polymodal.library.general.mixed import _sounds
    from polymodal.library.general.sources import tuxpaint

    stamps = tuxpaint("test")
    stamps = stamps.assign(sound=_sounds(stamps)).dropna(subset=["sound"])
    return stamps.drop_duplicates("sound")[["sound", "caption"]].reset_index(drop=True)


if __name__ == "__main__":
    main()
