"""sort-of-clevr scenes in words, the bundled ``sort-of-clevr-scenes`` set the captioning
benchmark trains on: the caption written from a scene's objects says each object's
colour, shape and quarter, and reads back the same from the scene's pixels."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmarks.captioning import objects_right
from polymodal.data.bundled import make_dataset
from polymodal.data.bundled.sort_of_clevr import COLOURS, describe_scene, draw_scene


def test_a_scene_described_from_its_pixels(tmp_path: Path) -> None:
    centres = np.array([[10, 10], [60, 12], [12, 60], [60, 60], [30, 45], [45, 25]], float)
    shapes = ["square", "circle", "circle", "square", "square", "circle"]
    draw_scene(centres, shapes).save(tmp_path / "scene.png")
    assert describe_scene(tmp_path / "scene.png") == (
        "red square top left, green circle top right, blue circle bottom left, "
        "orange square bottom right, grey square bottom left, yellow circle top right.")
    blank = tmp_path / "blank.png"
    Image.new("RGB", (75, 75), (255, 255, 255)).save(blank)
    with pytest.raises(ValueError, match=r"blank\.png: no red object"):
        describe_scene(blank)


def test_every_bundled_scene_caption_names_its_objects(tmp_path: Path) -> None:
    manifest = make_dataset("sort-of-clevr-scenes", tmp_path / "scenes", limit=4,
                            show_progress=False)
    table = pd.read_csv(manifest)
    assert list(table.columns) == ["id", "image", "caption", "split"]
    assert len(table) == 12 and set(table["split"]) == {"train", "val", "test"}
    for row in table.itertuples():
        pixels = np.asarray(Image.open(manifest.parent / row.image).convert("RGB"))
        phrases = row.caption.removesuffix(".").split(", ")
        assert [p.split()[0] for p in phrases] == list(COLOURS)
        for phrase, rgb in zip(phrases, COLOURS.values(), strict=True):
            ys, xs = np.nonzero(np.all(pixels == rgb, axis=-1))
            # a square fills its 11x11 box (121 px, a few fewer where a neighbour is
            # drawn over a corner), a circle 97 px of it
            shape = "square" if len(xs) > 105 else "circle"
            where = (f"{'top' if ys.mean() < 37.5 else 'bottom'} "
                     f"{'left' if xs.mean() < 37.5 else 'right'}")
            assert re.fullmatch(rf"\w+ {shape} {where}", phrase), (row.id, phrase)
        assert describe_scene(manifest.parent / row.image) == row.caption
    # the same pictures as sort-of-clevr made with the same settings, whose manifest
    # keeps its questions and no caption
    questions = make_dataset("sort-of-clevr", tmp_path / "questions", limit=4,
                             show_progress=False)
    asked = pd.read_csv(questions).drop_duplicates("image_id")
    assert "caption" not in asked.columns and asked["image_id"].tolist() == table["id"].tolist()
    for row in table.itertuples():
        assert (manifest.parent / row.image).read_bytes() == \
            (questions.parent / row.image).read_bytes()


def test_objects_right_counts_whole_phrases() -> None:
    ref = "red square top left, green circle top right."
    assert objects_right([ref], [ref]) == 1.0
    assert objects_right(["red square top left, green square top right."], [ref]) == 0.5
    assert objects_right(["red square top."], [ref]) == 0.0
