"""Embedding past one process: from a shard folder as from its manifest, in two
processes as in one (the same file, row for row), and the vectors into Milvus."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from polymodal.cli import app
from polymodal.data.shards import write_shards
from polymodal.encoders import build_encoder, embed_manifest
from polymodal.encoders.embed_parallel import blocks, write_to_milvus


@pytest.fixture()
def pictures(tmp_path):
    """13 rows: 11 pictures, one row without a picture, one picture that is not one."""
    rows = []
    for i in range(13):
        Image.new("RGB", (12, 12), (i * 19, 255 - i * 7, 40)).save(tmp_path / f"{i}.png")
        rows.append({"id": f"p{i}", "image": f"{i}.png"})
    rows[4]["image"] = None
    (tmp_path / "bad.png").write_bytes(b"not a picture")
    rows[9]["image"] = "bad.png"
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    return tmp_path / "m.csv"


def _encoder():
    torch.manual_seed(0)
    return build_encoder("cnn", dim=8, image_size=16).freeze()


def _read(path):
    table = pq.read_table(path).to_pandas()
    vectors = np.stack([np.full(8, np.nan) if v is None else np.asarray(v)
                        for v in table["embedding"]])
    return table["id"].tolist(), table["row"].tolist(), vectors


def test_blocks_cover_every_row_once():
    for n, p in [(13, 2), (13, 5), (2, 4), (1, 3), (100, 7)]:
        parts = blocks(n, p)
        assert [r for b in parts for r in b] == list(range(n))
        assert len(parts) == min(n, p) and all(len(b) for b in parts)


@pytest.mark.parametrize("suffix", [".parquet", ".npy"])
def test_two_processes_write_what_one_writes(pictures, tmp_path, suffix):
    enc = _encoder()
    one = embed_manifest(pictures, enc, tmp_path / f"one{suffix}", on_error="skip",
                         batch_size=4, show_progress=False)
    two = embed_manifest(pictures, enc, tmp_path / f"two{suffix}", on_error="skip",
                         batch_size=4, show_progress=False, processes=2)
    assert (two.rows, two.embedded, two.missing, two.skipped) == \
        (one.rows, one.embedded, one.missing, one.skipped) == (13, 11, 1, 1)
    if suffix == ".parquet":  # a skipped row has no line; one without a picture a null
        ids1, rows1, v1 = _read(one.path)
        ids2, rows2, v2 = _read(two.path)
        assert ids1 == ids2 == [f"p{i}" for i in range(13) if i != 9] and rows1 == rows2
        assert rows2 == [i for i in range(13) if i != 9]
    else:  # a NaN row for both
        v1, v2 = np.load(one.path), np.load(two.path)
        assert two.path.with_suffix(".ids.txt").read_text() == \
            one.path.with_suffix(".ids.txt").read_text()
        assert np.isnan(v2[9]).all()
    np.testing.assert_allclose(v1, v2, atol=1e-6, equal_nan=True)
    assert np.isnan(v2[4]).all() and np.isfinite(v2[0]).all() and np.isfinite(v2[-1]).all()
    # the one bad row is named once, by its manifest row, in the joined report
    report = pd.read_csv(two.skip_report)
    assert report["row"].tolist() == [9]
    assert not list(tmp_path.glob(".two*.parts"))  # the parts are gone


def test_a_shard_folder_embeds_as_its_manifest(pictures, tmp_path):
    enc = _encoder()
    write_shards(pictures, tmp_path / "shards", shard_rows=4, image_size=None,
                 show_progress=False)  # the bad row is left out, reported
    from_shards = embed_manifest(tmp_path / "shards", enc, tmp_path / "s.parquet",
                                 batch_size=5, show_progress=False, processes=2)
    from_manifest = embed_manifest(pictures, enc, tmp_path / "m.parquet", on_error="skip",
                                   batch_size=5, show_progress=False)
    ids_s, _, v_s = _read(from_shards.path)
    ids_m, _, v_m = _read(from_manifest.path)
    assert ids_s == [i for i in ids_m if i != "p9"]
    keep = [k for k, i in enumerate(ids_m) if i != "p9"]
    np.testing.assert_allclose(v_s, v_m[keep], atol=1e-5, equal_nan=True)
    with pytest.raises(ValueError, match="without a cache"):
        embed_manifest(tmp_path / "shards", enc, tmp_path / "c.parquet",
                       cache_dir=tmp_path / "cache", show_progress=False)


def test_vectors_go_into_milvus_and_a_wrong_width_is_refused(pictures, tmp_path):
    result = embed_manifest(pictures, _encoder(), tmp_path / "e.parquet", on_error="skip",
                            show_progress=False)
    uri = str(tmp_path / "vectors.db")
    assert write_to_milvus(result.path, uri, "pictures") == 11  # rows with a vector
    assert write_to_milvus(result.path, uri, "pictures") == 11  # upserted, not doubled
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri)
    client.load_collection("pictures")
    got = client.get("pictures", ids=["p0", "p4"], output_fields=["vector"])
    assert [g["id"] for g in got] == ["p0"]  # p4 has no picture
    assert int(client.get_collection_stats("pictures")["row_count"]) == 11
    client.close()
    other = embed_manifest(pictures, build_encoder("cnn", dim=4, image_size=16).freeze(),
                           tmp_path / "o.parquet", on_error="skip", show_progress=False)
    with pytest.raises(ValueError, match="holds 8-d vectors"):
        write_to_milvus(other.path, uri, "pictures")


def test_the_embed_command_runs_processes_into_milvus(pictures, tmp_path):
    out = tmp_path / "e.npy"
    result = CliRunner().invoke(app, [
        "embed", str(pictures), "--encoder", "colour-stats", "--out", str(out),
        "--on-error", "skip", "--processes", "2", "--milvus", str(tmp_path / "v.db"),
        "--collection", "c"])
    assert result.exit_code == 0, result.output
    assert "11 vectors upserted" in result.output and "11 of 13 rows embedded" in result.output
    assert np.load(out).shape[0] == 13
