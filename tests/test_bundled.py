"""The bundled datasets: made reproducibly, valid, and true to their sources."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from polymodal.cli import app
from polymodal.data import Manifest, Role, validate
from polymodal.data.bundled import DatasetUnavailable, list_datasets, make_dataset, registry
from polymodal.data.bundled.registry import CARD_NAME, DATASETS, assign_splits

SMALL = {"av-digits": 3, "tuxpaint": 3, "fashion-mnist": 3, "sort-of-clevr": 3,
         "sort-of-clevr-scenes": 3}
EXPECTED_ROLES = {
    "av-digits": {"image": Role.IMAGE, "audio": Role.AUDIO, "record": Role.TEXT,
                  "label": Role.LABEL, "id": Role.ID, "split": Role.SPLIT},
    "tuxpaint": {"image": Role.IMAGE, "sound": Role.AUDIO, "speech": Role.AUDIO,
                 "caption": Role.TEXT, "label": Role.LABEL, "split": Role.SPLIT},
    "fashion-mnist": {"image": Role.IMAGE, "caption": Role.TEXT, "label": Role.LABEL,
                      "split": Role.SPLIT},
    "sort-of-clevr": {"image": Role.IMAGE, "question": Role.TEXT, "answer": Role.LABEL,
                      "relational": Role.CATEGORICAL, "split": Role.SPLIT},
    "sort-of-clevr-scenes": {"id": Role.ID, "image": Role.IMAGE, "caption": Role.TEXT,
                             "split": Role.SPLIT},
}


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != ".complete.json":
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundled")
    return {name: make_dataset(name, root / name, limit=limit, show_progress=False)
            for name, limit in SMALL.items()}


def test_every_dataset_is_listed():
    assert {s.name for s in list_datasets()} == set(SMALL)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_each_dataset_validates_with_no_error_and_has_a_card(made, name):
    manifest = Manifest.read(made[name])
    for column, role in EXPECTED_ROLES[name].items():
        assert manifest.schema[column].role is role, column
    report = validate(manifest, show_progress=False)
    assert report.problems == []
    assert set(manifest.table["split"]) == {"train", "val", "test"}
    card = (made[name].parent / CARD_NAME).read_text()
    for heading in ("## Source and licence", "## Size", "## How it was made"):
        assert heading in card
    assert f"Rows: {len(manifest):,}" in card


@pytest.mark.parametrize("name", sorted(SMALL))
def test_same_seed_same_bytes_other_seed_other_data(made, tmp_path, name):
    again = make_dataset(name, tmp_path / "again", limit=SMALL[name], show_progress=False)
    assert _digest(again.parent) == _digest(made[name].parent)
    if name != "tuxpaint":  # tuxpaint has no random content, only its split
        other = make_dataset(name, tmp_path / "other", limit=SMALL[name], seed=1,
                             show_progress=False)
        assert _digest(other.parent) != _digest(made[name].parent)


def test_a_complete_dataset_is_reused_not_remade(made):
    path = made["sort-of-clevr"]
    before = path.stat().st_mtime_ns
    assert make_dataset("sort-of-clevr", path.parent, limit=SMALL["sort-of-clevr"],
                        show_progress=False) == path
    assert path.stat().st_mtime_ns == before


def test_av_digits_records_are_true_and_partial(made):
    table = pd.read_csv(made["av-digits"])
    facts = {"an even number": lambda d: d % 2 == 0, "an odd number": lambda d: d % 2 == 1,
             "greater than four": lambda d: d > 4, "four or less": lambda d: d <= 4,
             "a prime number": lambda d: d in (2, 3, 5, 7),
             "not a prime number": lambda d: d not in (2, 3, 5, 7),
             "a multiple of three": lambda d: d % 3 == 0,
             "written with a closed loop": lambda d: d in (0, 6, 8, 9)}
    for record, digit in zip(table["record"], table["label"], strict=True):
        if isinstance(record, str):
            said = record.removeprefix("the number is ").split(" and ")
            assert said and all(facts[f](digit) for f in said), (record, digit)
            assert sum(all(facts[f](d) for f in said) for d in range(10)) >= 2  # partial
    assert table["voice"].nunique() >= 6 or len(table) < 60


def test_sort_of_clevr_answers_match_the_pixels(made):
    from polymodal.data.bundled.sort_of_clevr import COLOURS

    table = pd.read_csv(made["sort-of-clevr"], dtype={"answer": str})
    manifest = Manifest.read(made["sort-of-clevr"])
    checked = 0
    for row in range(len(table)):
        pixels = np.asarray(manifest.decode(row, "image"))
        objects = {}
        for name, rgb in COLOURS.items():
            ys, xs = np.nonzero(np.all(pixels == rgb, axis=-1))
            objects[name] = (np.array([xs.mean(), ys.mean()]),
                             "square" if len(xs) > 110 else "circle")
        q, a = table.at[row, "question"], table.at[row, "answer"]
        colour = re.search(r"the (\w+) object", q).group(1)
        centre, shape = objects[colour]
        others = {k: v for k, v in objects.items() if k != colour}
        dist = {k: np.linalg.norm(v[0] - centre) for k, v in others.items()}
        expected = {
            "shape": shape,
            "horizontal": "yes" if centre[0] < 37.5 else "no",
            "vertical": "yes" if centre[1] < 37.5 else "no",
            "closest": others[min(dist, key=dist.get)][1],
            "furthest": others[max(dist, key=dist.get)][1],
            "count": str(sum(v[1] == shape for v in objects.values())),
        }[table.at[row, "family"]]
        assert a == expected, (q, a, expected)
        checked += 1
    assert checked == len(table) and table["relational"].mean() == 0.5


def test_fashion_mnist_images_are_the_idx_pixels(made):
    from polymodal.data.bundled.fashion_mnist import CLASSES, _idx, read_idx

    images = read_idx(_idx("t10k-images-idx3-ubyte"))
    labels = read_idx(_idx("t10k-labels-idx1-ubyte"))
    manifest = Manifest.read(made["fashion-mnist"])
    test = manifest.split("test")
    for row in range(len(test)):
        index = int(test.value(row, "id").split("-")[1])
        assert np.array_equal(np.asarray(test.decode(row, "image").convert("L")),
                              images[index])
        assert test.label(row) == CLASSES[labels[index]]
        assert CLASSES[labels[index]].lower() in test.decode(row, "caption")


def test_tuxpaint_rows_follow_the_stamp_files(made):
    from polymodal.data.bundled.tuxpaint import STAMPS

    manifest = Manifest.read(made["tuxpaint"])
    for row in range(len(manifest)):
        rid = manifest.value(row, "id")
        caption_file = STAMPS / f"{rid}.txt"
        first_line = caption_file.read_text(encoding="utf-8").splitlines()[0].strip()
        assert manifest.decode(row, "caption") == first_line
        assert manifest.label(row) == rid.split("/")[0]
    assert manifest.table["sound"].notna().any()


def test_missing_system_tool_is_a_clear_error(monkeypatch, tmp_path):
    spec = DATASETS["av-digits"]
    lacking = type(spec)(**{**spec.__dict__, "tools": ("no-such-espeak",)})
    get_spec = registry.get_spec
    monkeypatch.setattr(registry, "get_spec",
                        lambda name: lacking if name == "av-digits" else get_spec(name))
    with pytest.raises(DatasetUnavailable, match="apt-get install no-such-espeak"):
        make_dataset("av-digits", tmp_path / "x", limit=1)
    with pytest.raises(KeyError, match="unknown dataset 'imagenet'"):
        make_dataset("imagenet", tmp_path / "y")
    with pytest.raises(TypeError, match="takes no option"):
        make_dataset("sort-of-clevr", tmp_path / "z", colours=3)


def test_splits_are_stratified_and_fixed():
    labels = ["a"] * 20 + ["b"] * 3 + ["c"] * 2
    first = assign_splits(labels, seed=0)
    assert list(first) == list(assign_splits(labels, seed=0))
    for cls in ("a", "b"):
        chosen = {s for s, lab in zip(first, labels, strict=True) if lab == cls}
        assert chosen == {"train", "val", "test"}
    assert {s for s, lab in zip(first, labels, strict=True) if lab == "c"} == {"train"}


def test_cli_lists_and_makes(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["datasets", "list"])
    assert result.exit_code == 0
    assert all(name in result.output for name in SMALL)
    result = runner.invoke(app, ["datasets", "make", "sort-of-clevr", "--limit", "1",
                                 "--out", str(tmp_path / "soc")])
    assert result.exit_code == 0, result.output
    assert "60 rows: OK" in result.output
    result = runner.invoke(app, ["schema", str(tmp_path / "soc" / "manifest.csv")])
    assert "question" in result.output and "text" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMALL))
def test_full_dataset_is_made_and_validates(tmp_path, name):
    manifest = Manifest.read(make_dataset(name, tmp_path / name, show_progress=False))
    expected = {"av-digits": 1797, "tuxpaint": 950, "fashion-mnist": 70_000,
                "sort-of-clevr": 204_000, "sort-of-clevr-scenes": 10_200}[name]
    assert len(manifest) == expected
    assert validate(manifest, show_progress=False).problems == []
