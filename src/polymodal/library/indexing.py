"""Indexing a library: the one-indexer-at-a-time lock, the incremental scan of a source
(new or changed cells by content hash, gone ones forgotten), the embedding of cells into
store records, and the JPEG thumbnails those records show. :class:`Library.index
<polymodal.library.library.Library.index>` is the public face."""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from polymodal.data import Manifest
from polymodal.data.errors import MediaError, PolymodalError, SkipReport
from polymodal.data.schema import Role
from polymodal.files import write_atomically
from polymodal.library.results import IndexReport

if TYPE_CHECKING:
    from polymodal.library.library import Library

#: the last index run's bad cells, one CSV line each (row, column, kind, reason, path)
SKIPPED = "skipped_rows.csv"
THUMBNAIL_SIZE = 256
#: the only names a thumbnail has: the first two hex digits of its content hash,
#: then the hash (see :func:`thumbnail`)
THUMBNAIL_NAME = re.compile(r"thumbnails/[0-9a-f]{2}/[0-9a-f]{40}\.jpg")


class LibraryBusy(PolymodalError, RuntimeError):
    """Another process is indexing this library (one indexer at a time)."""


@contextlib.contextmanager
def index_lock(folder: Path, name: str) -> Iterator[None]:
    """One indexer at a time per library: a second one is refused with a clear
    message instead of racing (searches go on: LanceDB reads a consistent
    version)."""
    import fcntl

    path = folder / "index.lock"
    with path.open("a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise LibraryBusy(f"library {name!r} is being indexed by {holder}; "
                              "wait for it to finish (an interrupted run releases "
                              "the lock when its process ends)") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)


def index_source(lib: Library, source: str | os.PathLike[str] | Any, *, batch_size: int,
                 progress: bool, on_error: str, confine: bool | None,
                 roles: dict[str, str] | None = None, processes: int = 1) -> IndexReport:
    """Store the new or changed cells of ``source`` in ``lib``'s store, a batch at a
    time, and delete the ones of this source that are gone (the caller holds the
    index lock); ``processes`` > 1 embeds the batches in that many worker processes
    (:mod:`polymodal.library.index_workers`)."""
    from polymodal.encoders.cache import content_key
    from polymodal.progress import progress_bar

    if confine is None:
        confine = isinstance(source, str | os.PathLike) and \
            Path(source).expanduser().is_dir()
    m = Manifest.read(source, confine=confine, roles=roles or None)
    source_id = str(m.source)
    known = lib.store.contents(source_id)
    modalities = set(lib.modalities())
    columns = [c for c, role in m.modality_columns.items() if role.value in modalities]
    if not columns:
        raise ValueError(f"{m.source} has no column the library's model embeds "
                         f"({sorted(modalities)})")
    ids = m.ids()
    report = IndexReport(skipped=SkipReport(source_id), embeds=sorted(modalities))
    for c, role in m.modality_columns.items():
        if role.value in modalities:
            continue
        cells = [row for row in range(len(m)) if m.value(row, c) is not None]
        report.left_out[c] = (role.value, len(cells))
        for row in cells:
            report.skipped.add(MediaError(
                f"the library's model embeds {' and '.join(sorted(modalities))}, not "
                f"{role.value}", kind="modality_not_embedded", location=m.location(row, c)))
    todo: list[tuple[int, str, str, str]] = []  # row, column, key, content
    contents: dict[tuple[int, str], str] = {}  # every cell's hash, for thumbnails
    seen: set[str] = set()
    first_row: dict[str, int] = {}
    for row in range(len(m)):
        if ids[row] in first_row:  # its keys would overwrite the first row's facets
            err = MediaError(f"id {ids[row]!r} is also on row {first_row[ids[row]]}; "
                             "the row is not indexed", kind="duplicate_id",
                             location=m.location(row, m.schema.id or "id"))
            if on_error == "raise":
                raise err
            report.skip(err)
            continue
        first_row[ids[row]] = row
        for c in columns:
            try:
                content = content_key(m, row, c)
            except MediaError as err:
                if on_error == "raise":
                    raise
                report.skip(err)
                continue
            if content is None:
                continue
            contents[(row, c)] = content
            key = f"{source_id}::{ids[row]}::{c}"
            seen.add(key)
            if known.get(key) == content:
                report.unchanged += 1
            else:
                todo.append((row, c, key, content))
    gone = [k for k in known if k not in seen]
    lib.store.delete(gone)
    report.deleted = len(gone)
    def batches() -> Iterator[tuple[list[dict[str, Any]], int]]:
        if processes > 1 and len(todo) > batch_size:
            from polymodal.library.index_workers import embedded_batches

            for records, part, n in embedded_batches(lib, m, todo, contents, source_id,
                                                     batch_size=batch_size,
                                                     processes=processes):
                if on_error == "raise" and len(part.skipped):
                    raise next(iter(part.skipped)).to_error()
                report.problems += part.problems
                report.skipped.extend(part.skipped)
                yield records, n
            return
        for start in range(0, len(todo), batch_size):
            chunk = todo[start: start + batch_size]
            yield embed_records(lib, m, ids, chunk, source_id, contents, report,
                                on_error), len(chunk)

    with progress_bar(f"indexing into {lib.name}", len(todo), enabled=progress) as advance:
        for records, n_cells in batches():
            lib.store.upsert(records)
            for r in records:
                if r["key"] in known:
                    report.updated += 1
                else:
                    report.added += 1
            advance(n_cells)
    return report


