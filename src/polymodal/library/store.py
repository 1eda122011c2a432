"""Vector stores behind a library: LanceDB on local disk (the default: in process, no
server) and Milvus (milvus-lite in a file here; the same client against a cluster).

A store holds *facets*: one row per (item, column), keyed by ``key``, with its vector
and what search results show. Both stores take and give the same records."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: the fields of a facet record besides its vector
FIELDS = ("key", "item", "column", "modality", "content", "source", "path", "text",
          "thumbnail", "metadata")


class VectorStore(ABC):
    """Facets with vectors: upsert by key, delete, search by cosine similarity."""

    dim: int

    @abstractmethod
    def upsert(self, records: Sequence[dict[str, Any]]) -> None:
        """Insert records, replacing those with the same ``key``."""

    @abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Remove the records with these keys."""

    @abstractmethod
    def contents(self, source: str | None = None) -> dict[str, str]:
        """key -> content hash of every record (of one source)."""

    @abstractmethod
    def search(self, vector: np.ndarray, k: int, modality: str | None = None
               ) -> list[dict[str, Any]]:
        """The ``k`` nearest records (cosine), best first, each with ``score``."""

    @abstractmethod
    def count(self) -> int:
        """How many records the store holds."""

    @abstractmethod
    def get(self, key: str) -> dict[str, Any] | None:
        """The record with this key (without its vector), or None."""

    @abstractmethod
    def sample(self, n: int, modality: str | None = None) -> list[dict[str, Any]]:
        """Up to ``n`` records (without vectors), of one modality if given: what a
        library holds, shown before anything is searched."""


def _escape(value: str) -> str:
    return value.replace("'", "''")


def ann_index_config(n: int) -> Any:
    """The ANN index a LanceDB library builds once it holds ``n`` >= INDEX_FROM vectors:
    IVF partitions (about sqrt(n)) with an HNSW graph and 8-bit scalar quantisation in
    each; recall against exact search is in docs/benchmarks.md."""
    from lancedb.index import IvfHnswSq

    return IvfHnswSq(distance_type="cosine", num_partitions=max(16, int(np.sqrt(n))))


#: vectors from which a library builds an ANN index (below it, an exact scan is fast)
INDEX_FROM = 100_000
#: partitions probed per query once indexed
NPROBES = 20
#: once indexed, the best REFINE_FACTOR x k candidates of the quantised index are
#: re-ranked by their full vectors (at 1M vectors Recall@10 0.84 without, 0.997 with 5)
REFINE_FACTOR = 5


