"""Where a shard folder's files are: a local folder, or a URL that fsspec opens.

A shard folder is read in order, file by file (its meta, its index, then each shard
from its start), which is what object stores and HTTP serve well: ``s3://bucket/set``
(with ``s3fs``), ``gs://...`` (``gcsfs``), ``https://host/set`` (a static file server;
aiohttp ships with Lightning), ``hf://datasets/...`` (``huggingface_hub``) or any other
fsspec protocol, with its credentials from the environment as that protocol reads
them. A local path (or ``file://``) is read with plain file calls.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

#: a shard folder's location: a local path, or a URL (kept as written)
Where = Path | str


def location(path: str | os.PathLike[str]) -> Where:
    """``path`` as a location: a URL stays a string (its ``//`` intact), a local path
    (``file://`` stripped) becomes a :class:`Path`."""
    text = os.fspath(path)
    if text.startswith("file://"):
        return Path(text[len("file://"):])
    if is_url(text):
        return text.rstrip("/")
    return Path(text).expanduser()


def is_url(where: Any) -> bool:
    """Is ``where`` a URL (a protocol other than the local file system)?"""
    return isinstance(where, str) and "://" in where


def join(where: Where, name: str) -> Where:
    """The location of file ``name`` in the folder ``where``."""
    return f"{where}/{name}" if is_url(where) else Path(where) / name


def open_file(where: Where, name: str) -> IO[bytes]:
    """File ``name`` of the folder ``where``, opened for reading (bytes).

    Raises:
        OSError: it cannot be opened (missing, no access, no network).
    """
    if not is_url(where):
        return open(Path(where) / name, "rb")
    import fsspec

    try:
        return fsspec.open(join(where, name), "rb").open()
    except (ImportError, ValueError) as exc:  # an unknown protocol, its package absent
        raise OSError(f"{join(where, name)}: cannot open ({exc})") from None


def file_size(where: Where, name: str) -> int | None:
    """The size in bytes of file ``name`` of the folder ``where``; None if it is not
    there (or cannot be reached)."""
    if not is_url(where):
        file = Path(where) / name
        return file.stat().st_size if file.is_file() else None
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(join(where, name))
        info = fs.info(path)
    except (OSError, ImportError, ValueError):
        return None
    size = info.get("size")
    return None if info.get("type") == "directory" or size is None else int(size)
