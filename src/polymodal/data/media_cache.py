"""The media cache: pictures and sounds decoded and preprocessed once, on disk.

Decoding a JPEG, resampling a clip and resizing a picture cost the same every epoch and
every run; this cache keeps what they make, one ``.npy`` per (file content, transform),
and reads it back memory-mapped, so an epoch of a later run, or of another process
sharing the folder, decodes nothing.

Layout under ``folder``::

    index/<aa>/<fingerprint>      a file's (path, size, mtime_ns, ctime_ns, inode,
                                  device) -> the SHA-256 of its bytes (64 hex digits)
    <transform>/<aa>/<sha256>.npy the tensor that transform made of those bytes

Like the feature cache of frozen encoders (:mod:`polymodal.encoders.cache`), entries
are keyed by content, never by name: a changed file has another fingerprint, so it is
hashed again and, its content being new, decoded again; a renamed or copied one is
hashed again and found. The index only saves hashing an unchanged file every epoch.
The transform key is the encoder's class, settings and learnt non-tensor state (a
vocabulary), the decoding options, and the versions of the decoders.

Entries are written to a temp file and renamed into place (``os.replace``): a reader
sees a whole entry or none, never half of one; one that still fails to load (a disk
error, a hand-truncated file) is removed and decoded again. The folder is bounded:
past ``max_gb``, the least recently used files go (a read touches an entry's mtime, at
most once every few minutes). Eviction runs under a lock so that one process at a time
scans; a reader whose entry was just evicted decodes again. Nothing is pickled.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polymodal.data.errors import MediaError
from polymodal.data.manifest import DecodeOptions, Manifest
from polymodal.data.schema import Role

#: environment variable naming the folder of ``media_cache="auto"``
MEDIA_CACHE_ENV = "POLYMODAL_MEDIA_CACHE"
#: bumped when the layout or what an entry holds changes: older entries are not read
FORMAT = 1
#: a temp file older than this (seconds) was left by a process that died: removed
STALE_TEMP_S = 3600.0


def default_folder() -> Path:
    """``$POLYMODAL_MEDIA_CACHE``, else ``~/.cache/polymodal/media``."""
    env = os.environ.get(MEDIA_CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "polymodal" / "media"


def cache_folder(setting: str | os.PathLike[str] | None) -> Path | None:
    """The folder an estimator's ``media_cache`` setting names: "auto" the default one,
    None, "" or "off" none, anything else that folder."""
    if setting is None or str(setting).strip().lower() in ("", "off", "none", "false"):
        return None
    if str(setting).strip().lower() == "auto":
        return default_folder()
    return Path(setting).expanduser()


def encoder_identity(encoder: Any) -> str:
    """What a :class:`~polymodal.encoders.base.ModalityEncoder`'s ``preprocess`` depends
    on: its class, its settings (``config()``) and its learnt non-tensor state (a
    vocabulary), as a digest.

    This is :meth:`ModalityEncoder.fingerprint` (the feature cache's key) without the
    digest of the weights: preprocessing does not read them, and keying by them would
    decode again for every seed, every size of the model and every fine-tuned copy.
    """
    h = hashlib.sha256(f"{type(encoder).__module__}.{type(encoder).__qualname__}".encode())
    h.update(repr(sorted(encoder.config().items())).encode())
    for name, value in sorted(encoder.state_dict().items()):
        if not isinstance(value, torch.Tensor):  # extra state: a vocabulary
            h.update(name.encode() + repr(value).encode())
    return h.hexdigest()[:20]


def transform_identity(transform: Callable[[Any], Any] | None, role: str,
                       image_size: int | tuple[int, int] | None = None) -> str | None:
    """A name for what turns a decoded cell into the tensor cached, or None where it
    cannot be named (a lambda, a noise function: such columns are not cached on disk).

    ``transform`` is an encoder's bound ``preprocess`` (named by :func:`encoder_identity`),
    a callable with a ``media_cache_identity`` string attribute, or None for the
    dataset's default (a picture to a [0, 1] tensor at ``image_size``, a waveform as is).
    """
    if transform is None:
        return f"default-{role}-{image_size!r}"
    named = getattr(transform, "media_cache_identity", None)
    if isinstance(named, str):
        return named
    from polymodal.encoders.base import ModalityEncoder

    owner = getattr(transform, "__self__", None)
    if isinstance(owner, ModalityEncoder) and getattr(transform, "__name__", "") == "preprocess":
        return encoder_identity(owner)
    return None


def disk_transforms(roles: Mapping[str, Role], transforms: Mapping[str, Callable[[Any], Any]],
                    exclude: set[str], image_size: int | tuple[int, int] | None,
                    options: DecodeOptions) -> dict[str, str]:
    """Per image or audio column of a dataset (but ``exclude``: read from elsewhere),
    the :func:`transform_key` of its transform, where the transform can be named."""
    keys = {}
    for column, role in roles.items():
        if column in exclude or role not in (Role.IMAGE, Role.AUDIO):
            continue
        fn = transforms.get(column) or transforms.get(role.value)
        identity = transform_identity(fn, role.value, image_size)
        if identity is not None:
            keys[column] = transform_key(identity, options)
    return keys


@lru_cache(maxsize=1)
def _decoder_versions() -> str:
    """The versions of what decodes and resamples: an upgrade may change the pixels."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("polymodal", "pillow", "soundfile", "librosa", "soxr", "numpy"):
        try:
            found.append(f"{name}={version(name)}")
        except PackageNotFoundError:
            found.append(f"{name}=-")
    return ",".join(found)


def transform_key(identity: str, options: DecodeOptions | None = None) -> str:
    """The folder name of one transform's entries: its identity, the decoding options
    (image mode, sample rate, limits) and the decoders' versions."""
    text = f"{FORMAT}\0{identity}\0{options or DecodeOptions()!r}\0{_decoder_versions()}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class MediaKey:
    """Where one file's tensor under one transform lives, and the file's state when it
    was hashed (an entry is written only if the file is still in that state)."""

    path: Path
    entry: Path
    stamp: tuple[int, ...]


def _stamp(path: Path) -> tuple[int, ...]:
    st = os.stat(path)
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Write ``path`` through ``write(file)`` into a temp file beside it, then rename it
    into place: readers see the old file, the new one or none, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with tmp.open("wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class MediaCache:
    """Preprocessed pictures and sounds on disk, by file content and transform.

    Args:
        folder: where entries live (shared safely by runs and processes).
        max_gb: the folder's bound; past it the least recently used entries go.
        touch_after: seconds after which a read refreshes an entry's mtime (its place in
            the eviction order); fewer metadata writes than touching on every read.

    Picklable (DataLoader workers): each process keeps its own memo of hashed files.
    """

    def __init__(self, folder: str | os.PathLike[str], max_gb: float = 20.0, *,
                 touch_after: float = 300.0) -> None:
        if max_gb <= 0:
            raise ValueError(f"max_gb must be > 0, got {max_gb}")
        self.folder = Path(folder).expanduser()
        self.max_bytes = int(max_gb * 2**30)
        self.touch_after = touch_after
        self.hits = self.misses = self.writes = 0
        self._digests: dict[tuple[Any, ...], str] = {}
        self._written = 0  # bytes since the last size check
        self._checked = False

    def __repr__(self) -> str:
        return f"MediaCache({str(self.folder)!r}, max_gb={self.max_bytes / 2**30:g})"

    # -- keys ---------------------------------------------------------------------
    def content_hash(self, path: str | os.PathLike[str]) -> str | None:
        """SHA-256 of the file's bytes, hashed once per state of the file (the index);
        None when it cannot be read (the decoder then reports why)."""
        try:
            return self._digest(Path(path), _stamp(Path(path)))
        except (OSError, ValueError):
            return None

    def _digest(self, path: Path, stamp: tuple[int, ...]) -> str | None:
        memo = (str(path), *stamp)
        digest = self._digests.get(memo)
        if digest is not None:
            return digest
        name = hashlib.sha256(repr(memo).encode()).hexdigest()[:32]
        index = self.folder / "index" / name[:2] / name
        try:
            digest = index.read_text("ascii")
            self._touch(index)
        except (OSError, UnicodeDecodeError):
            digest = ""
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            with path.open("rb") as fh:
                digest = hashlib.file_digest(fh, "sha256").hexdigest()
            if _stamp(path) != stamp:  # rewritten while it was hashed
                return None
            with contextlib.suppress(OSError):
                atomic_write(index, lambda fh: fh.write(digest.encode("ascii")))
        self._digests[memo] = digest
        return digest

    def key(self, path: str | os.PathLike[str], transform: str) -> MediaKey | None:
        """The entry of ``path`` under ``transform`` (a :func:`transform_key`), or None
        when the file cannot be read (the decoder then reports why)."""
        path = Path(path)
        try:
            stamp = _stamp(path)
            digest = self._digest(path, stamp)
        except (OSError, ValueError):
            return None
        if digest is None:
            return None
        return MediaKey(path, self.folder / transform / digest[:2] / f"{digest}.npy", stamp)

    def cell_key(self, manifest: Manifest, row: int, column: str, transform: str
                 ) -> MediaKey | None:
        """The entry of a manifest's cell, or None: empty, or a bad path (decoding
        then reports it)."""
        try:
            path = manifest.resolve(row, column)
        except MediaError:
            return None
        return None if path is None else self.key(path, transform)

    # -- entries ------------------------------------------------------------------
    def get(self, key: MediaKey) -> torch.Tensor | None:
        """The cached tensor, or None (absent, evicted, or damaged: then removed)."""
        try:
            mapped = np.load(key.entry, mmap_mode="r", allow_pickle=False)
            # a copy: an open map holds a file descriptor, and a run's memory cache
            # keeps thousands of tensors
            tensor = torch.from_numpy(np.array(mapped))
            del mapped
        except FileNotFoundError:
            self.misses += 1
            return None
        except (OSError, ValueError, EOFError):  # truncated, not an .npy: never trusted
            key.entry.unlink(missing_ok=True)
            self.misses += 1
            return None
        self._touch(key.entry)
        self.hits += 1
        return tensor

    def put(self, key: MediaKey, value: Any) -> bool:
        """Store ``value`` (a numeric tensor) unless the file changed since it was
        hashed; returns whether it was written."""
        if not isinstance(value, torch.Tensor) or value.is_complex() or not value.numel():
            return False
        try:
            array = value.detach().cpu().contiguous().numpy()
        except (TypeError, RuntimeError):  # bfloat16 and others numpy lacks
            return False
        try:
            if _stamp(key.path) != key.stamp:  # rewritten while it was decoded
                return False
            atomic_write(key.entry, lambda fh: np.save(fh, array, allow_pickle=False))
        except OSError:  # a full or read-only disk: the run goes on without
            return False
        self.writes += 1
        self._written += array.nbytes
        if not self._checked or self._written >= self.max_bytes // 20:
            self.evict()
        return True

    def _touch(self, path: Path) -> None:
        with contextlib.suppress(OSError):
            if time.time() - path.stat().st_mtime > self.touch_after:
                os.utime(path)

    # -- size ---------------------------------------------------------------------
    def _files(self) -> Iterator[tuple[float, int, Path]]:
        """(mtime, size, path) of every entry and index file; stale temp files removed."""
        now = time.time()
        for top, _dirs, names in os.walk(self.folder):
            for name in names:
                path = Path(top) / name
                try:
                    st = path.stat()
                except OSError:  # evicted by another process meanwhile
                    continue
                if name.endswith(".tmp"):
                    if now - st.st_mtime > STALE_TEMP_S:
                        path.unlink(missing_ok=True)
                    continue
                if name != ".lock":
                    yield st.st_mtime, st.st_size, path

    def size_bytes(self) -> int:
        """Bytes held by entries and the index."""
        return sum(size for _t, size, _p in self._files())

    def evict(self, target: float = 0.9) -> int:
        """Past ``max_gb``, remove the least recently used files until the folder holds
        ``target`` of it; returns how many went. Waits for another process's eviction
        (it skips after :data:`LOCK_WAIT_S`)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with _exclusive(self.folder / ".lock") as mine:
            if not mine:  # another process held it for LOCK_WAIT_S: check at the next write
                return 0
            self._checked, self._written = True, 0
            files = sorted(self._files())
            total = sum(size for _t, size, _p in files)
            if total <= self.max_bytes:
                return 0
            removed = 0
            for _mtime, size, path in files:
                if total <= target * self.max_bytes:
                    break
                path.unlink(missing_ok=True)
                total -= size
                removed += 1
            return removed


#: how long an eviction waits for another process's to finish before it skips
LOCK_WAIT_S = 10.0


@contextlib.contextmanager
def _exclusive(lock: Path) -> Iterator[bool]:
    """An exclusive lock on ``lock``, waited for up to :data:`LOCK_WAIT_S`: yields
    whether this process holds it (always True where ``fcntl`` is missing)."""
    try:
        import fcntl
    except ImportError:  # Windows: concurrent evictions only remove a little more
        yield True
        return
    with lock.open("a") as fh:
        # wait out another process's scan (milliseconds; longer on a loaded machine):
        # a write that skipped its check left the folder over its bound when the other
        # process's listing had been made before that write (found under load)
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    yield False
                    return
                time.sleep(0.01)
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def open_media_cache(setting: str | os.PathLike[str] | None,
                     max_gb: float = 20.0) -> MediaCache | None:
    """The :class:`MediaCache` an estimator's ``media_cache`` setting names, or None."""
    folder = cache_folder(setting)
    return None if folder is None else MediaCache(folder, max_gb)
