"""Towers exported to ONNX: round trip against torch, int8 kept only where it agrees, a
tower with no ONNX form left on torch by name, a damaged or stale export refused and
made again, a library searching the same on onnxruntime as on torch, `polymodal
export`. Tiny models only (trained here in seconds)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from polymodal.export import (
    EXPORT_JSON,
    ExportInvalid,
    OnnxTowers,
    export_towers,
    model_identity,
    read_record,
    torch_embed,
)
from polymodal.export.fastpath import embedder, export_folders
from polymodal.library import Library

CAPTIONS = ["red", "a blue square", "the colour green", "zzz words it never saw", "black",
            "a white square"]
PICTURES = [Image.new("RGB", size, colour) for size, colour in (
    ((16, 16), (220, 30, 30)), ((40, 24), (30, 40, 220)), ((9, 30), (30, 200, 40)),
    ((16, 16), (10, 10, 10)), ((64, 64), (245, 245, 245)))]


@pytest.fixture(scope="module")
def small_model(colours, tmp_path_factory):
    """A tiny Pretrainer (word-mean captions, a small CNN), a few epochs on the colours."""
    from polymodal.pretraining import Pretrainer

    train = colours[colours.split == "train"].drop(columns=["colour"])
    return Pretrainer(preset="tiny", path=tmp_path_factory.mktemp("small-run"),
                      max_epochs=4, batch_size=12, lr=5e-3, seed=0).fit(train,
                                                                        progress=False)


@pytest.fixture()
def model_dir(small_model, tmp_path):
    return small_model.save(tmp_path / "model")


@pytest.fixture()
def collection(colours, tmp_path):
    table = colours.drop(columns=["split"]).copy()
    table.to_csv(tmp_path / "photos.csv", index=False)
    return table


def test_export_round_trip_matches_torch(small_model, model_dir, tmp_path):
    report = export_towers(model_dir, tmp_path / "onnx", int8=False)
    assert sorted(report.towers) == ["caption", "image"] and report.on_torch == {}
    for tower in report.towers.values():
        assert tower.kept == "fp32" and tower.fp32_cosine >= 0.999
        assert tower.fp32_max_abs < 1e-4 and tower.checked_on >= 3
    record = json.loads((tmp_path / "onnx" / EXPORT_JSON).read_text())
    assert record["identity"] == model_identity(model_dir)
    assert record["towers"]["caption"]["inputs"] == ["inputs", "lengths"]
    assert record["towers"]["image"]["inputs"] == ["inputs"]
    towers = OnnxTowers(tmp_path / "onnx", threads=1)  # the model loads from the record
    for column, values in (("caption", CAPTIONS), ("image", PICTURES)):
        got, want = towers.embed_values(column, values), small_model.embed_values(column,
                                                                                   values)
        cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
        assert got.shape == want.shape and cos.min() >= 0.999
        assert np.abs(got - want).max() < 1e-4
        # one at a time (no padding, batch of one) as a query is
        single = np.stack([towers.embed_values(column, [v])[0] for v in values])
        assert np.abs(single - want).max() < 1e-4
    assert towers.embed_values("caption", []).shape == (0, small_model.dim_)


def test_runtime_imports_no_torch(small_model, model_dir, tmp_path):
    """Running a graph needs numpy and onnxruntime only (preprocessing is the encoder's,
    done here in the test)."""
    export_towers(model_dir, tmp_path / "onnx", int8=False)
    pixels = small_model.model_.encoder("image").preprocess(PICTURES[0]).numpy()
    np.save(tmp_path / "pixels.npy", pixels)
    code = ("import sys, numpy as np\n"
            "from polymodal.export.runtime import OnnxTowers\n"
            f"t = OnnxTowers({str(tmp_path / 'onnx')!r}, threads=1)\n"
            f"out = t.run('image', [np.load({str(tmp_path / 'pixels.npy')!r})])\n"
            "print(*out.shape, 'torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-3:] == ["1", str(small_model.dim_), "False"], done.stdout


def test_int8_is_kept_only_where_it_agrees(small_model, model_dir, tmp_path):
    strict = export_towers(model_dir, tmp_path / "strict", int8_min_cosine=1.01)
    for tower in strict.towers.values():  # no int8 graph reaches a cosine of 1.01
        assert tower.kept == "fp32" and tower.int8_file == ""
        assert tower.int8_cosine is not None and "fp32 kept" in tower.int8_note
    assert sorted(p.name for p in (tmp_path / "strict").iterdir()) == [
        "00-caption.onnx", "01-image.onnx", EXPORT_JSON]
    loose = export_towers(model_dir, tmp_path / "loose", int8_min_cosine=-1.0)
    assert all(t.kept == "int8" and t.int8_file for t in loose.towers.values())
    kept, fp32 = (OnnxTowers(tmp_path / "loose", model=small_model, precision=p)
                  for p in ("kept", "fp32"))
    assert kept.kept("caption") == "int8" and fp32.kept("caption") == "fp32"
    want = small_model.embed_values("caption", CAPTIONS)
    int8_out = kept.embed_values("caption", CAPTIONS)
    assert np.abs(fp32.embed_values("caption", CAPTIONS) - want).max() < 1e-4
    assert (int8_out * want).sum(1).min() > 0.9  # close, not equal: it was quantised
    with pytest.raises(ExportInvalid, match="no int8 graph"):
        OnnxTowers(tmp_path / "strict", model=small_model, precision="int8")


def test_a_predictor_exports_its_projected_towers(colours, tmp_path):
    from polymodal.predictor import Predictor

    pred = Predictor(label="colour", preset="tiny", path=tmp_path / "run", max_epochs=1
                     ).fit(colours.drop(columns=["split"]), progress=False)
    report = export_towers(pred.save(tmp_path / "pred"), tmp_path / "onnx", int8=False)
    assert report.output == "projection" and sorted(report.towers) == ["caption", "image"]
    towers = OnnxTowers(tmp_path / "onnx", model=pred)
    got = towers.embed_values("image", PICTURES)
    assert np.abs(got - torch_embed(pred, "image", PICTURES)).max() < 1e-4


def _refuse_onnx(monkeypatch):
    """The word encoder raises inside an ONNX export, as an encoder with no ONNX form."""
    from polymodal.encoders.text import WordEmbeddingEncoder

    real = WordEmbeddingEncoder.forward

    def forward(self, inputs, lengths=None):
        if torch.onnx.is_in_onnx_export():
            raise NotImplementedError("this encoder has no ONNX form")
        return real(self, inputs, lengths)

    monkeypatch.setattr(WordEmbeddingEncoder, "forward", forward)


def test_a_tower_that_cannot_export_is_named_and_the_library_still_searches(
        model_dir, collection, tmp_path, monkeypatch):
    _refuse_onnx(monkeypatch)
    report = export_towers(model_dir, tmp_path / "onnx")
    assert list(report.towers) == ["image"]
    assert "no ONNX form" in report.on_torch["caption"]
    assert ["caption", "", "torch", "", "", "", report.on_torch["caption"]] in report.rows()
    lib = Library.create("photos", model_dir, root=tmp_path / "libs")
    lib.index(tmp_path / "photos.csv", progress=False)
    used = embedder(lib)
    assert used.uses_onnx("image") and not used.uses_onnx("caption")
    assert "caption" in read_record(export_folders(lib)[0]).on_torch
    hits = lib.search("red", k=5, modality="image")  # words: on torch
    assert sum(h.metadata["colour"] == "red" for h in hits) >= 3, [h.metadata for h in hits]
    blue = lib.search(Image.new("RGB", (16, 16), (30, 40, 220)), k=3, modality="image")
    assert all(h.metadata["colour"] == "blue" for h in blue)  # a picture: on onnxruntime


def test_a_damaged_or_stale_export_is_refused_and_made_again(
        small_model, model_dir, collection, tmp_path):
    lib = Library.create("photos", model_dir, root=tmp_path / "libs")
    lib.index(tmp_path / "photos.csv", progress=False)  # the export is made on first use
    folder = export_folders(lib)[0]
    assert folder == model_dir / "onnx" and read_record(folder, model_folder=model_dir)
    first = lib.search("green", k=3)
    graph = folder / read_record(folder).towers["caption"].fp32_file
    with graph.open("ab") as fh:
        fh.write(b"\0garbage")
    with pytest.raises(ExportInvalid, match="damaged"):
        OnnxTowers(folder, model=small_model)
    again = Library("photos", tmp_path / "libs")
    assert [h.item for h in again.search("green", k=3)] == [h.item for h in first]
    assert read_record(folder, model_folder=model_dir)  # made again, whole
    (folder / EXPORT_JSON).write_text("{not json")
    with pytest.raises(ExportInvalid, match="cannot read"):
        read_record(folder)
    small_model.save(model_dir)  # saved again: another config.yaml, the export is stale
    assert embedder(Library("photos", tmp_path / "libs")).uses_onnx("caption")
    record = read_record(folder, model_folder=model_dir)
    assert record.identity == model_identity(model_dir)


def test_onnx_and_torch_find_the_same_top_hits(model_dir, collection, tmp_path,
                                               monkeypatch):
    queries = ["red", "a blue square", "the colour yellow", "black", "white",
               Image.new("RGB", (16, 16), (30, 200, 40))]
    found = {}
    for setting in ("0", "1", "int8"):
        monkeypatch.setenv("POLYMODAL_ONNX", setting)
        lib = Library.create(f"photos-{setting}", model_dir, root=tmp_path / "libs")
        lib.index(tmp_path / "photos.csv", progress=False)
        used = embedder(lib)
        assert (used is lib.model) == (setting == "0")
        if setting != "0":  # fp32 unless asked for int8 (which the export kept here)
            assert used.towers.kept("caption") == ("int8" if setting == "int8" else "fp32")
        found[setting] = [lib.search(q, k=5) for q in queries]
    for torch_hits, fp32_hits, int8_hits in zip(*found.values(), strict=True):
        assert [h.item for h in fp32_hits] == [h.item for h in torch_hits]
        assert np.allclose([h.score for h in fp32_hits], [h.score for h in torch_hits],
                           atol=1e-4)
        # POLYMODAL_ONNX=int8, where the export kept int8: the same colours at nearly
        # the same scores
        # (items that tie, such as two captions "red", may come in another order)
        assert np.allclose([h.score for h in int8_hits], [h.score for h in torch_hits],
                           atol=0.02)
        assert sorted(h.metadata["colour"] for h in int8_hits) == \
            sorted(h.metadata["colour"] for h in torch_hits)


def test_an_unwritable_model_folder_exports_into_the_library(model_dir, collection,
                                                             tmp_path, monkeypatch):
    from polymodal.export import fastpath

    real = fastpath._writable
    monkeypatch.setattr(fastpath, "_writable",
                        lambda folder: folder != model_dir / "onnx" and real(folder))
    lib = Library.create("photos", model_dir, root=tmp_path / "libs")
    lib.index(tmp_path / "photos.csv", progress=False)
    assert not (model_dir / "onnx").exists()
    assert read_record(lib.folder / "onnx", model_folder=model_dir).towers


def test_cli_export_prints_a_table_per_tower(model_dir, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from polymodal.cli import app

    runner = CliRunner()
    out = tmp_path / "onnx"
    result = runner.invoke(app, ["export", str(model_dir), "--out", str(out), "--no-int8"])
    assert result.exit_code == 0, result.output
    assert "caption" in result.stdout and "image" in result.stdout
    assert "fp32" in result.stdout and "int8 not asked for" in result.stdout
    assert read_record(out, model_folder=model_dir).towers["image"].kept == "fp32"
    _refuse_onnx(monkeypatch)
    result = runner.invoke(app, ["export", str(model_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "left on torch" in result.stdout and "no ONNX form" in result.stdout
    missing = runner.invoke(app, ["export", str(tmp_path / "nothing"), "--out", str(out)])
    assert missing.exit_code == 2 and "not a saved model" in missing.output
