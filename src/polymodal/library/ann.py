"""The library's fast search path: FAISS indexes beside the LanceDB store of record.

LanceDB keeps every facet (rows, metadata, versions); ``ann/`` in the library folder
keeps what a search needs at FAISS speed:

- ``<modality>.faiss``: one FAISS index per modality, ids = the facets' ids: exact
  inner product (``IndexFlatIP``) below :data:`EXACT_BELOW` vectors, IVF
  (``IndexIVFFlat``, sqrt(n) lists, as many probed as :func:`tune_nprobe` finds
  reach Recall@10 0.97 on the library's own vectors) past it; vectors are
  L2-normalised, so the inner product is the cosine.
- ``records.sqlite``: each facet's id, key, content hash and the fields a hit shows.
- ``meta.json``, written last and atomically: the LanceDB version and row count the
  files were synced to, and each index file's SHA-256 and size.

:meth:`AnnIndex.sync` brings the files to the store's rows incrementally (facets
gone or changed leave the indexes, new ones are added), rebuilding an index when its
kind should change (it crossed :data:`EXACT_BELOW`, or an IVF index holds four times
what it was trained on) or when any file fails its check (missing, a checksum or a
row count that differs: a stale or damaged file is rebuilt, never trusted). A library
syncs at the end of every index run, under its index lock; a reader reloads when
``meta.json`` changes and, every :data:`RECHECK_S` seconds, checks that the store is
still at the synced version (else it searches the store until the next sync).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from polymodal.library.store import FIELDS, LanceStore

if TYPE_CHECKING:
    from polymodal.library.library import Library

#: below this many vectors of a modality, search is exact (a flat scan is faster)
EXACT_BELOW = 20_000
#: past this many keys, records are read by one scan of the table (else by a filter)
SCAN_FROM = 5000
#: a reader checks the store's version at most this often
RECHECK_S = 1.0
FORMAT = 1
_SHOWN = [f for f in FIELDS if f not in ("key", "content")]
_COLUMNS = ", ".join(f'"{f}"' for f in _SHOWN)
_NAMES = ["key", "content", *_SHOWN]


#: the Recall@10 against exact search that an IVF index is tuned to on its own data
TARGET_RECALL = 0.97


def tune_nprobe(index: Any, x: np.ndarray, k: int = 10, queries: int = 200,
                seed: int = 0) -> int:
    """The fewest IVF lists to probe for :data:`TARGET_RECALL` on ``x`` itself: its
    exact top ``k`` for ``queries`` perturbed points of ``x`` against the IVF answers,
    doubling nprobe from 8 until the recall is reached."""
    import faiss

    rng = np.random.default_rng(seed)
    picked = x[rng.choice(len(x), min(queries, len(x)), replace=False)]
    q = _normalised(picked + 0.1 * picked.std() * rng.normal(size=picked.shape))
    exact = faiss.IndexFlatIP(x.shape[1])
    exact.add(x)
    truth = exact.search(q, k)[1]
    ivf = faiss.extract_index_ivf(index)
    nprobe = 8
    while nprobe < ivf.nlist:
        ivf.nprobe = nprobe
        got = index.search(q, k)[1]
        recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(got, truth, strict=True)])
        if recall >= TARGET_RECALL:
            break
        nprobe *= 2
    return min(nprobe, ivf.nlist)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def _normalised(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)


class AnnIndex:
    """The ``ann/`` folder of one library (see the module docstring).

    Args:
        folder: the ``ann`` folder (created on the first sync).
        dim: the vectors' size.
    """

    def __init__(self, folder: str | Path, dim: int) -> None:
        self.folder = Path(folder)
        self.dim = dim
        self._lock = threading.RLock()
        self._indexes: dict[str, Any] = {}
        self._ids = np.zeros(0, np.int64)  # every facet's id, ascending
        self._groups: list[str] = []  # and its item (source::item), as search groups
        self._meta: dict[str, Any] | None = None
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._fresh = False
        self._local = threading.local()

    # -- files ------------------------------------------------------------------
    @property
    def meta_path(self) -> Path:
        return self.folder / "meta.json"

    def _db(self) -> sqlite3.Connection:
        """This thread's connection to ``records.sqlite`` (sqlite connections are per
        thread)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.folder / "records.sqlite", timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS facets (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                "key TEXT UNIQUE NOT NULL, content TEXT, "
                + ", ".join(f'"{f}" TEXT' for f in _SHOWN) + ")")
            conn.execute("CREATE INDEX IF NOT EXISTS by_modality ON facets (modality)")
            self._local.conn = conn
        return conn

    def _read_meta(self) -> dict[str, Any] | None:
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return None
        return meta if isinstance(meta, dict) and meta.get("format") == FORMAT else None

    def _write_meta(self, meta: dict[str, Any]) -> None:
        from polymodal.checkpoint import write_atomically

        write_atomically(self.meta_path, json.dumps(meta, indent=1))

    def _check_files(self, meta: dict[str, Any]) -> bool:
        """Every index file is there, of its recorded checksum and row count, and the
        records hold as many facets as the indexes."""
        try:
            total = 0
            for info in meta["modalities"].values():
                path = self.folder / info["file"]
                if not path.is_file() or _sha256(path) != info["sha256"]:
                    return False
                total += info["rows"]
            rows = self._db().execute("SELECT COUNT(*) FROM facets").fetchone()[0]
            return rows == total == meta["rows"]
        except (KeyError, TypeError, sqlite3.Error):
            return False

    # -- reading ------------------------------------------------------------------
    def usable(self, store: LanceStore) -> bool:
        """Whether the files hold exactly the store's rows now (loading them when
        ``meta.json`` changed; checking the store's version every RECHECK_S)."""
        try:
            stat = self.meta_path.stat()
        except OSError:
            return False
        stamp = (stat.st_mtime_ns, stat.st_size)
        now = time.monotonic()
        if stamp == self._stamp and now - self._checked < RECHECK_S:
            return self._fresh
        with self._lock:
            if stamp != self._stamp:
                self._load()
                self._stamp = stamp
            self._fresh = self._meta is not None and self._meta.get("version") == \
                _version(store)
            self._checked = now
        return self._fresh

    def _load(self) -> None:
        import faiss

        self._indexes, self._meta = {}, None
        meta = self._read_meta()
        if meta is None or not self._check_files(meta):
            return
        faiss.omp_set_num_threads(1)  # queries run in parallel threads, not within one
        indexes: dict[str, Any] = {}
        for modality, info in meta["modalities"].items():
            index = faiss.read_index(str(self.folder / info["file"]))
            if "nprobe" in info:
                faiss.extract_index_ivf(index).nprobe = info["nprobe"]
            indexes[modality] = index
        rows = self._db().execute("SELECT id, source, item FROM facets ORDER BY id")
        ids, groups = [], []
        for i, source, item in rows:
            ids.append(i)
            groups.append(f"{source}::{item}")
        self._ids, self._groups = np.asarray(ids, np.int64), groups
        self._indexes, self._meta = indexes, meta

    def _candidates(self, vector: np.ndarray, k: int, modality: str | None
                    ) -> list[tuple[float, int]]:
        """(score, id) of the ``k`` nearest facets of each modality searched, best
        first."""
        import faiss

        query = np.array(vector, np.float32, ndmin=2)
        faiss.normalize_L2(query)
        indexes = self._indexes  # replaced whole on reload, never changed in place
        found: list[tuple[float, int]] = []
        for name, index in indexes.items():
            if modality is not None and name != modality:
                continue
            scores, ids = index.search(query, min(k, index.ntotal))
            found += [(s, i) for s, i in zip(scores[0].tolist(), ids[0].tolist(),
                                              strict=True) if i >= 0]
        found.sort(key=lambda t: -t[0])
        return found

    def _fields(self, found: Sequence[tuple[float, int]]) -> list[dict[str, Any]]:
        """The records of ``found`` ids with their scores, in order (an id whose facet
        a sync removed meanwhile is left out: the next search sees the new files)."""
        if not found:
            return []
        ids = [i for _, i in found]
        rows = self._db().execute(
            f"SELECT id, key, content, {_COLUMNS} FROM facets "
            f"WHERE id IN ({', '.join('?' * len(ids))})", ids).fetchall()
        by_id = {r[0]: r for r in rows}
        out = []
        for score, i in found:
            row = by_id.get(i)
            if row is None:
                continue
            record = dict(zip(_NAMES, row[1:], strict=True))
            try:
                record["metadata"] = json.loads(record["metadata"] or "{}")
            except ValueError:
                record["metadata"] = {}
            record["score"] = score
            out.append(record)
        return out

    def search(self, vector: np.ndarray, k: int, modality: str | None = None
               ) -> list[dict[str, Any]]:
        """The ``k`` nearest facets (cosine), best first, as the store gives them."""
        return self._fields(self._candidates(vector, k, modality)[:k])

    def best_items(self, vector: np.ndarray, k: int, modality: str | None = None,
                   min_score: float | None = None, candidates: int = 4
                   ) -> list[dict[str, Any]]:
        """The best facet of each of the ``k`` nearest items (an item found through
        its picture and its caption counts once), among ``candidates`` x ``k`` nearest
        facets, those at or below ``min_score`` left out: what ``Library.search``
        shows, with the fields of those facets only."""
        groups, ids = self._groups, self._ids
        best: list[tuple[float, int]] = []
        seen: set[str] = set()
        for score, i in self._candidates(vector, k * candidates, modality):
            if min_score is not None and score <= min_score:
                break
            pos = int(np.searchsorted(ids, i))
            group = groups[pos] if pos < len(ids) and ids[pos] == i else None
            if group is None or group in seen:
                continue
            seen.add(group)
            best.append((score, i))
            if len(best) == k:
                break
        return self._fields(best)

    # -- writing ------------------------------------------------------------------
    def sync(self, store: LanceStore) -> dict[str, int]:
        """Bring the files to the store's rows (the caller holds the library's index
        lock): remove facets gone or changed, add new ones, rebuild what cannot be
        trusted or should change kind. Returns counts of what it did."""
        import faiss

        version = _version(store)
        meta = self._read_meta()
        db = self._db()
        trusted = meta is not None and self._check_files(meta)
        if not trusted:
            db.execute("DELETE FROM facets")
            meta = {"format": FORMAT, "modalities": {}, "rows": 0}
        known = dict(db.execute("SELECT key, content FROM facets").fetchall())
        current = store.contents()
        gone = [k for k, c in known.items() if current.get(k) != c]
        new = [k for k, c in current.items() if known.get(k) != c]
        indexes = {m: faiss.read_index(str(self.folder / i["file"]))
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
                        faiss.IndexFlatIP(self.dim))
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
                indexes[modality] = self._build(db, store, modality, n)
                rebuilt += 1
        self._save(indexes, db, version)
        with self._lock:  # this process searches what it wrote at once
            self._stamp = None
            self._checked = 0.0
        self.usable(store)
        return {"added": added, "removed": len(gone), "rebuilt": rebuilt}

    def _build(self, db: sqlite3.Connection, store: LanceStore, modality: str, n: int
               ) -> Any:
        """A fresh index of ``modality``'s facets: exact, or IVF trained on them all."""
        import faiss

        ids, vectors = [], []
        rows = db.execute("SELECT key, id FROM facets WHERE modality = ?", [modality])
        key_ids = dict(rows.fetchall())
        for records, matrix in _records(store, list(key_ids)):
            ids += [key_ids[r["key"]] for r in records]
            vectors.append(_normalised(matrix))
        x = np.concatenate(vectors)
        if n < EXACT_BELOW:
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
            index.add_with_ids(x, np.asarray(ids, np.int64))
            return index
        nlist = int(np.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(self.dim), self.dim, nlist,
                                   faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).choice(n, min(n, 64 * nlist), replace=False)
        index.train(x[np.sort(sample)])  # 64 points a list is plenty for k-means
        index.add_with_ids(x, np.asarray(ids, np.int64))
        index.nprobe = tune_nprobe(index, x)
        return index

    def _save(self, indexes: dict[str, Any], db: sqlite3.Connection, version: Any) -> None:
        import faiss

        from polymodal.checkpoint import write_atomically

        self.folder.mkdir(parents=True, exist_ok=True)
        modalities = {}
        for modality, index in indexes.items():
            name = f"{modality}.faiss"
            write_atomically(self.folder / name, faiss.serialize_index(index).tobytes())
            info: dict[str, Any] = {"file": name, "rows": int(index.ntotal),
                                    "sha256": _sha256(self.folder / name)}
            ivf = faiss.try_extract_index_ivf(index)
            if ivf is not None:
                info.update(kind="ivf", nlist=int(ivf.nlist), nprobe=int(ivf.nprobe),
                            trained_on=int(index.ntotal))
            else:
                info["kind"] = "exact"
            modalities[modality] = info
        for stale in self.folder.glob("*.faiss"):
            if stale.name not in {i["file"] for i in modalities.values()}:
                stale.unlink()
        rows = int(db.execute("SELECT COUNT(*) FROM facets").fetchone()[0])
        self._write_meta({"format": FORMAT, "version": version, "rows": rows,
                          "modalities": modalities})


