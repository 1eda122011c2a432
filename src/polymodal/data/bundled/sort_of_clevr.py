"""sort-of-clevr: the relational visual question answering set of Santoro et al. 2017
("A simple neural network module for relational reasoning").

Each 75x75 image holds 6 objects, one of each colour (red, green, blue, orange, grey,
yellow), each a square or a circle, placed without overlap. Each image gets questions
in words, half non-relational and half relational, with one-word answers:

- non-relational: the shape of the <colour> object; is it on the left; is it on the top;
- relational: the shape of the object closest to / furthest from the <colour> object;
  how many objects have the shape of the <colour> object.

Answers are classes: yes, no, square, circle, 1 ... 6 (the paper's "rectangle" is our
"square").

``sort-of-clevr-scenes`` is the same scenes (same seed and sizes, same pictures) one row
each, described in words instead of asked about: each object's colour, shape and
quarter of the picture (:func:`scene_caption`), for captioning.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from polymodal.data.bundled.registry import register_dataset, write_card, write_manifest
from polymodal.progress import progress_bar

COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255),
           "orange": (255, 156, 0), "grey": (128, 128, 128), "yellow": (255, 255, 0)}
SHAPES = ("square", "circle")
IMAGE_SIZE = 75
OBJECT_SIZE = 5  # half the side of a square / the radius of a circle


def _place(rng: np.random.Generator) -> np.ndarray:
    """Centres of 6 objects, at least 2*OBJECT_SIZE+2 px apart, inside the image."""
    centres: list[np.ndarray] = []
    lo, hi = OBJECT_SIZE, IMAGE_SIZE - OBJECT_SIZE
    while len(centres) < len(COLOURS):
        c = rng.integers(lo, hi, size=2)
        if all(np.linalg.norm(c - o) > 2 * OBJECT_SIZE + 2 for o in centres):
            centres.append(c)
    return np.stack(centres).astype(float)


def draw_scene(centres: np.ndarray, shapes: list[str]) -> Image.Image:
    img = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (255, 255, 255))
    pen = ImageDraw.Draw(img)
    for (x, y), shape, colour in zip(centres, shapes, COLOURS.values(), strict=True):
        box = [x - OBJECT_SIZE, y - OBJECT_SIZE, x + OBJECT_SIZE, y + OBJECT_SIZE]
        if shape == "square":
            pen.rectangle(box, fill=colour)
        else:
            pen.ellipse(box, fill=colour)
    return img


def questions_for(centres: np.ndarray, shapes: list[str], rng: np.random.Generator,
                  n_each: int) -> list[dict[str, object]]:
    """``n_each`` non-relational and ``n_each`` relational questions about one scene."""
    names = list(COLOURS)
    dist = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    out: list[dict[str, object]] = []
    for relational in (False, True):
        for _ in range(n_each):
            k = int(rng.integers(len(names)))
            colour, family = names[k], int(rng.integers(3))
            if not relational:
                if family == 0:
                    q, a, fam = f"What is the shape of the {colour} object?", shapes[k], "shape"
                elif family == 1:
                    q = f"Is the {colour} object on the left?"
                    a, fam = ("yes" if centres[k, 0] < IMAGE_SIZE / 2 else "no"), "horizontal"
                else:
                    q = f"Is the {colour} object on the top?"
                    a, fam = ("yes" if centres[k, 1] < IMAGE_SIZE / 2 else "no"), "vertical"
            else:
                d = dist[k].copy()
                if family == 0:
                    d[k] = np.inf
                    q = f"What is the shape of the object closest to the {colour} object?"
                    a, fam = shapes[int(d.argmin())], "closest"
                elif family == 1:
                    q = f"What is the shape of the object furthest from the {colour} object?"
                    a, fam = shapes[int(d.argmax())], "furthest"
                else:
                    q = f"How many objects have the same shape as the {colour} object?"
                    a, fam = str(sum(s == shapes[k] for s in shapes)), "count"
            out.append({"question": q, "answer": a, "relational": relational, "family": fam})
    return out


def scene_caption(centres: np.ndarray, shapes: list[str]) -> str:
    """A scene in words, from its objects: each in the maker's colour order with its
    shape and its quarter of the picture, e.g. "red circle top left, green square
    bottom right, ... yellow square top right."."""
    parts = [f"{colour} {shape} {'top' if y < IMAGE_SIZE / 2 else 'bottom'} "
             f"{'left' if x < IMAGE_SIZE / 2 else 'right'}"
             for colour, shape, (x, y) in zip(COLOURS, shapes, centres, strict=True)]
    return ", ".join(parts) + "."


