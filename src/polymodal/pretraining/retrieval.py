"""Cross-modal retrieval metrics: Recall@K, median rank and mAP, computed in chunks of
queries so that memory stays bounded by ``chunk`` x gallery size."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def retrieval_metrics(queries: np.ndarray | torch.Tensor, gallery: np.ndarray | torch.Tensor,
                      relevant: Sequence[Sequence[int]], ks: Sequence[int] = (1, 5, 10),
                      chunk: int = 1024) -> dict[str, float]:
    """Rank ``gallery`` for each query by cosine similarity (inputs L2-normalised).

    Args:
        queries: (Q, D) query embeddings.
        gallery: (G, D) gallery embeddings.
        relevant: for each query, the gallery indices that are correct (at least one).
        ks: the K of Recall@K: the share of queries with a correct item in the top K.
        chunk: queries scored at a time.

    Returns:
        ``R@K`` for each K, ``median_rank`` (1-based rank of the first correct item),
        ``mean_rank`` and ``mAP`` (mean average precision over all correct items),
        and ``queries``.
    """
    q = torch.as_tensor(queries, dtype=torch.float32)
    g = torch.as_tensor(gallery, dtype=torch.float32)
    if len(q) != len(relevant):
        raise ValueError(f"{len(q)} queries but {len(relevant)} relevance lists")
    if any(len(r) == 0 for r in relevant):
        raise ValueError("every query needs at least one relevant gallery item")
    first_ranks = np.zeros(len(q), dtype=np.int64)
    aps = np.zeros(len(q))
    for start in range(0, len(q), chunk):
        scores = q[start: start + chunk] @ g.T
        order = scores.argsort(dim=1, descending=True).numpy()
        for i, ranking in enumerate(order):
            correct = np.zeros(len(g), dtype=bool)
            correct[list(relevant[start + i])] = True
            hits = correct[ranking]
            positions = np.flatnonzero(hits) + 1  # 1-based ranks of the correct items
            first_ranks[start + i] = positions[0]
            aps[start + i] = float(np.mean(np.arange(1, len(positions) + 1) / positions))
    out = {f"R@{k}": float(np.mean(first_ranks <= k)) for k in ks}
    out.update(median_rank=float(np.median(first_ranks)), mean_rank=float(first_ranks.mean()),
               mAP=float(aps.mean()), queries=float(len(q)))
    return out


def chance_metrics(relevant: Sequence[Sequence[int]], gallery_size: int,
                   ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """The expected Recall@K of a random ranking (for the report's chance row)."""
    from math import comb

    out = {}
    for k in ks:
        p = [1 - comb(gallery_size - len(r), k) / comb(gallery_size, k) if k <= gallery_size
             else 1.0 for r in relevant]
        out[f"R@{k}"] = float(np.mean(p))
    out["median_rank"] = float(np.median([(gallery_size + 1) / (len(r) + 1) for r in relevant]))
    return out


def co_occurrence(query_keys: Sequence[str], gallery_keys: Sequence[str]
                  ) -> tuple[list[str], list[str], list[list[int]]]:
    """Unique queries, unique gallery items and, per query, the gallery items it appears
    with in some row: a caption shared by two pictures retrieves both, and a picture
    is counted once however many rows point at it."""
    queries = list(dict.fromkeys(query_keys))
    gallery = list(dict.fromkeys(gallery_keys))
    q_index = {k: i for i, k in enumerate(queries)}
    g_index = {k: i for i, k in enumerate(gallery)}
    relevant: list[set[int]] = [set() for _ in queries]
    for qk, gk in zip(query_keys, gallery_keys, strict=True):
        relevant[q_index[qk]].add(g_index[gk])
    return queries, gallery, [sorted(r) for r in relevant]
