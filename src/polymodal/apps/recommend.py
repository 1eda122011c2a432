"""Multimodal recommendation: items embedded from all their modalities by a pretrained
polymodal model, users given by the items they liked, recommendations by similarity to
a user's history; optionally a two-tower model trained on interactions::

    rec = Recommender("pretrained/").fit("items.csv")
    rec.recommend(["frog-1", "cow"], k=10)                 # content-based
    rec.fit("items.csv", interactions=likes)               # + two towers on the likes
    rec.evaluate(likes, k=10)                              # leave-one-out HR@10, NDCG@10
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from polymodal.data import Manifest


def fuse_item_embeddings(embeddings: dict[str, np.ndarray],
                         columns: Sequence[str] | None = None) -> np.ndarray:
    """One unit vector per item: the mean of its columns' embeddings (NaN rows, where an
    item lacks a column, left out), normalised."""
    stack = np.stack([embeddings[c] for c in (columns or sorted(embeddings))])  # (C, N, D)
    present = ~np.isnan(stack[..., 0])
    total = np.nansum(stack, axis=0)
    counts = present.sum(axis=0)[:, None]
    fused = np.where(counts > 0, total / np.maximum(counts, 1), 0.0)
    norms = np.linalg.norm(fused, axis=1, keepdims=True)
    return (fused / np.maximum(norms, 1e-12)).astype(np.float32)


class TwoTower(nn.Module):
    """A user tower over the mean of the history's item embeddings and an item tower
    over an item's embedding, both residual MLPs into the same space."""

    def __init__(self, dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.user = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.item = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.log_scale = nn.Parameter(torch.tensor(np.log(20.0), dtype=torch.float32))

    def users(self, history_mean: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(history_mean + self.user(history_mean), dim=-1)

    def items(self, items: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(items + self.item(items), dim=-1)


class Recommender:
    """Recommend items of a catalogue from a user's liked items.

    Args:
        model: a saved Pretrainer whose towers embed the items' columns.
        columns: the item columns to embed (default: every column the model has).
        epochs, lr, batch_size, seed: training of the two towers (with interactions).
    """

    def __init__(self, model: str | os.PathLike[str], columns: Sequence[str] | None = None,
                 epochs: int = 30, lr: float = 3e-3, batch_size: int = 128,
                 seed: int = 0) -> None:
        self.model = model
        self.columns = list(columns) if columns is not None else None
        self.epochs, self.lr, self.batch_size, self.seed = epochs, lr, batch_size, seed

    def fit(self, items: Any, interactions: pd.DataFrame | None = None,
            user: str = "user", item: str = "item",
            item_embeddings: dict[str, np.ndarray] | None = None) -> Recommender:
        """Embed the catalogue ``items`` (a manifest); with ``interactions`` (one row
        per user and liked item), also train the two towers on them.

        ``item_embeddings`` (column -> one row per item, as :meth:`Pretrainer.embed`
        returns them for the same manifest) skips the embedding, to reuse it across
        fits."""
        from polymodal.pretraining import Pretrainer

        m = Manifest.read(items)
        if item_embeddings is None:
            pre = Pretrainer.load(self.model)
            known = pre.columns_
        else:
            known = list(item_embeddings)
            bad = {c: len(v) for c, v in item_embeddings.items() if len(v) != len(m)}
            if bad:
                raise ValueError(f"item_embeddings must have one row per item of "
                                 f"{m.source} ({len(m)}); got {bad}")
        columns = self.columns or [c for c in known if c in m.table.columns]
        missing = [c for c in columns if c not in known]
        if not columns or missing:
            raise ValueError(f"{m.source}: columns {missing or columns} are not among the "
                             f"embedded ones {known}")
        self.columns_ = columns
        self.item_ids_ = [str(i) for i in m.ids()]
        self.index_ = {i: n for n, i in enumerate(self.item_ids_)}
        embedded = item_embeddings if item_embeddings is not None else pre.embed(m, columns)
        self.embeddings_ = fuse_item_embeddings(embedded, columns)
        self.popularity_ = np.zeros(len(self.item_ids_))
        self.towers_: TwoTower | None = None
        if interactions is not None:
            histories = self._histories(interactions, user, item)
            for liked in histories.values():
                self.popularity_[liked] += 1
            self.towers_ = self._train(histories)
        return self

    def _histories(self, interactions: pd.DataFrame, user: str, item: str
                   ) -> dict[str, list[int]]:
        for col in (user, item):
            if col not in interactions.columns:
                raise ValueError(f"interactions need a {col!r} column; they have "
                                 f"{list(interactions.columns)}")
        unknown = sorted(set(interactions[item].astype(str)) - set(self.index_))
        if unknown:
            raise ValueError(f"interactions name {len(unknown)} items not in the catalogue, "
                             f"e.g. {unknown[:3]}")
        out: dict[str, list[int]] = {}
        for u, i in zip(interactions[user].astype(str), interactions[item].astype(str),
                        strict=True):
            out.setdefault(u, []).append(self.index_[i])
        return out

    def _train(self, histories: dict[str, list[int]]) -> TwoTower:
        """In-batch softmax: each liked item against the mean of the user's other
        likes; the other items of the batch are the negatives."""
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        items = torch.from_numpy(self.embeddings_)
        pairs = [(h, i) for h in histories.values() if len(h) > 1 for i in range(len(h))]
        if not pairs:
            raise ValueError("two-tower training needs users with two or more liked items")
        towers = TwoTower(items.shape[1])
        optimizer = torch.optim.AdamW(towers.parameters(), lr=self.lr, weight_decay=1e-4)
        for _ in range(self.epochs):
            order = rng.permutation(len(pairs))  # each pair once per epoch
            for start in range(0, len(pairs), self.batch_size):
                batch = [pairs[j] for j in order[start: start + self.batch_size]]
                context = torch.stack([items[[x for k, x in enumerate(h) if k != i]].mean(0)
                                       for h, i in batch])
                targets = torch.tensor([h[i] for h, i in batch])
                u, v = towers.users(context), towers.items(items[targets])
                logits = towers.log_scale.exp() * u @ v.T
                same = targets[:, None] == targets[None]  # a repeated item is no negative
                logits = logits.masked_fill(same & ~torch.eye(len(batch), dtype=torch.bool),
                                            float("-inf"))
                loss = nn.functional.cross_entropy(logits, torch.arange(len(batch)))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return towers.eval()

    # -- recommend ------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "embeddings_"):
            raise RuntimeError("this Recommender is not fitted: call fit(items) first")

    @torch.no_grad()
    def scores(self, liked: Sequence[str], method: str = "auto") -> np.ndarray:
        """A score for every catalogue item given the ``liked`` item ids.

        ``method``: "content" (cosine to the mean of the liked items' embeddings),
        "two-tower" (the trained towers), "popularity", or "auto" (two-tower when
        trained, else content)."""
        self._check_fitted()
        unknown = [i for i in liked if str(i) not in self.index_]
        if unknown:
            raise ValueError(f"unknown item ids {unknown[:5]}; the catalogue has "
                             f"{len(self.item_ids_)} items")
        rows = [self.index_[str(i)] for i in liked]
        if method == "auto":
            method = "two-tower" if self.towers_ is not None else "content"
        if method == "popularity":
            return self.popularity_.astype(float).copy()
        if not rows:
            return self.popularity_.astype(float).copy()  # nothing liked yet
        mean = self.embeddings_[rows].mean(axis=0)
        if method == "content":
            return self.embeddings_ @ (mean / max(float(np.linalg.norm(mean)), 1e-12))
        if method == "two-tower":
            if self.towers_ is None:
                raise ValueError("two-tower scores need fit(items, interactions=...)")
            u = self.towers_.users(torch.from_numpy(mean)[None])
            v = self.towers_.items(torch.from_numpy(self.embeddings_))
            return (u @ v.T)[0].numpy()
        raise ValueError(f"unknown method {method!r}: content, two-tower, popularity, auto")

    def recommend(self, liked: Sequence[str], k: int = 10, method: str = "auto",
                  exclude_liked: bool = True) -> pd.DataFrame:
        """The ``k`` best items (id, score), best first, without the liked ones."""
        s = self.scores(liked, method)
        if exclude_liked:
            s[[self.index_[str(i)] for i in liked]] = -np.inf
        top = np.argsort(-s, kind="stable")[:k]
        return pd.DataFrame({"item": [self.item_ids_[i] for i in top], "score": s[top]})

    def evaluate(self, interactions: pd.DataFrame, k: int = 10, method: str = "auto",
                 user: str = "user", item: str = "item") -> dict[str, float]:
        """Leave-one-out: each user's last liked item is held out and ranked against
        every item the user has not liked; HitRate@k and NDCG@k over users."""
        self._check_fitted()
        hits, gains = [], []
        for liked in self._histories(interactions, user, item).values():
            if len(liked) < 2:
                continue
            held, rest = liked[-1], liked[:-1]
            s = self.scores([self.item_ids_[i] for i in rest], method)
            s[rest] = -np.inf
            rank = int((s > s[held]).sum())  # 0-based rank of the held-out item
            hits.append(rank < k)
            gains.append(1 / np.log2(rank + 2) if rank < k else 0.0)
        if not hits:
            raise ValueError("no user has two or more liked items to leave one out")
        return {f"hit_rate@{k}": float(np.mean(hits)), f"ndcg@{k}": float(np.mean(gains)),
                "users": float(len(hits))}


def simulate_users(items: Manifest, n_users: int = 200, likes: tuple[int, int] = (5, 12),
                   category: str = "label", seed: int = 0) -> pd.DataFrame:
    """Users whose tastes follow categories: each likes one or two categories and picks
    liked items mostly (85%) from them, the rest at random. Returns (user, item) rows in
    the order the items were liked."""
    rng = np.random.default_rng(seed)
    ids = [str(i) for i in items.ids()]
    cats = items.table[category].astype(str).to_numpy()
    by_cat = {c: np.flatnonzero(cats == c) for c in np.unique(cats)}
    names = sorted(by_cat)
    rows = []
    for u in range(n_users):
        favourite = rng.choice(names, size=min(len(names), int(rng.integers(1, 3))),
                               replace=False)
        pool = np.concatenate([by_cat[c] for c in favourite])
        n = int(rng.integers(likes[0], likes[1] + 1))
        chosen: list[int] = []
        while len(chosen) < min(n, len(ids)):
            source = pool if rng.random() < 0.85 else np.arange(len(ids))
            pick = int(rng.choice(source))
            if pick not in chosen:
                chosen.append(pick)
        rows += [{"user": f"u{u:04d}", "item": ids[i]} for i in chosen]
    return pd.DataFrame(rows)
