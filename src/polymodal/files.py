"""Files written so that a crash leaves the old one or the new one, never part of one,
and their SHA-256: shared by saved models, training checkpoints, libraries, the fast
path's indexes and ONNX exports. Imports nothing heavy (no torch)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def replace_atomically(tmp: Path, target: Path) -> None:
    """Flush ``tmp`` to disk and rename it over ``target`` (same folder)."""
    with tmp.open("rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, target)


def write_atomically(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one,
    never a part of the new one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        replace_atomically(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
