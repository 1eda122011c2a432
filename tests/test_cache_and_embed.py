"""The feature cache and `polymodal embed`."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from polymodal.cli import app
from polymodal.data import Manifest, MultimodalDataset
from polymodal.encoders import (
    CachedEncoder,
    CachedFeatures,
    FeatureCache,
    build_encoder,
    embed_manifest,
)
from polymodal.encoders.cache import content_key
from polymodal.representation import Projection


@pytest.fixture()
def library(media, tmp_path):
    for name in ("a.png", "b.png", "c.png"):
        shutil.copy(media["png"], tmp_path / name)
    Image = __import__("PIL.Image", fromlist=["Image"])
    Image.new("RGB", (9, 9), (0, 200, 0)).save(tmp_path / "b.png")
    df = pd.DataFrame({"id": ["a", "b", "c", "d"], "image": ["a.png", "b.png", None, "c.png"],
                       "caption": ["red", "green", "nothing", ""]})
    path = tmp_path / "m.csv"
    df.to_csv(path, index=False)
    return path


def _frozen_cnn():
    torch.manual_seed(0)
    return build_encoder("cnn", dim=8).freeze()


def test_content_keys_follow_content_not_names(library):
    m = Manifest.read(library)
    assert content_key(m, 0, "image") == content_key(m, 3, "image")  # same bytes
    assert content_key(m, 0, "image") != content_key(m, 1, "image")
    assert content_key(m, 2, "image") is None
    assert content_key(m, 0, "caption") != content_key(m, 1, "caption")


def test_cached_features_equal_direct_ones_and_are_reused(library, tmp_path):
    enc = _frozen_cnn()
    m = Manifest.read(library)
    loader = CachedFeatures(enc, tmp_path / "cache")
    ds = MultimodalDataset(m, columns=["image"], cell_loaders={"image": loader})
    batch = next(iter(ds.loader(batch_size=4)))
    cached = CachedEncoder(enc)(batch.inputs["image"], batch.lengths.get("image"))
    direct = enc.encode([m.decode(r, "image") for r in range(4)])
    assert batch.present["image"].tolist() == [True, True, False, True]
    torch.testing.assert_close(cached.pooled[[0, 1, 3]], direct.pooled[[0, 1, 3]])
    torch.testing.assert_close(cached.tokens[[0, 1, 3]], direct.tokens[[0, 1, 3]])
    assert (loader.cache.misses, loader.cache.hits) == (2, 1)  # a.png == c.png
    assert len(loader.cache) == 2
    assert not list(loader.cache.folder.rglob("*.safetensors"))  # entries share chunks
    assert len(list((loader.cache.folder / "chunks").iterdir())) == 1
    # a second run reads only the cache
    again = CachedFeatures(enc, tmp_path / "cache")
    list(MultimodalDataset(m, columns=["image"], cell_loaders={"image": again}).loader(4))
    assert (again.cache.misses, again.cache.hits) == (0, 3)


def test_changed_files_damaged_entries_and_changed_encoders_are_recomputed(library, tmp_path):
    from PIL import Image

    enc = _frozen_cnn()
    m = Manifest.read(library)
    cache = FeatureCache(tmp_path / "cache", enc)
    loader = CachedFeatures(enc, tmp_path / "cache")
    first = loader(m, 0, "image")
    Image.new("RGB", (5, 5), (0, 0, 0)).save(library.parent / "a.png")  # the file changes
    changed = loader(m, 0, "image")
    assert not torch.equal(first, changed)
    for chunk in (loader.cache.folder / "chunks").iterdir():  # a cut chunk, say
        chunk.write_bytes(chunk.read_bytes()[:-4])
    reopened = CachedFeatures(enc, tmp_path / "cache")
    assert torch.equal(reopened(m, 0, "image"), changed)
    assert reopened.cache.damaged == 1 and reopened.cache.misses == 1
    other = _frozen_cnn()
    with torch.no_grad():
        next(other.parameters()).add_(1.0)
    assert FeatureCache(tmp_path / "cache", other).folder != cache.folder
    with pytest.raises(ValueError, match="frozen"):
        FeatureCache(tmp_path / "cache", build_encoder("cnn"))


@pytest.mark.parametrize("suffix", [".parquet", ".npy"])
@pytest.mark.parametrize("use_cache", [False, True])
def test_embed_writes_ids_and_vectors_with_gaps_for_missing_rows(library, tmp_path, suffix,
                                                                 use_cache):
    enc = _frozen_cnn()
    out = tmp_path / f"emb{suffix}"
    result = embed_manifest(library, enc, out, batch_size=3, show_progress=False,
                            cache_dir=tmp_path / "cache" if use_cache else None)
    assert (result.rows, result.embedded, result.missing, result.dim) == (4, 3, 1, 8)
    m = Manifest.read(library)
    expected = enc.encode([m.decode(r, "image") for r in (0, 1, 3)]).pooled.numpy()
    if suffix == ".parquet":
        table = pq.read_table(out).to_pandas()
        assert table["id"].tolist() == ["a", "b", "c", "d"]
        assert table["embedding"][2] is None
        got = np.stack([table["embedding"][i] for i in (0, 1, 3)])
    else:
        matrix = np.load(out)
        assert out.with_suffix(".ids.txt").read_text().split() == ["a", "b", "c", "d"]
        assert np.isnan(matrix[2]).all()
        got = matrix[[0, 1, 3]]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_embed_fits_text_encoders_and_reports_bad_rows(library, tmp_path):
    (library.parent / "b.png").write_bytes(b"not a png")
    with pytest.raises(Exception, match="row 1, column 'image'"):
        embed_manifest(library, _frozen_cnn(), tmp_path / "x.npy", show_progress=False)
    result = embed_manifest(library, _frozen_cnn(), tmp_path / "x.npy", on_error="skip",
                            show_progress=False)
    assert result.skipped == 1 and result.skip_report.exists()
    assert "row" in result.skip_report.read_text()
    text = embed_manifest(library, "tfidf", tmp_path / "t.parquet", show_progress=False)
    assert text.embedded == 3 and text.missing == 1  # the empty caption


def test_cli_embed(library, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["embed", str(library), "--encoder", "cnn", "--option",
                                 "dim=4", "--out", str(tmp_path / "e.parquet")])
    assert result.exit_code == 0, result.output
    assert "3 of 4 rows embedded (4-d)" in result.output
    result = runner.invoke(app, ["embed", str(library), "--encoder", "nope", "--out",
                                 str(tmp_path / "e.parquet")])
    assert result.exit_code == 2 and "known encoders" in result.output
    result = runner.invoke(app, ["encoders", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "efficientnet-lite0" in result.output


def test_projection_to_a_shared_normalised_size():
    enc = build_encoder("word-mean", dim=6).fit(["a b c"])
    proj = Projection(enc.output_dim, 10, normalize=True)
    out = proj(enc.encode(["a b", "c"]))
    assert out.tokens.shape[-1] == 10 and out.pooled.shape == (2, 10)
    torch.testing.assert_close(out.pooled.norm(dim=-1), torch.ones(2))
    with pytest.raises(ValueError, match="fitted"):
        Projection(0, 10)


def test_fill_computes_misses_in_batches(library, tmp_path):
    enc = _frozen_cnn()
    m = Manifest.read(library)
    loader = CachedFeatures(enc, tmp_path / "cache")
    assert loader.fill(m, "image", batch_size=2, show_progress=False) == 2  # 2 distinct files
    assert loader.fill(m, "image", show_progress=False) == 0
    list(MultimodalDataset(m, columns=["image"], cell_loaders={"image": loader}).loader(4))
    assert (loader.cache.misses, loader.cache.hits) == (0, 3)
    direct = enc.encode([m.decode(0, "image")]).pooled[0]
    torch.testing.assert_close(loader(m, 0, "image")[:, 0], direct)
