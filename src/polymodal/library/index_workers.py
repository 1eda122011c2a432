"""Indexing with the encoders in several processes.

The scan of a source (what is new, changed or gone, by content hash) stays in the
indexing process, and so do the store's writes (one writer per library: LanceDB's
table, milvus-lite's file). What costs, decoding and embedding the new cells and
making their thumbnails, runs in ``processes`` spawned workers, each with the library's
model (or its ONNX export) loaded once and ``cores // processes`` threads: the batches
are handed out in order and their records come back in order, so the store is written
batch by batch as with one process and an interrupted run resumes as one does.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from polymodal.data import Manifest
from polymodal.library.results import IndexReport

#: in a worker: (library, manifest, its ids), set once by :func:`_start`
_WORKER: tuple[Any, Manifest, list[str]] | None = None


def _start(name: str, root: str, manifest: Manifest, threads: int) -> None:
    """A worker's start: its threads, the library (its model loads on first use)."""
    import torch

    from polymodal.library.library import Library

    global _WORKER
    torch.set_num_threads(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    _WORKER = (Library(name, root), manifest, manifest.ids())


def _embed(chunk: list[tuple[int, str, str, str]], contents: dict[tuple[int, str], str],
           source: str) -> tuple[list[dict[str, Any]], IndexReport]:
    """One batch's records, and the report of the cells it left out."""
    from polymodal.library.indexing import embed_records

    assert _WORKER is not None, "a worker runs _start first"
    lib, m, ids = _WORKER
    report = IndexReport()
    return embed_records(lib, m, ids, chunk, source, contents, report, "skip"), report


def embedded_batches(lib: Any, m: Manifest, todo: list[tuple[int, str, str, str]],
                     contents: dict[tuple[int, str], str], source: str, *,
                     batch_size: int, processes: int
                     ) -> Iterator[tuple[list[dict[str, Any]], IndexReport, int]]:
    """(records, report of the cells left out, cells handed in) of each batch of
    ``todo``, in order, embedded by ``processes`` workers."""
    chunks = [todo[i: i + batch_size] for i in range(0, len(todo), batch_size)]
    threads = max(1, (os.cpu_count() or 1) // processes)
    context = multiprocessing.get_context("spawn")  # no forked torch, LanceDB or sqlite
    with ProcessPoolExecutor(processes, mp_context=context, initializer=_start,
                             initargs=(lib.name, str(Path(lib.folder).parent), m,
                                       threads)) as pool:
        futures = []
        for chunk in chunks:
            rows = {row for row, *_ in chunk}
            mine = {k: v for k, v in contents.items() if k[0] in rows}
            futures.append(pool.submit(_embed, chunk, mine, source))
        for chunk, future in zip(chunks, futures, strict=True):
            records, report = future.result()
            yield records, report, len(chunk)
