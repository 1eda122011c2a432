"""Embedding in several processes, and the vectors into Milvus.

:func:`embed_in_processes` cuts the rows (a manifest's or a shard folder's) into one
contiguous block per process, each process (spawned, with its share of the cores'
threads) embeds its block with :func:`~polymodal.encoders.embed.embed_manifest` into a
part file, and the parts are joined in row order into the one output a single process
would have written (ids, rows, vectors; the skipped rows' report). A shard folder's
block is a run of its shards, so each process reads its own shards.

:func:`write_to_milvus` loads an embedding file into a Milvus collection (``uri``: a
milvus-lite file here, or a server / cluster address with its ``token``), in batches.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from polymodal.data.errors import OnError
from polymodal.data.rows import Rows, read_rows
from polymodal.encoders.base import ModalityEncoder
from polymodal.encoders.embed import EmbedResult


def blocks(n: int, processes: int) -> list[range]:
    """``processes`` contiguous, near-equal blocks of ``n`` rows (none empty)."""
    edges = np.linspace(0, n, min(processes, max(n, 1)) + 1).round().astype(int)
    return [range(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]


def _embed_block(rows: Rows, block: range, encoder: str | ModalityEncoder, part: Path,
                 options: dict[str, Any], threads: int) -> EmbedResult:
    """One process's work (spawned): embed ``block`` of ``rows`` into ``part``."""
    import torch

    from polymodal.encoders.embed import embed_manifest

    torch.set_num_threads(threads)
    return embed_manifest(rows.subset(np.arange(block.start, block.stop)), encoder, part,
                          show_progress=False, **options)


def embed_in_processes(manifest: Rows | str | os.PathLike[str],
                       encoder: str | ModalityEncoder, out: str | os.PathLike[str], *,
                       processes: int, column: str | None = None, batch_size: int = 64,
                       on_error: OnError = "raise", show_progress: bool = True
                       ) -> EmbedResult:
    """:func:`~polymodal.encoders.embed.embed_manifest` with ``processes`` processes
    (each ``cores // processes`` threads); the same file as one process writes."""
    from concurrent.futures import ProcessPoolExecutor

    from polymodal.progress import progress_bar

    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    rows = read_rows(manifest, on_error)
    if processes == 1 or len(rows) < 2:
        from polymodal.encoders.embed import embed_manifest

        return embed_manifest(rows, encoder, out, column=column, batch_size=batch_size,
                              on_error=on_error, show_progress=show_progress)
    out = Path(out)
    if out.suffix not in (".parquet", ".npy"):
        raise ValueError(f"{out}: write .parquet or .npy")
    out.parent.mkdir(parents=True, exist_ok=True)
    parts_dir = out.parent / f".{out.name}.parts"
    shutil.rmtree(parts_dir, ignore_errors=True)
    parts_dir.mkdir()
    parts = blocks(len(rows), processes)
    threads = max(1, (os.cpu_count() or 1) // len(parts))
    options = {"column": column, "batch_size": batch_size, "on_error": on_error}
    files = [parts_dir / f"part-{k:04d}{out.suffix}" for k in range(len(parts))]
    context = multiprocessing.get_context("spawn")  # no forked torch or sqlite state
    try:
        with ProcessPoolExecutor(len(parts), mp_context=context) as pool, \
                progress_bar(f"embedding in {len(parts)} processes", len(rows),
                             enabled=show_progress) as advance:
            futures = [pool.submit(_embed_block, rows, b, encoder, f, options, threads)
                       for b, f in zip(parts, files, strict=True)]
            results = []
            for block, future in zip(parts, futures, strict=True):
                results.append(future.result())
                advance(len(block))
        return _join(out, parts, files, results)
    finally:
        shutil.rmtree(parts_dir, ignore_errors=True)


def _join(out: Path, parts: list[range], files: list[Path], results: list[EmbedResult]
          ) -> EmbedResult:
    """The parts, in row order, as one output file; their skip reports as one."""
    dim = results[0].dim
    if out.suffix == ".npy":
        matrix = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32,
                                           shape=(parts[-1].stop, dim))
        ids: list[str] = []
        for block, file in zip(parts, files, strict=True):
            matrix[block.start: block.stop] = np.load(file, mmap_mode="r")
            ids += file.with_suffix(".ids.txt").read_text(encoding="utf-8").splitlines()
        matrix.flush()
        del matrix
        out.with_suffix(".ids.txt").write_text("\n".join(ids) + "\n", encoding="utf-8")
    else:
        writer: pq.ParquetWriter | None = None
        for block, file in zip(parts, files, strict=True):
            table = pq.read_table(file)
            shifted = pa.array(np.asarray(table["row"]) + block.start, pa.int64())
            table = table.set_column(table.schema.get_field_index("row"), "row", shifted)
            writer = writer or pq.ParquetWriter(out, table.schema)
            writer.write_table(table)
        if writer is not None:
            writer.close()
    skipped = [f.with_name(f.stem + ".skipped.csv") for f in files]
    skip_path = None
    found = [s for s in skipped if s.exists()]
    if found:
        skip_path = out.with_name(out.stem + ".skipped.csv")
        lines = found[0].read_text(encoding="utf-8").splitlines()[:1]
        for s in found:
            lines += s.read_text(encoding="utf-8").splitlines()[1:]
        skip_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return EmbedResult(out, sum(r.rows for r in results), sum(r.embedded for r in results),
                       sum(r.missing for r in results), dim,
                       sum(r.skipped for r in results), skip_path)


def write_to_milvus(embeddings: str | os.PathLike[str], uri: str, collection: str, *,
                    token: str | None = None, batch_size: int = 1000) -> int:
    """Upsert every vector of an embedding file (``.parquet`` or ``.npy`` + ``.ids.txt``)
    into ``collection`` (made, with a cosine index, if it does not exist): fields ``id``
    (the row's id) and ``vector``. Rows without a vector are left out. Returns the
    count written.

    Raises:
        ValueError: the collection exists with vectors of another width.
    """
    from pymilvus import DataType, MilvusClient

    path = Path(embeddings)
    if path.suffix == ".npy":
        matrix = np.load(path, mmap_mode="r")
        ids = path.with_suffix(".ids.txt").read_text(encoding="utf-8").splitlines()
        batches = ((ids[i: i + batch_size], np.asarray(matrix[i: i + batch_size]))
                   for i in range(0, len(ids), batch_size))
        dim = matrix.shape[1]
    else:
        parquet = pq.ParquetFile(path)
        dim = parquet.schema_arrow.field("embedding").type.list_size
        batches = ((b["id"].to_pylist(), b["embedding"].to_pylist())
                   for b in parquet.iter_batches(batch_size=batch_size))
    client = MilvusClient(uri=uri, token=token or "")
    if not client.has_collection(collection):
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=2048)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        index = client.prepare_index_params()
        index.add_index("vector", index_type="AUTOINDEX", metric_type="COSINE")
        client.create_collection(collection, schema=schema, index_params=index)
    else:
        fields = client.describe_collection(collection)["fields"]
        width = next(int(f["params"]["dim"]) for f in fields if f["name"] == "vector")
        if width != dim:
            raise ValueError(f"{uri}: collection {collection!r} holds {width}-d vectors; "
                             f"{path} holds {dim}-d")
    written = 0
    for ids, vectors in batches:
        rows = [{"id": i, "vector": np.asarray(v, np.float32).tolist()}
                for i, v in zip(ids, vectors, strict=True)
                if v is not None and not np.isnan(np.asarray(v, np.float32)).any()]
        if rows:
            client.upsert(collection, rows)
            written += len(rows)
    client.close()
    return written