def read_scene(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """A scene's objects read back from its picture (each object is drawn in its own
    pure colour): their centres in the maker's colour order and their shapes (a square
    fills its 11x11 box, a circle about 80% of it).

    Raises:
        ValueError: a colour is missing (the picture is not a sort-of-clevr scene).
    """
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    centres, shapes = [], []
    for colour, rgb in COLOURS.items():
        ys, xs = np.nonzero((pixels == np.array(rgb)).all(axis=-1))
        if not len(xs):
            raise ValueError(f"{path}: no {colour} object (is this a sort-of-clevr scene?)")
        centres.append((xs.mean(), ys.mean()))
        shapes.append("square" if len(xs) > 0.9 * (2 * OBJECT_SIZE + 1) ** 2 else "circle")
    return np.asarray(centres), shapes


def describe_scene(path: str | Path) -> str:
    """A sort-of-clevr picture in words, read from its pixels (:func:`read_scene`):
    the caption :func:`scene_caption` writes from the scene's objects."""
    return scene_caption(*read_scene(path))


def _scenes(out: Path, rng: np.random.Generator, sizes: dict[str, int],
            questions_per_kind: int, show_progress: bool, what: str
            ) -> Iterator[tuple[str, str, np.ndarray, list[str], list[dict[str, object]]]]:
    """Draw and save every scene, in order (split, image id, centres, shapes,
    questions): both makers draw the same scenes from the same seed, the questions
    too, so the random draws stay in step."""
    (out / "images").mkdir(exist_ok=True)
    with progress_bar(f"making {what}", sum(sizes.values()),
                      enabled=show_progress) as advance:
        for split, n in sizes.items():
            for j in range(n):
                image_id = f"{split}-{j:05d}"
                centres = _place(rng)
                shapes = [SHAPES[int(rng.integers(2))] for _ in COLOURS]
                draw_scene(centres, shapes).save(out / "images" / f"{image_id}.png")
                yield split, image_id, centres, shapes, questions_for(
                    centres, shapes, rng, questions_per_kind)
                advance(1)


#: what both makers are registered with: the same defaults draw the same scenes
_SHARED: dict[str, Any] = {
    "source": "generated by polymodal after Santoro et al. 2017, Relation Networks",
    "licence": "CC0-1.0 (generated)",
    "n_train": 9800, "n_val": 200, "n_test": 200, "questions_per_kind": 10,
}


def _sizes(limit: int | None, n_train: int, n_val: int, n_test: int) -> dict[str, int]:
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    return sizes if limit is None else {k: min(v, limit) for k, v in sizes.items()}


@register_dataset(
    "sort-of-clevr",
    description="relational VQA (Santoro et al. 2017): 75x75 scenes of coloured shapes, "
                "questions in words, answers as classes",
    **_SHARED,
)
def make_sort_of_clevr(out: Path, *, seed: int, limit: int | None, show_progress: bool,
                       n_train: int, n_val: int, n_test: int,
                       questions_per_kind: int) -> None:
    """Draw the scenes and write one row per question; ``limit`` caps images per split."""
    rng = np.random.default_rng(seed)
    sizes = _sizes(limit, n_train, n_val, n_test)
    rows = []
    for split, image_id, _, _, questions in _scenes(out, rng, sizes, questions_per_kind,
                                                    show_progress, "sort-of-clevr"):
        for q_index, q in enumerate(questions):
            rows.append({"id": f"{image_id}-q{q_index:02d}", "image_id": image_id,
                         "image": f"images/{image_id}.png", **q, "split": split})
    table = pd.DataFrame(rows)
    write_manifest(out, table)
    write_card(
        out, title="sort-of-clevr", label="answer", table=table,
        summary="Relational visual question answering after Santoro et al. 2017 "
                "(Relation Networks): is a model able to compare objects, not only "
                "describe one?",
        source="generated by polymodal (the generator of the paper, rewritten)",
        licence="CC0-1.0",
        how_made=(
            f"`polymodal datasets make sort-of-clevr` (seed {seed}; images per split "
            f"{sizes}; {questions_per_kind} non-relational and {questions_per_kind} "
            "relational questions per image). Each 75x75 white image holds one object "
            "of each colour (red, green, blue, orange, grey, yellow), a square or a circle "
            f"of side {2 * OBJECT_SIZE} px, centres at least {2 * OBJECT_SIZE + 2} px apart. "
            "Non-relational families: shape, horizontal (left?), vertical (top?); "
            "relational: closest, furthest, count. `relational` marks the kind, "
            "`family` the question family, `image_id` groups the questions of one image; "
            "splits are by image. The paper reports a CNN+MLP at about 63% and a CNN+RN "
            "at about 94% on relational questions."),
    )


@register_dataset(
    "sort-of-clevr-scenes",
    description="sort-of-clevr's scenes described in words (each object's colour, shape "
                "and quarter): picture + caption, for captioning",
    **_SHARED,
)
def make_sort_of_clevr_scenes(out: Path, *, seed: int, limit: int | None,
                              show_progress: bool, n_train: int, n_val: int, n_test: int,
                              questions_per_kind: int) -> None:
    """Draw sort-of-clevr's scenes (the same pictures as ``sort-of-clevr`` with the same
    settings) and write one row per scene with its caption, written from the scene's
    objects; ``questions_per_kind`` only keeps the random draws in step with it."""
    rng = np.random.default_rng(seed)
    sizes = _sizes(limit, n_train, n_val, n_test)
    rows = [{"id": image_id, "image": f"images/{image_id}.png",
             "caption": scene_caption(centres, shapes), "split": split}
            for split, image_id, centres, shapes, _ in _scenes(
                out, rng, sizes, questions_per_kind, show_progress, "sort-of-clevr-scenes")]
    table = pd.DataFrame(rows)
    write_manifest(out, table)
    write_card(
        out, title="sort-of-clevr-scenes", label=None, table=table,
        summary="sort-of-clevr's scenes (Santoro et al. 2017) in words: a caption per "
                "picture that names each object's colour, shape and quarter.",
        source="generated by polymodal (the generator of the paper, rewritten)",
        licence="CC0-1.0",
        how_made=(
            f"`polymodal datasets make sort-of-clevr-scenes` (seed {seed}; images per "
            f"split {sizes}): the pictures of `sort-of-clevr` made with the same seed "
            "and sizes, one row each (no question or answer). Each caption is written "
            "from the scene's own objects, in the colour order red, green, blue, "
            "orange, grey, yellow: its shape (square or circle) and its quarter of the "
            "picture (top / bottom, left / right of the centre), e.g. \"red circle top "
            "left, green square bottom right, ...\". `describe_scene` reads the same "
            "caption back from a picture's pixels."),
    )
