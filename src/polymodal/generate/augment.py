"""Synthetic rows from a trained :class:`~polymodal.generate.gan.ConditionalGAN`:
PNG files and a manifest (id, image, label, caption, split, synthetic) that a
Predictor or a Pretrainer reads like any other, and :func:`mix` to add them to real
rows at a chosen ratio."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polymodal.generate.gan import ConditionalGAN

CAPTION = "a synthetic picture of a {}."


def write_synthetic(gan: ConditionalGAN, out: str | os.PathLike[str], per_class: int,
                    classes: Sequence[str] | None = None, seed: int = 0,
                    caption: str = CAPTION) -> Path:
    """Write ``per_class`` pictures of each class (default: every class the GAN knows)
    under ``out/images/<class>/`` and ``out/manifest.csv``; returns the manifest.

    Raises:
        ValueError: a class the GAN was not trained on (before anything is written).
    """
    from polymodal.data.bundled.registry import write_manifest

    wanted = list(classes) if classes else list(gan.classes_)
    for name in wanted:
        gan.class_index(name)
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    out = Path(out)
    rows = []
    for k, name in enumerate(wanted):
        folder = out / "images" / _safe(name)
        folder.mkdir(parents=True, exist_ok=True)
        for i, picture in enumerate(gan.sample(name, per_class, seed=seed * 1000 + k)):
            rel = f"images/{_safe(name)}/synthetic-{i:05d}.png"
            picture.save(out / rel)
            rows.append({"id": f"synthetic/{_safe(name)}/{i:05d}", "image": rel,
                         "label": name, "caption": caption.format(str(name).lower()),
                         "split": "train", "synthetic": True})
    return write_manifest(out, pd.DataFrame(rows))


def _safe(name: Any) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in str(name))


def mix(real: pd.DataFrame, synthetic: str | os.PathLike[str] | pd.DataFrame,
        ratio: float, seed: int = 0, real_root: str | os.PathLike[str] | None = None
        ) -> pd.DataFrame:
    """``real`` rows with ``ratio`` synthetic rows per real row added (drawn without
    replacement, class balance kept as written), picture paths made absolute; a
    ``synthetic`` column says which is which."""
    if ratio < 0:
        raise ValueError(f"ratio must be >= 0, got {ratio}")
    if isinstance(synthetic, pd.DataFrame):
        syn = synthetic.copy()
    else:
        path = Path(synthetic)
        path = path / "manifest.csv" if path.is_dir() else path
        syn = pd.read_csv(path)
        syn["image"] = [str(path.parent / p) for p in syn["image"]]
    n = min(len(syn), round(ratio * len(real)))
    picked = syn.iloc[np.sort(np.random.default_rng(seed).choice(len(syn), n, replace=False))]
    real = real.copy()
    if real_root is not None:
        real["image"] = [str(Path(real_root) / p) for p in real["image"]]
    real["synthetic"] = False
    return pd.concat([real, picked[[c for c in picked.columns if c in real.columns]]],
                     ignore_index=True)
