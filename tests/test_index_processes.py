"""Indexing with the encoders in two worker processes stores what one process stores:
the same facets, vectors, thumbnails and fields, the same bad cells reported."""

from __future__ import annotations

import numpy as np
import pytest

from polymodal.library import Library


@pytest.fixture()
def broken(colours, tmp_path):
    """The colour collection with one picture that is not one and one that is gone."""
    table = colours.drop(columns=["split"]).copy()
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    table.loc[3, "image"] = str(tmp_path / "broken.png")
    table.loc[4, "image"] = str(tmp_path / "missing.png")
    table.to_csv(tmp_path / "photos.csv", index=False)
    return tmp_path / "photos.csv"


@pytest.mark.parametrize("backend", ["lancedb", "milvus"])
def test_two_processes_store_what_one_stores(colour_model, broken, tmp_path, backend):
    model = colour_model.save(tmp_path / "model")
    libs = {}
    for processes in (1, 2):
        lib = Library.create(f"p{processes}", model, root=tmp_path / "libs", backend=backend)
        libs[processes] = (lib, lib.index(broken, progress=False, batch_size=7,
                                          processes=processes))
    (one, r1), (two, r2) = libs[1], libs[2]
    assert (r2.added, r2.updated, r2.unchanged) == (r1.added, r1.updated, r1.unchanged)
    assert r1.added == len(one) == len(two) > 0
    assert sorted(r2.problems) == sorted(r1.problems) and len(r1.problems) == 2
    assert sorted(r2.skipped.rows) == sorted(r1.skipped.rows) == [3, 4]
    keys = sorted(one.store.contents())
    assert keys == sorted(two.store.contents())
    for key in keys:
        a, b = one.store.get(key), two.store.get(key)
        assert a == b, key  # fields, thumbnail name, content hash, path
        if a["thumbnail"]:
            assert two.file(a["thumbnail"]).stat().st_size > 0
    for query in ("red", "a blue square"):  # the same vectors: the same hits and scores
        hits1 = {h.item: h.score for h in one.search(query, k=len(one))}  # every item
        hits2 = {h.item: h.score for h in two.search(query, k=len(two))}
        assert sorted(hits1) == sorted(hits2)
        np.testing.assert_allclose([hits1[i] for i in hits1], [hits2[i] for i in hits1],
                                   atol=1e-5)
    # a second run with two processes finds nothing new
    again = two.index(broken, progress=False, batch_size=7, processes=2)
    assert (again.added, again.updated, again.unchanged) == (0, 0, r1.added)
