"""Leave one sound source out: the audio head (:mod:`.sound_head`) trained on every
other sound source, measured on that one (sound -> caption among its names, and
caption -> sound), against the transcript alone (the path ``builtin:general`` had
before: Whisper's words through the caption head) and chance::

    python -m polymodal.library.general.sound_loso

The settings are chosen on :data:`VALIDATION` only (each left out of the other
training sources; neither is a measured source)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from polymodal.library.general.sound_features import (
    SoundFeatures,
    concat_sounds,
    sound_features,
)
from polymodal.library.general.sound_head import (
    POOLINGS,
    SoundHeadSettings,
    caption_places,
    embed_sounds,
    train_sound_head,
)
from polymodal.library.general.sound_sources import SOUND_SOURCES

#: training-only sources the settings are chosen on (never measured)
VALIDATION = ("0ad-sounds", "minetest-sounds")
#: the sources measured left out
MEASURED = tuple(n for n in SOUND_SOURCES if n not in VALIDATION)
#: the settings tried by :func:`choose_sound_settings`
GRID = tuple(SoundHeadSettings(steps=st, decay=d, pooling=p)
             for p in POOLINGS for d in (1e-4, 1e-3, 1e-2) for st in (100, 300))
#: the ways a clip is placed: its transcript alone (speech 1), its sound alone (0),
#: both by how surely it is speech (None)
PATHS: dict[str, float | None] = {"transcript alone": 1.0, "sound alone": 0.0,
                                  "both (by speech)": None}


def load_sounds(cache: Path) -> dict[str, SoundFeatures]:
    """Every sound source's features, from ``cache``."""
    return {n: sound_features(n, s.rows(), cache) for n, s in SOUND_SOURCES.items()}


def both_ways(places: np.ndarray, names: np.ndarray) -> dict[str, float]:
    """Sound -> caption and caption -> sound metrics, each clip's own name the answer
    (one clip per name)."""
    from polymodal.pretraining.retrieval import retrieval_metrics

    relevant = [[i] for i in range(len(places))]
    out = {f"sound->caption {k}": v for k, v in
           retrieval_metrics(places, names, relevant).items()}
    out.update({f"caption->sound {k}": v for k, v in
                retrieval_metrics(names, places, relevant).items()})
    return out


def left_out(name: str, sounds: dict[str, SoundFeatures], caption_head: torch.Tensor,
             settings: SoundHeadSettings) -> dict[str, dict[str, float]]:
    """Train on every sound source but ``name``, measure each path on its names."""
    train = concat_sounds([f for n, f in sounds.items() if n != name])
    head = train_sound_head(train, caption_head, settings).linear(caption_head)
    test = sounds[name].distinct()
    names = caption_places(caption_head, test.words)
    return {path: both_ways(embed_sounds(head, test, speech), names)
            for path, speech in PATHS.items()}


def choose_sound_settings(sounds: dict[str, SoundFeatures], caption_head: torch.Tensor
                          ) -> tuple[SoundHeadSettings, list[str]]:
    """The settings of :data:`GRID` with the best mean sound -> caption R@10 (both
    paths, by speech) over :data:`VALIDATION`, each left out of all the other sources
    (the measured ones are trained on here, never scored: only the validation
    sources' numbers choose), and a line per setting."""
    lines, best = [], (-1.0, GRID[0])
    for s in GRID:
        scores = [left_out(v, sounds, caption_head, s)["both (by speech)"]
                  ["sound->caption R@10"] for v in VALIDATION]
        lines.append(f"{s.pooling}, L2 {s.decay:g}, {s.steps} steps: sound -> caption R@10 "
                     + ", ".join(f"{v} {x:.3f}" for v, x in zip(VALIDATION, scores,
                                                                 strict=True)))
        if float(np.mean(scores)) > best[0]:
            best = (float(np.mean(scores)), s)
    return best[1], lines


def main(argv: list[str] | None = None) -> None:
    """Choose the settings on the validation sources, then leave each measured source
    out and print its rows."""
    from polymodal.library.general.build import MODEL_FOLDER, read_heads

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("bench-results/runs/general-model"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    sounds = load_sounds(args.cache)
    caption_head = read_heads(MODEL_FOLDER)["caption"]
    settings, lines = choose_sound_settings(sounds, caption_head)
    print("\n".join(lines))
    print(f"chosen: {settings}")
    for name in MEASURED:
        rows = left_out(name, sounds, caption_head, settings)
        n = len(sounds[name].distinct())
        print(f"{name} ({n} names, chance R@10 {min(1.0, 10 / n):.3f})")
        for path, m in rows.items():
            print(f"  {path:18s} sound->caption R@1 {m['sound->caption R@1']:.3f} R@10 "
                  f"{m['sound->caption R@10']:.3f} median {m['sound->caption median_rank']:.0f}"
                  f" | caption->sound R@10 {m['caption->sound R@10']:.3f}", flush=True)


if __name__ == "__main__":
    main()
