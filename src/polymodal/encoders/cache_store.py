"""A feature cache that holds millions: append-only chunk files and an SQLite index.

:class:`ChunkedFeatureCache` has the interface of
:class:`~polymodal.encoders.cache.FeatureCache` (``get(key)``, ``put(key, tokens,
pooled)``, ``hits`` / ``misses``, keyed by content hash under a folder named by the
encoder's fingerprint), but writes entries into a few large files instead of one file
per cell:

- ``chunks/<writer>-<n>.bin``: each writing process appends to chunk files of its own
  (named by host, process and a random tag), so writers never share a file and need
  no lock to append; a chunk is closed at ``chunk_bytes``.
- ``index.sqlite``: key -> (chunk, offset, length, shapes, CRC-32), in WAL mode, which
  serialises concurrent writers from any number of processes (and hosts on a shared
  file system that honours POSIX locks) and lets readers read while they write.

An entry's bytes are written before its index row, so a crash leaves at most unused
bytes, never an index row without data; an entry whose bytes are missing or fail
their checksum (a damaged or cut chunk) is dropped from the index and reported as a
miss, so the caller computes it again: a damaged chunk is never trusted.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

SCHEMA = """CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY, chunk TEXT NOT NULL, offset INTEGER NOT NULL,
    length INTEGER NOT NULL, tokens INTEGER NOT NULL, dim INTEGER NOT NULL,
    pooled INTEGER NOT NULL, crc INTEGER NOT NULL)"""


class ChunkedFeatureCache:
    """Cached (tokens, pooled) of one frozen encoder under ``root/<fingerprint>/``.

    Args:
        root: the cache's folder (the same root as the one-file cache's; the store
            lives in ``<fingerprint>/chunks`` and ``<fingerprint>/index.sqlite``).
        encoder: a frozen encoder (its fingerprint names the folder); or give
            ``fingerprint`` instead.
        chunk_bytes: a chunk file is closed and a new one begun past this size.
        fingerprint: the folder name, for a cache used without the encoder object.
    """

    def __init__(self, root: str | os.PathLike[str], encoder: Any = None, *,
                 chunk_bytes: int = 256 * 2**20, fingerprint: str | None = None) -> None:
        if encoder is not None and getattr(encoder, "trainable", False):
            raise ValueError("only a frozen encoder's outputs can be cached: call "
                             "encoder.freeze() first")
        if fingerprint is None:
            if encoder is None:
                raise ValueError("give a frozen encoder or a fingerprint")
            fingerprint = encoder.fingerprint()
        self.root = Path(root)
        self.folder = self.root / fingerprint
        self.chunk_bytes = chunk_bytes
        self.hits = self.misses = self.damaged = 0
        self._reset()

    # -- process-local state (reopened after fork or unpickling) -----------------------
    def _reset(self) -> None:
        self._pid = os.getpid()
        self._db: sqlite3.Connection | None = None
        self._readers: dict[str, Any] = {}
        self._chunk: Any = None
        self._chunk_name = self._writer = ""
        self._chunk_count = 0
        self._batching = False

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items()
                 if k in ("root", "folder", "chunk_bytes", "hits", "misses", "damaged")}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def _connection(self) -> sqlite3.Connection:
        if self._pid != os.getpid():  # forked: nothing of the parent's may be used
            self._reset()
        if self._db is None:
            (self.folder / "chunks").mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.folder / "index.sqlite", timeout=60,
                                 isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(SCHEMA)
            self._db = db
        return self._db

    # -- the FeatureCache interface -----------------------------------------------------
    def get(self, key: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The entry of ``key``, or None (absent, or damaged and dropped)."""
        row = self._connection().execute(
            "SELECT chunk, offset, length, tokens, dim, pooled, crc FROM entries "
            "WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        chunk, offset, length, n_tokens, dim, n_pooled, crc = row
        data = self._read(chunk, offset, length)
        if data is None or len(data) != length or zlib.crc32(data) != crc:
            self.damaged += 1
            self.misses += 1
            self._connection().execute("DELETE FROM entries WHERE key = ? AND chunk = ? "
                                       "AND offset = ?", (key, chunk, offset))
            return None
        values = np.frombuffer(data, dtype=np.float32)
        pooled = torch.from_numpy(values[:n_pooled].copy())
        tokens = torch.from_numpy(values[n_pooled:].copy()).reshape(n_tokens, dim)
        self.hits += 1
        return tokens, pooled

    def put(self, key: str, tokens: torch.Tensor, pooled: torch.Tensor) -> None:
        """Append an entry (a key written again points at its newest bytes)."""
        tokens = tokens.detach().float().cpu().contiguous()
        pooled = pooled.detach().float().cpu().contiguous().reshape(-1)
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be (T, d), got shape {tuple(tokens.shape)}")
        data = pooled.numpy().tobytes() + tokens.numpy().tobytes()
        chunk, offset = self._append(data)
        db = self._connection()
        db.execute("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (key, chunk, offset, len(data), tokens.shape[0], tokens.shape[1],
                    pooled.shape[0], zlib.crc32(data)))

    def __contains__(self, key: str) -> bool:
        """Is there an index row for ``key`` (its bytes are checked when read)?"""
        return self._connection().execute("SELECT 1 FROM entries WHERE key = ?",
                                          (key,)).fetchone() is not None

    def __len__(self) -> int:
        return self._connection().execute("SELECT COUNT(*) FROM entries").fetchone()[0]

    @contextlib.contextmanager
    def writing(self) -> Iterator[ChunkedFeatureCache]:
        """Many puts in one transaction (a fill); what they wrote is visible to other
        processes when the block ends."""
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        self._batching = True
        try:
            yield self
            self._flush_chunk()
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            self._batching = False

    def close(self) -> None:
        """Close the chunk being written, the readers and the index."""
        if self._pid == os.getpid():
            if self._chunk is not None:
                self._chunk.close()
            for fh in self._readers.values():
                fh.close()
            if self._db is not None:
                self._db.close()
        self._reset()

    def files(self) -> list[Path]:
        """Every file the store uses (chunks, index, its WAL)."""
        return sorted(p for p in self.folder.rglob("*") if p.is_file())

    # -- chunks -------------------------------------------------------------------------
    def _append(self, data: bytes) -> tuple[str, int]:
        if self._pid != os.getpid():
            self._reset()
        if self._chunk is None or self._chunk.tell() >= self.chunk_bytes:
            if self._chunk is not None:
                self._chunk.close()
            if not self._chunk_name:
                host = socket.gethostname().replace("-", "")[:16] or "host"
                self._writer = f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            self._chunk_name = f"{self._writer}-{self._chunk_count:05d}.bin"
            self._chunk_count += 1
            (self.folder / "chunks").mkdir(parents=True, exist_ok=True)
            self._chunk = open(self.folder / "chunks" / self._chunk_name, "ab")  # noqa: SIM115
        offset = self._chunk.tell()
        self._chunk.write(data)
        if not self._batching:
            self._flush_chunk()  # the bytes reach the file before the index row
        return self._chunk_name, offset

    def _flush_chunk(self) -> None:
        if self._chunk is not None:
            self._chunk.flush()
            reader = self._readers.get(self._chunk_name)
            if reader is not None:
                reader.seek(0, os.SEEK_END)

    def _read(self, chunk: str, offset: int, length: int) -> bytes | None:
        if chunk == self._chunk_name and self._chunk is not None:
            self._chunk.flush()
        fh = self._readers.get(chunk)
        if fh is None:
            try:
                fh = self._readers[chunk] = open(self.folder / "chunks" / chunk, "rb")  # noqa: SIM115
            except OSError:
                return None
        try:
            return os.pread(fh.fileno(), length, offset)
        except OSError:
            return None
