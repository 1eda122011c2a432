"""Which of a name's pictures the general heads train on: the first, or one drawn at
random each epoch (``HeadSettings.per_name``), on a small pool of training-only icon
themes (GNOME, MATE, Faenza, elementary and the other validation theme), measured on
the validation themes breeze and numix (unseen caption -> picture R@10, as in
``loso.choose_settings``; no measured source takes part)::

    POLYMODAL_ENCODE_PROCESSES=2 python -m benchmarks.general_per_name [EPOCHS ...]

An indication on 5,000 pictures, not the benchmark's choice (which ``make bench`` makes
on the whole corpus with the same grid)."""

from __future__ import annotations

import sys

POOL = ("gnome", "mate", "faenza", "elementary")


def main(argv: list[str]) -> None:
    from benchmarks.general_model import CACHE
    from polymodal.library.general.features import concat, source_features
    from polymodal.library.general.heads import PER_NAME, HeadSettings
    from polymodal.library.general.loso import VALIDATION, unseen_recall
    from polymodal.library.general.sources import CORPUS

    features = {n: source_features(CORPUS[n], CACHE) for n in (*POOL, *VALIDATION)}
    for held in VALIDATION:
        train = concat([features[n] for n in (*POOL, *VALIDATION) if n != held])
        print(f"{held}: {len(train)} training pictures of {len(set(train.keys))} names")
        for epochs in [int(a) for a in argv] or [10]:
            for anchor in (0.01, 0.1):
                for mode in PER_NAME:
                    r10 = unseen_recall(train, features[held], HeadSettings(
                        epochs=epochs, anchor=anchor, pooled=True, per_name=mode))
                    print(f"  {epochs} epochs, pull {anchor}, {mode} picture a name: "
                          f"unseen R@10 {r10:.3f}")

if __name__ == "__main__":
    main(sys.argv[1:])