def nearest_items(lib: Library, vector: np.ndarray, k: int, modality: str | None,
                  min_score: float | None = None) -> list[dict[str, Any]]:
    """The best facet of each of a library's ``k`` nearest items (best first; at or
    below ``min_score`` left out), through FAISS when its files hold exactly the
    stored rows; a stale or damaged fast path is synced when no index run is going on
    (else the store answers until that run syncs it)."""
    from polymodal.library.indexing import LibraryBusy, index_lock

    store, ann = lib.store, lib.ann
    if ann is not None and isinstance(store, LanceStore):
        if not ann.usable(store):
            # OSError: a library folder this process may read but not write
            with contextlib.suppress(LibraryBusy, OSError), \
                    index_lock(lib.folder, lib.name):
                ann.sync(store)
        if ann.usable(store):
            return ann.best_items(vector, k, modality, min_score)
    best: dict[str, dict[str, Any]] = {}
    for r in store.search(vector, k * 4, modality):
        item = f"{r['source']}::{r['item']}"
        if (min_score is None or r["score"] > min_score) and \
                (item not in best or r["score"] > best[item]["score"]):
            best[item] = r
    return sorted(best.values(), key=lambda r: -r["score"])[:k]


def _wants_rebuild(n: int, info: dict[str, Any], trusted: bool) -> bool:
    """Whether an index of ``n`` vectors must be built anew: untrusted, or the wrong
    kind for its size (exact past EXACT_BELOW, IVF below it or holding four times what
    it was trained on)."""
    if not trusted or not info:
        return n >= EXACT_BELOW
    if info.get("kind") == "ivf":
        return n < EXACT_BELOW // 2 or n > 4 * info.get("trained_on", n)
    return n >= EXACT_BELOW


def _version(store: LanceStore) -> Any:
    """The store's table version (None before it has a table)."""
    return int(store.table.version) if store.count() else None


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
    size = SCAN_FROM
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
