"""Manifests: every format, schema inference and overrides, path resolution, laziness."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from polymodal.data import Manifest, ManifestError, MediaError, Role, infer_schema


def _table(media) -> pd.DataFrame:
    return pd.DataFrame({
        "id": ["a", "b", "c"],
        "photo": ["media/red.png", "media/green.jpg", None],
        "sound": ["media/tone.wav", "", "media/tone.flac"],
        "caption": ["a red square on white", "a green square, quite small", ""],
        "notes_file": ["media/note.txt", None, "media/latin1.txt"],
        "price": [1.5, 2.0, 3.25],
        "colour": ["red", "green", "red"],
        "label": ["warm", "cool", "warm"],
        "split": ["train", "val", "test"],
    })


def test_roles_are_inferred_from_names_extensions_and_content(media):
    schema = infer_schema(_table(media))
    roles = {n: c.role for n, c in schema.columns.items()}
    assert roles == {"id": Role.ID, "photo": Role.IMAGE, "sound": Role.AUDIO,
                     "caption": Role.TEXT, "notes_file": Role.TEXT, "price": Role.NUMERIC,
                     "colour": Role.CATEGORICAL, "label": Role.LABEL, "split": Role.SPLIT}
    assert schema["notes_file"].source == "path"
    assert schema["caption"].source == "inline"
    assert schema.modalities == ["audio", "image", "text"]


def test_roles_can_be_overridden(media):
    schema = infer_schema(_table(media), label="colour", overrides={"price": "ignore"})
    assert schema.label == "colour"
    assert schema["label"].role is Role.CATEGORICAL  # only one label
    assert schema["price"].role is Role.IGNORE
    with pytest.raises(ManifestError, match="not in the manifest"):
        infer_schema(_table(media), overrides={"nope": "text"})
    with pytest.raises(ManifestError, match="unknown role"):
        infer_schema(_table(media), overrides={"price": "smell"})


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "jsonl", "dataframe"])
def test_every_manifest_format_reads_and_resolves_relative_paths(media, tmp_path, fmt):
    df = _table(media)
    path = tmp_path / f"manifest.{fmt}"
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "tsv":
        df.to_csv(path, sep="\t", index=False)
    elif fmt == "parquet":
        df.to_parquet(path)
    elif fmt == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in df.to_dict("records")))
    source = df if fmt == "dataframe" else path
    m = Manifest.read(source, root=tmp_path if fmt == "dataframe" else None)
    assert len(m) == 3
    assert m.schema["photo"].role is Role.IMAGE
    assert m.resolve(0, "photo") == tmp_path / "media" / "red.png"
    row = m.decode_row(0)
    assert row["photo"].size == (12, 10)
    assert row["sound"].ndim == 1
    assert row["notes_file"] == "a red square"
    # empty cells: the row lacks that modality
    assert m.decode(2, "photo") is None
    assert m.decode(1, "sound") is None
    assert m.decode(2, "caption") is None
    assert "café" in m.decode(2, "notes_file")


def test_folder_manifest_groups_files_by_stem_with_label_from_subfolder(media, tmp_path):
    root = tmp_path / "library"
    for animal, (img, snd) in {"cow": ("png", "wav"), "frog": ("jpeg", "ogg")}.items():
        (root / "farm").mkdir(parents=True, exist_ok=True)
        shutil.copy(media[img], root / "farm" / f"{animal}.{img[:3]}")
        shutil.copy(media[snd], root / "farm" / f"{animal}.{snd}")
    (root / "farm" / "cow.txt").write_text("A cow.")
    (root / "wild").mkdir()
    shutil.copy(media["svg"], root / "wild" / "shape.svg")
    (root / "wild" / "shape.dat").write_text("not media")
    m = Manifest.read(root)
    assert m.table["id"].tolist() == ["farm/cow", "farm/frog", "wild/shape"]
    assert m.table["label"].tolist() == ["farm", "farm", "wild"]
    assert m.decode(0, "text") == "A cow."
    assert m.decode(1, "text") is None
    assert m.decode(2, "audio") is None
    assert m.decode(2, "image").size == (40, 20)


def test_bad_manifests_have_clear_errors(tmp_path):
    with pytest.raises(ManifestError, match="does not exist"):
        Manifest.read(tmp_path / "missing.csv")
    with pytest.raises(ManifestError, match="nope does not exist"):  # not "format ''"
        Manifest.read(tmp_path / "nope")


def test_a_row_with_extra_fields_is_a_located_error(tmp_path):
    """Found by a new user: a row with two extra fields became a phantom row and every
    later row number was off by one, and training accepted the file."""
    bad = tmp_path / "extra.csv"
    bad.write_text("image,label\na.png,cat\nb.png,dog,x,y\nc.png,cow\n")
    with pytest.raises(ManifestError, match=r"row 1 \(line 3 of the file\) has 4 fields "
                                            r"where the header names 2"):
        Manifest.read(bad)
    first = tmp_path / "first.csv"  # on the first row pandas made it an index
    first.write_text("image,label\na.png,cat,x,y\nb.png,dog\n")
    with pytest.raises(ManifestError, match="row 0"):
        Manifest.read(first)
    quoted = tmp_path / "quoted.csv"  # a separator inside quotes is a value
    quoted.write_text('image,label\n"a,1.png",cat\nb.png\n')
    m = Manifest.read(quoted)  # a short row lacks its last cells
    assert len(m) == 2 and m.table["image"].tolist() == ["a,1.png", "b.png"]
    assert m.value(1, "label") is None
    (tmp_path / "m.xlsx").write_text("x")
    with pytest.raises(ManifestError, match="unknown manifest format"):
        Manifest.read(tmp_path / "m.xlsx")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{not json\n')
    with pytest.raises(ManifestError, match=r"bad.jsonl: cannot read JSONL"):
        Manifest.read(bad)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="no image, audio or text files"):
        Manifest.read(tmp_path / "empty")


def test_splits_and_subsets(media, tmp_path):
    m = Manifest.read(_table(media), root=tmp_path)
    assert m.split("train").table["id"].tolist() == ["a"]
    assert m.split("validation").table["id"].tolist() == ["b"]
    test = m.split("test")
    assert len(test) == 1 and test.decode(0, "sound").ndim == 1


def test_confine_refuses_paths_leading_out_of_the_folder(media, tmp_path):
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "link.png").symlink_to(media["png"])
    df = pd.DataFrame({"image": ["../media/red.png", str(media["png"]), "link.png"]})
    free = Manifest.read(df, root=inner)
    assert free.decode(0, "image").size == (12, 10)
    confined = Manifest.read(df, root=inner, confine=True)
    for row in range(3):
        with pytest.raises(MediaError, match="outside the manifest's folder") as info:
            confined.decode(row, "image")
        assert info.value.kind == "outside_root"


def test_a_million_row_manifest_decodes_nothing_until_asked(media, tmp_path, monkeypatch):
    from polymodal.data import MultimodalDataset
    from polymodal.data import manifest as manifest_module

    calls = []
    real = manifest_module.decode_image
    monkeypatch.setattr(manifest_module, "decode_image",
                        lambda *a, **k: calls.append(a) or real(*a, **k))
    df = pd.DataFrame({"image": [str(media["png"])] * 1_000_000,
                       "label": [0, 1] * 500_000})
    ds = MultimodalDataset(Manifest.read(df), image_size=8)
    assert len(ds) == 1_000_000 and calls == []
    batch = next(iter(ds.loader(batch_size=4)))
    assert batch.inputs["image"].shape == (4, 3, 8, 8)
    assert len(calls) == 4


def test_stratified_subset_keeps_every_class_in_proportion():
    labels = ["a"] * 50 + ["b"] * 30 + ["c"] * 2
    m = Manifest.read(pd.DataFrame({"id": range(82), "note": ["x"] * 82, "y": labels}),
                      label="y")
    few = m.stratified_subset("y", 0.1, seed=0)
    assert few.table["y"].value_counts().to_dict() == {"a": 5, "b": 3, "c": 1}
    assert few.table["id"].tolist() == sorted(few.table["id"])
    assert few.table["id"].tolist() == m.stratified_subset("y", 0.1, seed=0).table["id"].tolist()
    assert few.table["id"].tolist() != m.stratified_subset("y", 0.1, seed=1).table["id"].tolist()
    assert m.stratified_subset("y", 1.0) is m
