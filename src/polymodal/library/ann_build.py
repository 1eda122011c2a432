"""Writing the library's fast path (:mod:`polymodal.library.ann`): syncing its FAISS
indexes and records to the LanceDB store incrementally, building an index of the kind
its size wants (IVF with nprobe tuned to :data:`TARGET_RECALL` on the library's own
vectors), and saving the files with their checksums, ``meta.json`` last."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from polymodal.files import sha256_file
from polymodal.library import ann as ann_module
from polymodal.library.ann import (
    _COLUMNS,
    _SHOWN,
    FORMAT,
    AnnIndex,
    _normalised,
    _version,
)
from polymodal.library.store import FIELDS, LanceStore

#: the Recall@10 against exact search that an IVF index is tuned to on its own data
TARGET_RECALL = 0.97
#: how far the tuning queries lie from the stored points they are made from (the norm
#: of the noise added to a unit vector)
QUERY_NOISE = 0.3


def tune_nprobe(index: Any, x: np.ndarray, ids: np.ndarray | None = None, k: int = 10,
                queries: int = 200, seed: int = 0) -> int:
    """The fewest IVF lists to probe for :data:`TARGET_RECALL` on ``x`` itself: its
    exact top ``k`` for ``queries`` perturbed points of ``x`` against the IVF answers,
    doubling nprobe from 1 until the recall is reached. ``ids``: the ids ``x`` was
    added to ``index`` with (default: positions)."""
    import faiss

    rng = np.random.default_rng(seed)
    picked = x[rng.choice(len(x), min(queries, len(x)), replace=False)]
    noise = rng.normal(size=picked.shape)  # each query about 17 degrees off its point
    noise *= QUERY_NOISE / np.linalg.norm(noise, axis=1, keepdims=True)
    q = _normalised(picked + noise)
    exact = faiss.IndexFlatIP(x.shape[1])
    exact.add(x)
    truth = exact.search(q, k)[1]
    if ids is not None:
        truth = np.asarray(ids)[truth]
    ivf = faiss.extract_index_ivf(index)
    nprobe = 1
    while nprobe < ivf.nlist:
        ivf.nprobe = nprobe
        got = index.search(q, k)[1]
        recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(got, truth, strict=True)])
        if recall >= TARGET_RECALL:
            break
        nprobe *= 2
    return min(nprobe, ivf.nlist)


def sync(ann: AnnIndex, store: LanceStore) -> dict[str, int]:
    """Bring the files to the store's rows (the caller holds the library's index
    lock): remove facets gone or changed, add new ones, rebuild what cannot be
    trusted or should change kind. Returns counts of what it did."""
    import faiss

    version = _version(store)
    meta = ann._read_meta()
    db = ann._db()
    trusted = meta is not None and ann._check_files(meta)
    if not trusted:
        db.execute("DELETE FROM facets")
        meta = {"format": FORMAT, "modalities": {}, "rows": 0}
    known = dict(db.execute("SELECT key, content FROM facets").fetchall())
    current = store.contents()
    gone = [k for k, c in known.items() if current.get(k) != c]
    new = [k for k, c in current.items() if known.get(k) != c]
    indexes = {m: faiss.read_index(str(ann.folder / i["file"]))
               for m, i in meta["modalities"].items()} if trusted else {}
    if gone:
        for chunk in _chunks(gone, 500):
            marks = ", ".join("?" * len(chunk))
            ids = db.execute(f"SELECT id, modality FROM facets WHERE key IN ({marks})",
                             chunk).fetchall()
            for modality in {m for _, m in ids}:
                if modality in indexes:
                    picked = np.asarray([i for i, m in ids if m == modality], np.int64)
                    indexes[modality].remove_ids(picked)
            db.execute(f"DELETE FROM facets WHERE key IN ({marks})", chunk)
    added = 0
    for records, matrix in _records(store, new):
        db.executemany(
            f"INSERT INTO facets (key, content, {_COLUMNS}) "
            f"VALUES ({', '.join('?' * (2 + len(_SHOWN)))})",
            [[r["key"], r["content"], *[_text(r.get(f)) for f in _SHOWN]]
             for r in records])
        keys = [r["key"] for r in records]
        marks = ", ".join("?" * len(keys))
        ids = dict(db.execute(f"SELECT key, id FROM facets WHERE key IN ({marks})",
                              keys).fetchall())
        for modality in {r["modality"] for r in records}:
            rows = [i for i, r in enumerate(records) if r["modality"] == modality]
            index = indexes.get(modality)
            if index is None:
                index = indexes[modality] = faiss.IndexIDMap2(
                    faiss.IndexFlatIP(ann.dim))
            index.add_with_ids(_normalised(matrix[rows]), np.asarray(
                [ids[records[i]["key"]] for i in rows], np.int64))
        added += len(records)
    db.commit()
    rebuilt = 0
    for modality in list(indexes):
        n = int(db.execute("SELECT COUNT(*) FROM facets WHERE modality = ?",
                           [modality]).fetchone()[0])
        info = meta["modalities"].get(modality, {})
        if n == 0:
            indexes.pop(modality)
        elif _wants_rebuild(n, info, trusted):
            indexes[modality] = _build(ann, db, store, modality, n)
            rebuilt += 1
    _save(ann, indexes, db, version)
    return {"added": added, "removed": len(gone), "rebuilt": rebuilt}

def _build(ann: AnnIndex, db: sqlite3.Connection, store: LanceStore, modality: str,
       n: int) -> Any:
    """A fresh index of ``modality``'s facets: exact, or IVF trained on them all."""
    import faiss

    ids, vectors = [], []
    rows = db.execute("SELECT key, id FROM facets WHERE modality = ?", [modality])
    key_ids = dict(rows.fetchall())
    for records, matrix in _records(store, list(key_ids)):
        ids += [key_ids[r["key"]] for r in records]
        vectors.append(_normalised(matrix))
    x = np.concatenate(vectors)
    if n < ann_module.EXACT_BELOW:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(ann.dim))
        index.add_with_ids(x, np.asarray(ids, np.int64))
        return index
    nlist = int(np.sqrt(n))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(ann.dim), ann.dim, nlist,
                               faiss.METRIC_INNER_PRODUCT)
    sample = np.random.default_rng(0).choice(n, min(n, 64 * nlist), replace=False)
    index.train(x[np.sort(sample)])  # 64 points a list is plenty for k-means
    index.add_with_ids(x, np.asarray(ids, np.int64))
    index.nprobe = tune_nprobe(index, x, np.asarray(ids, np.int64))
    return index

