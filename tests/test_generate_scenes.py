"""sort-of-clevr scenes in words, the third captioned set of the captioning benchmark:
the caption written from a scene's pixels says each object's shape and quarter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.captioning import describe_scene, objects_right
from polymodal.data.bundled.sort_of_clevr import draw_scene


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


def test_objects_right_counts_whole_phrases() -> None:
    ref = "red square top left, green circle top right."
    assert objects_right([ref], [ref]) == 1.0
    assert objects_right(["red square top left, green square top right."], [ref]) == 0.5
    assert objects_right(["red square top."], [ref]) == 0.0
