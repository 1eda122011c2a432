"""The corpus readers of builtin:general's newer sources (no package needed: each
reader is run on a small folder made here)."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from polymodal.library.general.sources import (
    CORPUS,
    HELD_OUT,
    dia_shapes,
    has_words,
    icon_theme,
    named_sprites,
    split_words,
)


def _png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), "red").save(path)
    return path


def test_names_without_words_are_dropped() -> None:
    assert has_words("folder download")
    assert has_words("indicator keyboard hu 7")
    assert not has_words("7 12")
    assert not has_words("3f2a9c0d1e")
    assert not has_words("a b")
    assert has_words("deadbeef")  # letters only: a word, not a hash


def test_icon_themes_keep_only_named_pictures(tmp_path: Path) -> None:
    _png(tmp_path / "48x48" / "apps" / "folder-music.png")
    _png(tmp_path / "48x48" / "apps" / "0a1b2c3d4e5f.png")
    _png(tmp_path / "48x48" / "apps" / "1234.png")
    table = icon_theme(tmp_path)
    assert table["caption"].tolist() == ["folder music"]


def test_sprites_are_named_by_their_file_or_folder(tmp_path: Path) -> None:
    assert split_words("AkuAku3") == "aku aku"
    _png(tmp_path / "hats" / "Cowboy.png")
    _png(tmp_path / "hats" / "Cowboy2.png")  # the same name: one picture
    _png(tmp_path / "hats" / "42.png")
    hats = named_sprites(tmp_path / "hats", "hat")
    assert hats["caption"].tolist() == ["cowboy hat"]
    _png(tmp_path / "creatures" / "mr_iceblock" / "iceblock-0.png")
    _png(tmp_path / "creatures" / "mr_iceblock" / "melting-3.png")
    sprites = named_sprites(tmp_path / "creatures", by_folder=True)
    assert sprites["caption"].tolist() == ["mr iceblock", "mr iceblock melting"]


def test_dia_shapes_are_named_by_their_title_without_the_sheet(tmp_path: Path) -> None:
    sheet = tmp_path / "Cisco"
    _png(sheet / "hub.png")
    (sheet / "hub.shape").write_text(
        "<shape><name>Cisco - 100BaseT Hub</name><icon>hub.png</icon></shape>")
    (sheet / "gone.shape").write_text(  # its picture is missing: skipped
        "<shape><name>Cisco - Router</name><icon>gone.png</icon></shape>")
    table = dia_shapes(tmp_path)
    assert table["caption"].tolist() == ["100baset hub"]
    assert Path(table["image"][0]).name == "hub.png"


def test_no_corpus_source_reads_a_held_out_package() -> None:
    packages = {s.package for s in CORPUS.values()}
    assert not packages & set(HELD_OUT)
    assert not any("emoji" in p for p in packages)
    assert len({s.kind.split(" (")[0] for s in CORPUS.values()}) >= 4


def test_the_shipped_heads_are_read_and_are_trained() -> None:
    from polymodal.library.general.build import read_heads
    from polymodal.library.general.heads import untrained_weights

    heads = read_heads()
    base = untrained_weights(pooled=True)
    assert heads["image"].shape == base["image"].shape
    assert heads["caption"].shape == base["caption"].shape
    assert not torch.equal(heads["caption"], base["caption"])


def test_svgs_that_do_not_parse_are_left_out(tmp_path: Path) -> None:
    import pandas as pd

    from polymodal.library.general.sources import well_formed

    good, bad = tmp_path / "good.svg", tmp_path / "bad.svg"
    good.write_text('<svg xmlns="http://www.w3.org/2000/svg"/>')
    bad.write_text('<svg><sodipodi:namedview/></svg>')  # unbound prefix
    png = _png(tmp_path / "a.png")
    table = pd.DataFrame({"image": [str(good), str(bad), str(png)],
                          "caption": ["good", "bad", "png"]})
    assert well_formed(table)["caption"].tolist() == ["good", "png"]
