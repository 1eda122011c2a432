"""Rows to learn from or embed: a manifest's, or a shard folder's.

Wherever polymodal reads a manifest it also reads a folder written by ``polymodal
shard``: :func:`read_rows` opens either; a :class:`~polymodal.data.shard_source.
ShardSource` answers what a manifest is asked (labels, ids, presence per column,
subsets, splits), and streams its rows instead of decoding files.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from polymodal.data.errors import OnError, Problem
from polymodal.data.manifest import Manifest
from polymodal.data.shard_source import ShardSource, is_shard_folder, open_shards

#: what the estimators and embedding read rows from
Rows = Manifest | ShardSource


def open_rows(data: Any, on_error: OnError = "raise") -> ShardSource | None:
    """``data`` opened as a shard folder when it is one (a path written by
    ``polymodal shard``, or a :class:`ShardSource`), else None (read it as a manifest)."""
    if isinstance(data, ShardSource):
        return data
    if isinstance(data, str | os.PathLike) and is_shard_folder(data):
        return open_shards(data, on_error=on_error)
    return None


def are_shards(data: Any) -> bool:
    """Is ``data`` a shard folder (a path or URL of one, or a :class:`ShardSource`)?
    It is not opened."""
    return isinstance(data, ShardSource) or (isinstance(data, str | os.PathLike)
                                             and is_shard_folder(data))


def read_rows(data: Any, on_error: OnError = "raise", **manifest_options: Any) -> Rows:
    """``data`` as rows: a shard folder opened, anything else read as a manifest."""
    shards = open_rows(data, on_error)
    return shards if shards is not None else Manifest.read(data, **manifest_options)


def problems_opening(m: Rows) -> list[Problem]:
    """The rows of shards found missing or truncated when ``m`` was opened (skipped
    under ``on_error="skip"``); none for a manifest."""
    return list(m.problems) if isinstance(m, ShardSource) else []


def row_numbers(m: Rows, indices: torch.Tensor) -> np.ndarray:
    """A batch's rows counted in ``m`` (a shard batch's indices are folder positions)."""
    rows = indices.numpy()
    return m.rows_of(rows) if isinstance(m, ShardSource) else rows
