"""The FAISS fast path beside the LanceDB store: the same answers as the store, kept in
step incrementally, rebuilt when stale or damaged, IVF past the exact-search size."""

from __future__ import annotations

import json

import numpy as np
import pytest

from polymodal.library import LanceStore, Library
from polymodal.library import ann as ann_module
from polymodal.library.ann import AnnIndex

DIM = 16


def _records(n: int, seed: int = 0, modality: str = "image", start: int = 0) -> list[dict]:
    """Clustered unit vectors (as embeddings are), each a facet record."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, DIM))
    x = centres[rng.integers(0, 8, n)] + 0.3 * rng.normal(size=(n, DIM))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return [{"key": f"src::{start + i}::{modality}", "item": str(start + i), "column": "c",
             "modality": modality, "content": f"h{start + i}", "source": "src",
             "path": f"/f/{start + i}.png", "text": "", "thumbnail": "",
             "metadata": {"n": start + i}, "vector": x[i]} for i in range(n)]


@pytest.fixture()
def store(tmp_path):
    s = LanceStore(tmp_path / "lance", DIM)
    s.upsert(_records(120) + _records(40, seed=1, modality="text", start=1000))
    return s


def _keys(hits):
    return [h["key"] for h in hits]


def test_the_fast_path_answers_as_the_store_does(store, tmp_path):
    ann = AnnIndex(tmp_path / "ann", DIM)
    assert ann.sync(store)["added"] == 160
    assert ann.usable(store)
    q = np.random.default_rng(5).normal(size=DIM)
    for modality in (None, "image", "text"):
        fast, exact = ann.search(q, 10, modality), store.search(q, 10, modality)
        assert _keys(fast) == _keys(exact)
        np.testing.assert_allclose([h["score"] for h in fast],
                                   [h["score"] for h in exact], atol=1e-5)
        assert fast[0]["metadata"] == exact[0]["metadata"]  # the fields a hit shows
    meta = json.loads((tmp_path / "ann" / "meta.json").read_text())
    assert meta["rows"] == 160 and meta["modalities"]["image"]["kind"] == "exact"


def test_changes_and_deletions_sync_incrementally(store, tmp_path):
    ann = AnnIndex(tmp_path / "ann", DIM)
    ann.sync(store)
    changed = _records(3, seed=9)  # keys 0..2 with new vectors and content
    for r in changed:
        r["content"] = "changed"
    store.upsert(changed)
    store.delete([f"src::{i}::image" for i in range(10, 20)])
    assert not ann.usable(store) or ann_module.RECHECK_S > 0  # checked on its clock
    done = ann.sync(store)
    assert (done["added"], done["removed"], done["rebuilt"]) == (3, 13, 0)
    everything = ann.search(changed[0]["vector"], 500)
    assert sorted(_keys(everything)) == sorted(store.contents())  # exactly the stored rows
    assert everything[0]["key"] == "src::0::image" and everything[0]["content"] == "changed"


def test_a_stale_or_damaged_fast_path_is_never_trusted(store, tmp_path, monkeypatch):
    monkeypatch.setattr(ann_module, "RECHECK_S", 0.0)
    ann = AnnIndex(tmp_path / "ann", DIM)
    ann.sync(store)
    store.upsert(_records(1, seed=3, start=5000))  # written behind the fast path's back
    assert not ann.usable(store)  # the store moved on: not used until synced
    ann.sync(store)
    assert ann.usable(store)
    index_file = tmp_path / "ann" / "image.faiss"
    raw = bytearray(index_file.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    index_file.write_bytes(bytes(raw))
    fresh = AnnIndex(tmp_path / "ann", DIM)  # a reader opening the damaged files
    assert not fresh.usable(store)
    assert fresh.sync(store)["added"] == 161  # rebuilt from the store of record
    assert fresh.usable(store)
    (tmp_path / "ann" / "meta.json").write_text("{not json")
    assert not AnnIndex(tmp_path / "ann", DIM).usable(store)


def test_past_the_exact_size_it_is_ivf_with_high_recall(tmp_path, monkeypatch):
    monkeypatch.setattr(ann_module, "EXACT_BELOW", 500)
    monkeypatch.setattr(ann_module, "SCAN_FROM", 300)  # many keys: one scan, in parts
    store = LanceStore(tmp_path / "lance", DIM)
    store.upsert(_records(400))
    ann = AnnIndex(tmp_path / "ann", DIM)
    ann.sync(store)
    assert json.loads(ann.meta_path.read_text())["modalities"]["image"]["kind"] == "exact"
    store.upsert(_records(2000, seed=2, start=400))
    assert ann.sync(store)["rebuilt"] == 1  # crossed the size: an IVF index now
    meta = json.loads(ann.meta_path.read_text())["modalities"]["image"]
    assert meta["kind"] == "ivf" and meta["rows"] == 2400
    assert meta["nprobe"] < meta["nlist"]  # tuned, not a scan of every list
    assert ann.usable(store)
    rng = np.random.default_rng(7)
    recall = []
    for q in rng.normal(size=(20, DIM)):
        exact = set(_keys(store.search(q, 10)))
        recall.append(len(exact & set(_keys(ann.search(q, 10)))) / 10)
    assert np.mean(recall) >= 0.9, recall


def test_a_library_searches_through_its_fast_path(colour_library):
    lib = Library("photos", colour_library)
    assert lib.ann is not None and lib.ann.usable(lib.store)  # synced by its index run
    vector = lib.embed_query("red")[0]
    fast, exact = lib.ann.search(vector, 20), lib.store.search(vector, 20)
    # captions repeat ("red" on many rows): equal vectors tie, in either order
    np.testing.assert_allclose([h["score"] for h in fast], [h["score"] for h in exact],
                               atol=1e-5)
    every = {h["key"]: h["score"] for h in lib.store.search(vector, 1000)}
    assert all(abs(every[h["key"]] - h["score"]) < 1e-5 for h in fast)
    first, again = lib.search("red", k=5), Library("photos", colour_library).search("red", k=5)
    assert [h.score for h in first] == pytest.approx([h.score for h in again], abs=1e-6)