class LanceStore(VectorStore):
    """A LanceDB table in ``folder`` (created on first use). Exact search until the
    table holds :data:`INDEX_FROM` vectors, then an ANN index (:meth:`build_index`)."""

    TABLE = "facets"

    def __init__(self, folder: str | Path, dim: int) -> None:
        from datetime import timedelta

        import lancedb

        self.dim = dim
        # every read sees the latest version: an indexer and a server may share a library
        self.db = lancedb.connect(str(folder), read_consistency_interval=timedelta(0))
        self._table = None
        if self.TABLE in self.db.list_tables().tables:
            self._table = self.db.open_table(self.TABLE)
            width = self._table.schema.field("vector").type.list_size
            if width != dim:
                raise ValueError(f"{folder}: the library holds {width}-d vectors, the model "
                                 f"gives {dim}-d: index into a new library or use its model")

    def _schema(self) -> Any:
        import pyarrow as pa

        return pa.schema([*(pa.field(f, pa.string()) for f in FIELDS),
                          pa.field("vector", pa.list_(pa.float32(), self.dim))])

    def _opened(self) -> bool:
        """Is there a table to read? Opens it when another process (an indexer) has
        created it since this store was made: a server started on an empty library sees
        what is indexed later, without a restart."""
        if self._table is None and self.TABLE in self.db.list_tables().tables:
            try:
                self._table = self.db.open_table(self.TABLE)
            except (ValueError, FileNotFoundError):  # listed while still being created
                return False
        return self._table is not None

    @property
    def table(self) -> Any:
        if self._table is None:
            self._table = self.db.create_table(self.TABLE, schema=self._schema(),
                                               exist_ok=True)
        return self._table

    def upsert(self, records: Sequence[dict[str, Any]]) -> None:
        if not records:
            return
        import pyarrow as pa

        rows = pa.Table.from_pylist([_row(r) for r in records], schema=self._schema())
        (self.table.merge_insert("key").when_matched_update_all()
         .when_not_matched_insert_all().execute(rows))

    def delete(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        for i in range(0, len(keys), 500):
            chunk = ", ".join(f"'{_escape(k)}'" for k in keys[i: i + 500])
            self.table.delete(f"key IN ({chunk})")

    def contents(self, source: str | None = None) -> dict[str, str]:
        if not self._opened():
            return {}
        query = self.table.search().select(["key", "content"])
        if source is not None:
            query = query.where(f"source = '{_escape(source)}'")
        frame = query.limit(None).to_arrow()
        return dict(zip(frame["key"].to_pylist(), frame["content"].to_pylist(), strict=True))

    def search(self, vector: np.ndarray, k: int, modality: str | None = None
               ) -> list[dict[str, Any]]:
        if not self._opened():
            return []
        # nprobes and the refine factor matter once an ANN index exists and are ignored
        # by an exact scan, so the hot path need not ask which one this table has
        query = (self.table.search(np.asarray(vector, np.float32)).metric("cosine")
                 .nprobes(NPROBES).refine_factor(REFINE_FACTOR).limit(k))
        if modality is not None:
            query = query.where(f"modality = '{_escape(modality)}'", prefilter=True)
        out = []
        for r in query.to_list():
            r["score"] = 1.0 - float(r.pop("_distance"))
            r.pop("vector", None)
            out.append(_unrow(r))
        return out

    def count(self) -> int:
        return int(self.table.count_rows()) if self._opened() else 0

    @property
    def indexed(self) -> bool:
        return self._table is not None and any(
            "vector" in ix.columns for ix in self.table.list_indices())

    def build_index(self) -> None:
        """Build (or rebuild) the ANN index over the vectors."""
        n = self.count()
        if n:
            self.table.create_index("vector", config=ann_index_config(n), replace=True)

    def get(self, key: str) -> dict[str, Any] | None:
        if not self._opened():
            return None
        rows = (self.table.search().where(f"key = '{_escape(key)}'").select(list(FIELDS))
                .limit(1).to_list())
        return _unrow(rows[0]) if rows else None

    def sample(self, n: int, modality: str | None = None) -> list[dict[str, Any]]:
        if not self._opened() or n < 1:
            return []
        query = self.table.search().select(list(FIELDS))
        if modality is not None:
            query = query.where(f"modality = '{_escape(modality)}'")
        return [_unrow(r) for r in query.limit(n).to_list()]


class MilvusStore(VectorStore):
    """A Milvus collection: ``uri`` is a local file (milvus-lite, in process) or a
    server address (``http://host:19530``), with ``token`` for a secured cluster."""

    COLLECTION = "facets"

    def __init__(self, uri: str, dim: int, token: str | None = None) -> None:
        from pymilvus import DataType, MilvusClient

        self.dim = dim
        self.client = MilvusClient(uri=uri, token=token or "")
        if not self.client.has_collection(self.COLLECTION):
            schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=2048)
            for f in FIELDS[1:]:
                schema.add_field(f, DataType.VARCHAR, max_length=65535)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
            index = self.client.prepare_index_params()
            index.add_index("vector", index_type="FLAT", metric_type="COSINE")
            self.client.create_collection(self.COLLECTION, schema=schema, index_params=index)
        else:
            desc = self.client.describe_collection(self.COLLECTION)
            width = next(f["params"]["dim"] for f in desc["fields"] if f["name"] == "vector")
            if int(width) != dim:
                raise ValueError(f"{uri}: the library holds {width}-d vectors, the model "
                                 f"gives {dim}-d")

    def upsert(self, records: Sequence[dict[str, Any]]) -> None:
        if records:
            self.client.upsert(self.COLLECTION, [_row(r) for r in records])

    def delete(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        if keys:
            self.client.delete(self.COLLECTION, ids=keys)

    def contents(self, source: str | None = None) -> dict[str, str]:
        expr = f'source == "{_quote(source)}"' if source is not None else 'key != ""'
        out: dict[str, str] = {}
        iterator = self.client.query_iterator(self.COLLECTION, batch_size=1000, filter=expr,
                                              output_fields=["key", "content"])
        while batch := iterator.next():
            out.update({r["key"]: r["content"] for r in batch})
        iterator.close()
        return out

    def search(self, vector: np.ndarray, k: int, modality: str | None = None
               ) -> list[dict[str, Any]]:
        hits = self.client.search(
            self.COLLECTION, data=[np.asarray(vector, np.float32).tolist()], limit=k,
            filter=f'modality == "{_quote(modality)}"' if modality else "",
            output_fields=list(FIELDS), search_params={"metric_type": "COSINE"})[0]
        return [_unrow({**h["entity"], "score": float(h["distance"])}) for h in hits]

    def count(self) -> int:
        stats = self.client.get_collection_stats(self.COLLECTION)
        return int(stats.get("row_count", 0))

    def get(self, key: str) -> dict[str, Any] | None:
        rows = self.client.get(self.COLLECTION, ids=[key], output_fields=list(FIELDS))
        return _unrow(rows[0]) if rows else None

    def sample(self, n: int, modality: str | None = None) -> list[dict[str, Any]]:
        if n < 1:
            return []
        expr = f'modality == "{_quote(modality)}"' if modality is not None else 'key != ""'
        rows = self.client.query(self.COLLECTION, filter=expr, limit=n,
                                 output_fields=list(FIELDS))
        return [_unrow(r) for r in rows]

    def drop(self) -> None:
        """Drop the library's collection (a library deleted or given a new model)."""
        if self.client.has_collection(self.COLLECTION):
            self.client.drop_collection(self.COLLECTION)


def _quote(value: str) -> str:
    """A value inside a Milvus filter's double quotes."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _row(record: dict[str, Any]) -> dict[str, Any]:
    row = {f: record.get(f) or "" for f in FIELDS}
    if not isinstance(row["metadata"], str):
        row["metadata"] = json.dumps(row["metadata"], default=str)
    row["vector"] = np.asarray(record["vector"], np.float32).tolist()
    return row


def _unrow(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    try:
        out["metadata"] = json.loads(out.get("metadata") or "{}")
    except json.JSONDecodeError:
        out["metadata"] = {}
    return out
