"""fashion-mnist: Zalando's 70,000 real 28x28 clothing images, from Debian's
``dataset-fashion-mnist`` IDX files, with the class name as a caption."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from polymodal.data.bundled.registry import register_dataset, write_card, write_manifest
from polymodal.progress import progress_bar

IDX_FOLDER = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
           "Sneaker", "Bag", "Ankle boot"]
CAPTION_TEMPLATES = ["a photo of a {}.", "a {}.", "a greyscale picture of a {}.",
                     "a small image of a {}.", "this is a {}."]


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped): the format of (Fashion-)MNIST."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    dtype = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
             0x0E: ">f8"}[raw[2]]
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: IDX header says {shape} but holds {data.size} values")
    return data.reshape(shape)


def _idx(name: str) -> Path:
    for candidate in (IDX_FOLDER / f"{name}.gz", IDX_FOLDER / name):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{IDX_FOLDER / name}(.gz) not found; apt-get install "
                            "dataset-fashion-mnist")


def caption_for(label: int, rng: np.random.Generator) -> str:
    """A short caption that names the class (templates vary the wording)."""
    template = CAPTION_TEMPLATES[int(rng.integers(len(CAPTION_TEMPLATES)))]
    return template.format(CLASSES[label].lower())


@register_dataset(
    "fashion-mnist",
    description="70,000 real 28x28 clothing images in 10 classes, with class-name captions",
    source="Debian package dataset-fashion-mnist (Zalando Research's Fashion-MNIST)",
    licence="MIT (Zalando SE)",
    debian_packages=("dataset-fashion-mnist",),
    val_size=5000,
)
def make_fashion_mnist(out: Path, *, seed: int, limit: int | None, show_progress: bool,
                       val_size: int) -> None:
    """Write every image as PNG; the original test set is ``test``, ``val_size`` seeded
    training images are ``val``; ``limit`` keeps that many images per class and split."""
    rng = np.random.default_rng(seed)
    parts = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
    rows = []
    for part, (img_name, lbl_name) in parts.items():
        images, labels = read_idx(_idx(img_name)), read_idx(_idx(lbl_name))
        order = np.arange(len(labels))
        if limit is not None:
            order = np.concatenate([np.flatnonzero(labels == c)[:limit] for c in range(10)])
        split = np.full(len(labels), part, dtype=object)
        if part == "train":
            n_val = min(val_size, len(order) // 10) if limit is None else max(1, len(order) // 10)
            split[rng.choice(order, size=n_val, replace=False)] = "val"
        folder = out / "images" / part
        folder.mkdir(parents=True, exist_ok=True)
        with progress_bar(f"making fashion-mnist ({part})", len(order),
                          enabled=show_progress) as advance:
            for i in order:
                name = f"{part}-{i:05d}"
                Image.fromarray(images[i], mode="L").save(folder / f"{name}.png",
                                                          compress_level=1)
                lab = int(labels[i])
                rows.append({"id": name, "image": f"images/{part}/{name}.png",
                             "caption": caption_for(lab, rng), "label": CLASSES[lab],
                             "split": split[i]})
                advance(1)
    table = pd.DataFrame(rows)
    write_manifest(out, table)
    write_card(
        out, title="fashion-mnist", label="label", table=table,
        summary="Zalando's Fashion-MNIST: real product photos of clothing, 28x28 greyscale, "
                "10 classes, with the class name as a caption for image-text pretraining "
                "and zero-shot classification.",
        source="Debian package `dataset-fashion-mnist` (IDX files under "
               "`/usr/share/datasets/fashion-mnist/`)",
        licence="MIT (Zalando SE)",
        how_made=(
            f"`polymodal datasets make fashion-mnist` (seed {seed}"
            + (f", limit {limit} per class" if limit else "") + "). "
            "IDX files read with numpy and written as PNG; the original 10,000 test images "
            f"are `test`; {val_size if limit is None else 'a tenth'} seeded training "
            "images are `val`. `caption` names the class with one of the templates "
            f"{CAPTION_TEMPLATES}: it carries the label, so it is for pretraining and "
            "zero-shot, not a feature for supervised classification."),
    )
