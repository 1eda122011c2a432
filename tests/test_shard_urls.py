"""A shard folder read from a URL (here fsspec's in-memory file system, which stands
for s3:// or https:// without a network) gives the rows the local folder gives; a
shard missing there is named; a local folder also opens as file://."""

from __future__ import annotations

import fsspec
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from polymodal.data.rows import open_rows
from polymodal.data.shard_files import location
from polymodal.data.shard_source import ShardError, is_shard_folder, open_shards
from polymodal.data.shards import write_shards


@pytest.fixture()
def folder(tmp_path):
    rows = []
    for i in range(11):
        Image.new("RGB", (8, 8), (i * 20, 0, 200 - i * 10)).save(tmp_path / f"{i}.png")
        rows.append({"id": f"r{i}", "image": f"{i}.png", "caption": f"picture {i}",
                     "label": "a" if i % 2 else "b"})
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    write_shards(tmp_path / "m.csv", tmp_path / "shards", shard_rows=3, image_size=None,
                 show_progress=False)
    return tmp_path / "shards"


@pytest.fixture()
def url(folder, request):
    """The shard folder copied to memory://<test name>/shards."""
    fs = fsspec.filesystem("memory")
    root = f"/{request.node.name.replace('[', '_').replace(']', '')}/shards"
    for file in folder.iterdir():
        fs.pipe(f"{root}/{file.name}", file.read_bytes())
    yield f"memory://{root}"
    fs.rm(root, recursive=True)


def _batches(source):
    out = []
    for batch in source.loader(batch_size=4, shuffle=True, seed=1):
        out.append((batch.indices.tolist(), batch.inputs["caption"],
                    batch.inputs["image"].numpy(), batch.labels))
    return out


def test_a_url_reads_the_rows_the_local_folder_reads(folder, url):
    assert is_shard_folder(url) and not is_shard_folder("memory://nowhere/at-all")
    remote, local = open_shards(url), open_shards(folder)
    assert len(remote) == len(local) == 11 and remote.source == url
    assert remote.ids() == local.ids() and remote.labels() == local.labels()
    for (i1, c1, p1, l1), (i2, c2, p2, l2) in zip(_batches(remote), _batches(local),
                                                  strict=True):
        assert i1 == i2 and c1 == c2 and l1 == l2
        np.testing.assert_array_equal(p1, p2)
    assert open_rows(url) is not None and open_rows(f"file://{folder}").source == str(folder)


def test_a_shard_missing_at_the_url_is_named_with_its_rows(url):
    fsspec.filesystem("memory").rm(url[len("memory://"):] + "/all-000001.tar")
    with pytest.raises(ShardError, match=r"shard all-000001.tar is missing \(rows 3-5"):
        open_shards(url)
    skipped = open_shards(url, on_error="skip")
    assert len(skipped) == 8 and sorted(p.row for p in skipped.problems) == [3, 4, 5]


def test_locations_keep_urls_and_make_paths():
    assert location("s3://bucket/set/") == "s3://bucket/set"
    assert str(location("file:///data/set")) == "/data/set"
    assert location("~/set").is_absolute()
