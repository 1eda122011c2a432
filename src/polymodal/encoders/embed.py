"""Embed one column of a manifest (or a shard folder) with one encoder and write the
vectors with their ids (Parquet, or .npy with a sidecar .ids.txt), streaming: memory is
bounded by the batch. Several processes: :mod:`polymodal.encoders.embed_parallel`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from polymodal.data import Manifest, MultimodalDataset, SkipReport
from polymodal.data.dataset import iterate_with_report
from polymodal.data.errors import OnError
from polymodal.data.rows import Rows, read_rows, row_numbers
from polymodal.data.shard_source import ShardSource
from polymodal.encoders.base import ModalityEncoder
from polymodal.encoders.cache import CachedEncoder, CachedFeatures
from polymodal.encoders.registry import build_encoder
from polymodal.progress import progress_bar


@dataclass
class EmbedResult:
    """What :func:`embed_manifest` wrote."""

    path: Path
    rows: int
    embedded: int
    missing: int
    dim: int
    skipped: int
    skip_report: Path | None = None


def pick_column(manifest: Manifest, modality: str, column: str | None) -> str:
    """The column to embed: the given one, else the only column of that modality."""
    columns = [c for c, role in manifest.modality_columns.items() if role.value == modality]
    if column is not None:
        if column not in manifest.modality_columns:
            raise ValueError(f"column {column!r} is not a modality column of "
                             f"{manifest.source}; modality columns: "
                             f"{list(manifest.modality_columns)}")
        if manifest.modality_columns[column].value != modality:
            raise ValueError(f"column {column!r} holds {manifest.modality_columns[column].value}"
                             f", but the encoder takes {modality}")
        return column
    if not columns:
        raise ValueError(f"{manifest.source} has no {modality} column for this encoder")
    if len(columns) > 1:
        raise ValueError(f"{manifest.source} has several {modality} columns {columns}; "
                         "choose one with column=... (--column)")
    return columns[0]


def fit_if_needed(encoder: ModalityEncoder, manifest: Rows, column: str) -> None:
    """Fit a vocabulary-type encoder on the column's training rows (all rows without a
    split column)."""
    if encoder.is_fitted:
        return
    if isinstance(manifest, ShardSource):
        train = manifest.split("train") if "train" in manifest.splits else manifest
        encoder.fit(train.cells(column))
        return
    train = manifest.split("train") if manifest.schema.split else manifest
    encoder.fit(train.decode(r, column) for r in range(len(train)))


def embed_manifest(manifest: Rows | str | os.PathLike[str], encoder: str | ModalityEncoder,
                   out: str | os.PathLike[str], *, column: str | None = None,
                   batch_size: int = 64, num_workers: int = 0,
                   cache_dir: str | os.PathLike[str] | None = None,
                   on_error: OnError = "raise", show_progress: bool = True,
                   processes: int = 1) -> EmbedResult:
    """Write the pooled embedding of every row's ``column`` to ``out``.

    ``manifest`` is a manifest or a shard folder (``polymodal shard``). Rows that lack
    the modality get a null (Parquet) or NaN row (.npy). With ``cache_dir``, a frozen
    encoder's outputs are cached and reused by later runs (manifests: the cache keys a
    cell by its file's content). ``processes`` > 1 embeds a share of the rows in each of
    that many processes (:func:`~polymodal.encoders.embed_parallel.embed_in_processes`).
    """
    if processes > 1:
        from polymodal.encoders.embed_parallel import embed_in_processes

        return embed_in_processes(manifest, encoder, out, processes=processes,
                                  column=column, batch_size=batch_size,
                                  on_error=on_error, show_progress=show_progress)
    manifest = read_rows(manifest, on_error)
    shards = isinstance(manifest, ShardSource)
    if shards and cache_dir is not None:
        raise ValueError(f"{manifest.source}: the feature cache keys a cell by its file's "
                         "content; a shard folder streams decoded rows: embed it without "
                         "a cache (or embed the manifest it was written from)")
    enc = build_encoder(encoder) if isinstance(encoder, str) else encoder
    column = pick_column(manifest, enc.modality, column)
    fit_if_needed(enc, manifest, column)
    enc.eval()
    out = Path(out)
    if out.suffix not in (".parquet", ".npy"):
        raise ValueError(f"{out}: write .parquet or .npy")
    out.parent.mkdir(parents=True, exist_ok=True)
    model: ModalityEncoder = enc
    if shards:
        loader = manifest.loader({column: enc.preprocess}, batch_size, columns=[column],
                                 on_error=on_error, num_workers=num_workers)
    elif cache_dir is not None:
        if enc.trainable:
            enc.freeze()
        loader = MultimodalDataset(manifest, columns=[column], on_error=on_error,
                                   cell_loaders={column: CachedFeatures(enc, cache_dir)}
                                   ).loader(batch_size, num_workers=num_workers)
        model = CachedEncoder(enc)
    else:
        loader = MultimodalDataset(manifest, columns=[column], on_error=on_error,
                                   transforms={column: enc.preprocess}
                                   ).loader(batch_size, num_workers=num_workers)
    report = SkipReport(manifest.source)
    n, dim, embedded = len(manifest), enc.output_dim, 0
    ids = manifest.ids()
    writer: pq.ParquetWriter | None = None
    matrix = None
    if out.suffix == ".npy":
        matrix = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=(n, dim))
        matrix[:] = np.nan
    schema = pa.schema([("id", pa.string()), ("row", pa.int64()),
                        ("embedding", pa.list_(pa.float32(), dim))])
    done = np.zeros(n, dtype=bool)
    with torch.no_grad(), progress_bar(f"embedding {column}", n,
                                       enabled=show_progress) as advance:
        for batch in iterate_with_report(loader, report):
            present = batch.present[column]
            vectors = np.full((len(batch), dim), np.nan, dtype=np.float32)
            if present.any():
                inputs = batch.inputs[column]
                lengths = batch.lengths.get(column)
                pooled = model(inputs, lengths).pooled.float().cpu().numpy()
                vectors[present.numpy()] = pooled[present.numpy()]
                embedded += int(present.sum())
            rows = row_numbers(manifest, batch.indices)
            done[rows] = True
            if matrix is not None:
                matrix[rows] = vectors
            else:
                writer = writer or pq.ParquetWriter(out, schema)
                emb = pa.array([v.tolist() if p else None
                                for v, p in zip(vectors, present.tolist(), strict=True)],
                               type=pa.list_(pa.float32(), dim))
                writer.write_table(pa.table({"id": [ids[r] for r in rows], "row": rows,
                                             "embedding": emb}, schema=schema))
            advance(len(batch) + len(batch.skipped))
    if writer is not None:
        writer.close()
    elif matrix is not None:
        matrix.flush()
        del matrix
        out.with_suffix(".ids.txt").write_text("\n".join(ids) + "\n", encoding="utf-8")
    else:  # nothing embedded at all: still write an empty, typed Parquet file
        pq.write_table(schema.empty_table(), out)
    skip_path = None
    if len(report):
        skip_path = report.write(out.with_name(out.stem + ".skipped.csv"))
    return EmbedResult(out, n, embedded, int(done.sum()) - embedded, dim, len(report.rows),
                       skip_path)
