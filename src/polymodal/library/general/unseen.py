"""The shipped heads of ``builtin:general`` on corpus sources they were not trained on
(sources added to the corpus after the heads were built), next to the bridge alone::

    python -m polymodal.library.general.unseen dia supertux

Caption -> picture on all of a source's captions and on those whose name no training
row of the shipped heads had, picture -> caption on all (the benchmark's metrics,
:func:`.loso.measure` and :func:`.loso.measure_back`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from polymodal.library.general.features import source_features
from polymodal.library.general.heads import embed, picture_inputs, untrained_weights
from polymodal.library.general.loso import gallery_index, measure, measure_back
from polymodal.library.general.sources import CORPUS, TUNING, caption_key

#: the corpus sources added after the shipped heads were trained (not in their corpus)
NEWER = ("supertux", "dia", "deepin", "paper", "obsidian", "hedgewars")


def shipped_heads(folder: Path) -> dict[str, torch.Tensor]:
    """The picture and caption heads' weights of a saved ``builtin:general`` folder."""
    from safetensors.torch import load_file

    state = load_file(str(folder / "model.safetensors"))
    return {"image": state["heads.image.net.weight"],
            "caption": state["heads.caption.net.weight"]}


def shipped_keys() -> set[str]:
    """The caption keys of the shipped heads' training rows (every older source but
    the tuxpaint test split, and the tuxpaint train split)."""
    names = [n for n in CORPUS if n not in NEWER and n != "tuxpaint"]
    keys = {caption_key(c) for n in names for c in CORPUS[n].rows()["caption"]}
    return keys | {caption_key(c) for c in TUNING.rows()["caption"]}


def lines(name: str, cache: Path, folder: Path) -> list[str]:
    """One line per model, queries and direction on source ``name``."""
    keys = shipped_keys()
    f = source_features(CORPUS[name], cache)
    test = f.take(gallery_index(len(f)))
    unseen = np.array([k not in keys for k in test.keys])
    out = [f"{name}: gallery {len(test)}, names seen by the shipped heads "
           f"{1 - unseen.mean():.0%}"]
    for model, w in (("bridge alone", untrained_weights(True)),
                     ("shipped heads", shipped_heads(folder))):
        images = embed(w, "image", picture_inputs(test, True))
        words = embed(w, "caption", test.words)
        for queries, keep in (("all", None), ("unseen", unseen)):
            m, ch = measure(images, words, test.captions, keep)
            out.append(f"  {model}, caption -> picture ({queries}, {m['queries']:.0f}): "
                       f"R@1 {m['R@1']:.3f} R@5 {m['R@5']:.3f} R@10 {m['R@10']:.3f} "
                       f"median {m['median_rank']:.0f}; chance R@10 {ch['R@10']:.3f}")
        m, ch = measure_back(images, words, test.captions)
        out.append(f"  {model}, picture -> caption (all): R@1 {m['R@1']:.3f} R@10 "
                   f"{m['R@10']:.3f} median {m['median_rank']:.0f}; chance R@10 "
                   f"{ch['R@10']:.3f}")
    return out


def main(argv: list[str] | None = None) -> None:
    """Print :func:`lines` for each source named."""
    from polymodal.library.general.build import MODEL_FOLDER

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", choices=NEWER)
    parser.add_argument("--cache", type=Path,
                        default=Path("bench-results/runs/general-model"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    for name in args.sources:
        print("\n".join(lines(name, args.cache, MODEL_FOLDER)))


if __name__ == "__main__":
    main()