def _save(ann: AnnIndex, indexes: dict[str, Any], db: sqlite3.Connection,
      version: Any) -> None:
    import faiss

    from polymodal.files import write_atomically

    ann.folder.mkdir(parents=True, exist_ok=True)
    modalities = {}
    for modality, index in indexes.items():
        name = f"{modality}.faiss"
        write_atomically(ann.folder / name, faiss.serialize_index(index).tobytes())
        info: dict[str, Any] = {"file": name, "rows": int(index.ntotal),
                                "sha256": sha256_file(ann.folder / name)}
        ivf = faiss.try_extract_index_ivf(index)
        if ivf is not None:
            info.update(kind="ivf", nlist=int(ivf.nlist), nprobe=int(ivf.nprobe),
                        trained_on=int(index.ntotal))
        else:
            info["kind"] = "exact"
        modalities[modality] = info
    for stale in ann.folder.glob("*.faiss"):
        if stale.name not in {i["file"] for i in modalities.values()}:
            stale.unlink()
    rows = int(db.execute("SELECT COUNT(*) FROM facets").fetchone()[0])
    ann._write_meta({"format": FORMAT, "version": version, "rows": rows,
                      "modalities": modalities})


def _wants_rebuild(n: int, info: dict[str, Any], trusted: bool) -> bool:
    """Whether an index of ``n`` vectors must be built anew: untrusted, or the wrong
    kind for its size (exact past ann_module.EXACT_BELOW, IVF below it or holding four times what
    it was trained on)."""
    if not trusted or not info:
        return n >= ann_module.EXACT_BELOW
    if info.get("kind") == "ivf":
        return n < ann_module.EXACT_BELOW // 2 or n > 4 * info.get("trained_on", n)
    return n >= ann_module.EXACT_BELOW


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i: i + size]


def _records(store: LanceStore, keys: Sequence[str]
             ) -> Iterator[tuple[list[dict[str, Any]], np.ndarray]]:
    """The store's records of ``keys`` (without vectors) and their vectors, in chunks:
    a few keys by a filter, many by one scan of the table (a filter per chunk would
    scan it once a chunk)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from polymodal.library.store import _escape

    if not keys:
        return
    size = ann_module.SCAN_FROM
    columns = [*FIELDS, "vector"]
    if len(keys) > size:
        table = store.table.to_arrow().select(columns)
        table = table.filter(pc.is_in(table["key"], value_set=pa.array(list(keys))))
        parts = [table.slice(i, size) for i in range(0, table.num_rows, size)]
    else:
        where = "key IN (" + ", ".join(f"'{_escape(k)}'" for k in keys) + ")"
        parts = [store.table.search().where(where).select(columns).limit(None).to_arrow()]
    for part in parts:
        if not part.num_rows:
            continue
        vectors = part["vector"].combine_chunks()
        matrix = np.asarray(vectors.values.to_numpy(zero_copy_only=False),
                            np.float32).reshape(part.num_rows, -1)
        yield part.drop_columns(["vector"]).to_pylist(), matrix