def embed_records(lib: Library, m: Manifest, ids: list[str],
                  chunk: list[tuple[int, str, str, str]], source: str,
                  contents: dict[tuple[int, str], str], report: IndexReport,
                  on_error: str = "skip") -> list[dict[str, Any]]:
    """Embed a chunk of cells (a batch per column) into store records (on onnxruntime
    where the model has an ONNX export: :mod:`polymodal.export.fastpath`)."""
    from polymodal.export.fastpath import embedder

    by_column: dict[str, list[tuple[int, str, str, Any]]] = {}
    for row, c, key, content in chunk:
        try:
            value = m.decode(row, c)
        except MediaError as err:
            if on_error == "raise":
                raise
            report.skip(err)
            continue
        by_column.setdefault(c, []).append((row, key, content, value))
    meta_columns = [c for c, spec in m.schema.columns.items()
                    if spec.role in (Role.LABEL, Role.CATEGORICAL, Role.NUMERIC)]
    text_columns = [c for c, role in m.modality_columns.items() if role is Role.TEXT]
    image_columns = [c for c, role in m.modality_columns.items() if role is Role.IMAGE]
    shown: dict[int, dict[str, Any]] = {}  # per row: what every facet of it shows

    def show(row: int) -> dict[str, Any]:
        if row not in shown:
            texts = [t for t in (_text_or_none(m, row, t) for t in text_columns) if t]
            shown[row] = {
                "item": ids[row], "source": source, "text": " / ".join(texts),
                "thumbnail": row_thumbnail(lib.folder, m, row, image_columns, contents),
                "metadata": {k: _plain(m.table[k].iloc[row]) for k in meta_columns}}
        return shown[row]

    records = []
    for c, entries in by_column.items():
        modality = m.modality_columns[c].value
        vectors = embedder(lib).embed_values(lib.tower(modality), [e[3] for e in entries])
        for (row, key, content, value), vector in zip(entries, vectors, strict=True):
            path = m.resolve(row, c) if modality != "text" or \
                m.schema[c].source == "path" else None
            record = {**show(row), "key": key, "column": c, "modality": modality,
                      "content": content, "path": str(path) if path else "",
                      "vector": vector}
            if modality == "image":  # a picture shows itself
                record["thumbnail"] = thumbnail(lib.folder, content, value)
            records.append(record)
    return records


def row_thumbnail(folder: Path, m: Manifest, row: int, image_columns: list[str],
                  contents: dict[tuple[int, str], str]) -> str:
    """The thumbnail of a row's first readable picture, shown for its other facets
    too (a caption that matched shows its picture); "" if the row has none."""
    from polymodal.encoders.cache import content_key

    for c in image_columns:
        try:  # hashed during the scan unless the model does not embed pictures
            content = contents.get((row, c)) or content_key(m, row, c)
            if content is not None:
                return thumbnail(folder, content, lambda c=c: m.decode(row, c))
        except MediaError:
            return ""
    return ""


def thumbnail(folder: Path, content: str, image: Image.Image | Any) -> str:
    """A JPEG thumbnail of the picture with hash ``content`` in the library folder
    (made once; ``image`` may be a function that decodes it); its name there."""
    name = f"thumbnails/{content[:2]}/{content}.jpg"
    path = folder / name
    if not path.exists():
        picture = image if isinstance(image, Image.Image) else image()
        path.parent.mkdir(parents=True, exist_ok=True)
        thumb = picture.convert("RGB")
        thumb.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        data = io.BytesIO()
        thumb.save(data, "JPEG", quality=85)
        # a temporary name of this process's: index workers making the thumbnail of
        # one picture at once each rename their own (one shared name lost the race)
        write_atomically(path, data.getvalue())
    return name


def _text_or_none(m: Manifest, row: int, column: str) -> str | None:
    """A row's text for display; a text file that cannot be read shows nothing (its own
    facet reports the problem)."""
    try:
        return m.decode(row, column)
    except MediaError:
        return None


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value
