"""The library's fast search path: FAISS indexes beside the LanceDB store of record.

LanceDB keeps every facet (rows, metadata, versions); ``ann/`` in the library folder
keeps what a search needs at FAISS speed:

- ``<modality>.faiss``: one FAISS index per modality, ids = the facets' ids: exact
  inner product (``IndexFlatIP``) below :data:`EXACT_BELOW` vectors, IVF
  (``IndexIVFFlat``, sqrt(n) lists, as many probed as
  :func:`~polymodal.library.ann_build.tune_nprobe` finds
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
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from polymodal.files import sha256_file
from polymodal.library.store import FIELDS, LanceStore, _unrow

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
        from polymodal.files import write_atomically

        write_atomically(self.meta_path, json.dumps(meta, indent=1))

    def _check_files(self, meta: dict[str, Any]) -> bool:
        """Every index file is there, of its recorded checksum and row count, and the
        records hold as many facets as the indexes."""
        try:
            total = 0
            for info in meta["modalities"].values():
                path = self.folder / info["file"]
                if not path.is_file() or sha256_file(path) != info["sha256"]:
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
            record = _unrow(dict(zip(_NAMES, row[1:], strict=True)))
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
        trusted or should change kind (:func:`polymodal.library.ann_build.sync`), then
        search them at once. Returns counts of what it did."""
        from polymodal.library.ann_build import sync

        done = sync(self, store)
        with self._lock:  # this process searches what it wrote at once
            self._stamp = None
            self._checked = 0.0
        self.usable(store)
        return done


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


def _version(store: LanceStore) -> Any:
    """The store's table version (None before it has a table)."""
    return int(store.table.version) if store.count() else None
