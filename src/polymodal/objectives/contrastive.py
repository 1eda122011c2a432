"""Contrastive objectives: symmetric InfoNCE between modality pairs (CLIP, ImageBind),
with a learnable temperature, duplicates kept out of the negatives, an optional queue
of past negatives, and a gather across processes that keeps the local gradient."""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from polymodal.data.dataset import Batch
from polymodal.fusion.base import module_key
from polymodal.objectives.step import Step


def content_hash(inputs: torch.Tensor | list[str]) -> torch.Tensor:
    """(B,) float64 fingerprints of a column's collated inputs: equal for rows with the
    same content (a caption repeated, one picture on two rows), and comparable across
    processes, so duplicates can be kept out of each other's negatives."""
    if not isinstance(inputs, torch.Tensor):
        return torch.tensor([float(zlib.crc32(s.encode())) for s in inputs], dtype=torch.float64)
    flat = inputs.detach().reshape(len(inputs), -1).to(torch.float64)
    weights = torch.sin(torch.arange(flat.shape[1], dtype=torch.float64, device=flat.device)
                        * 12.9898 + 78.233)
    return flat @ weights


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every process (rank order) with this process's slice still
    carrying its gradient; ``x`` itself outside distributed runs."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.zeros_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    parts[dist.get_rank()] = x
    return torch.cat(parts)


def info_nce(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor, *,
             exclude: torch.Tensor | None = None, extra_a: torch.Tensor | None = None,
             extra_b: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE of L2-normalised pairs: row i of ``a`` against row i of ``b``.

    Args:
        a, b: (N, D) embeddings, normalised; row i of each is a positive pair.
        logit_scale: the inverse temperature (a scalar, not its log).
        exclude: (N, N) bool, True where j must not be a negative of i (a duplicate:
            another row with the same content). The diagonal is ignored.
        extra_a, extra_b: (K, D) further negatives for b->a and a->b (a queue).
    """
    logits = logit_scale * a @ b.T
    if exclude is not None:
        off = exclude & ~torch.eye(len(a), dtype=torch.bool, device=a.device)
        logits = logits.masked_fill(off, float("-inf"))
    target = torch.arange(len(a), device=a.device)
    ab, ba = logits, logits.T
    if extra_b is not None and len(extra_b):
        ab = torch.cat([ab, logit_scale * a @ extra_b.T], dim=1)
    if extra_a is not None and len(extra_a):
        ba = torch.cat([ba, logit_scale * b @ extra_a.T], dim=1)
    return (nn.functional.cross_entropy(ab, target) + nn.functional.cross_entropy(ba, target)) / 2


class NegativeQueue(nn.Module):
    """The last ``size`` embeddings of one column, detached: extra negatives that make a
    small batch act like a larger one (MoCo's queue, without a momentum encoder, so its
    entries are a few steps stale; that suits locked towers best)."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("items", torch.zeros(0, dim), persistent=False)

    def push(self, x: torch.Tensor) -> None:
        self.items = torch.cat([x.detach(), self.items])[: self.size]


class ContrastiveLoss(nn.Module):
    """InfoNCE over every pair of columns present together in a row, or between one
    anchor column and each other column (ImageBind); rows lacking a column leave only
    that column's pairs.

    Args:
        columns: the embedded columns.
        dim: the embedding size.
        anchor: None for every pair; a column name to pair every other column with it.
        temperature: the initial temperature.
        learn_temperature: learn the temperature (clamped at 1/100, as CLIP does).
        queue_size: past embeddings per column kept as extra negatives (0: none).
    """

    def __init__(self, columns: Sequence[str], dim: int, *, anchor: str | None = None,
                 temperature: float = 0.07, learn_temperature: bool = True,
                 queue_size: int = 0) -> None:
        super().__init__()
        self.columns = sorted(columns)
        if anchor is not None and anchor not in self.columns:
            raise ValueError(f"anchor {anchor!r} is not one of the columns {self.columns}")
        self.anchor = anchor
        scale = torch.tensor(math.log(1 / temperature))
        self.log_scale = nn.Parameter(scale, requires_grad=learn_temperature)
        self.queues = nn.ModuleDict({module_key(c): NegativeQueue(queue_size, dim)
                                     for c in self.columns} if queue_size else {})

    def pairs(self) -> list[tuple[str, str]]:
        if self.anchor is None:
            return list(itertools.combinations(self.columns, 2))
        return [(self.anchor, c) for c in self.columns if c != self.anchor]

    def scale(self) -> torch.Tensor:
        """The inverse temperature, clamped at 100 as CLIP does."""
        return self.log_scale.clamp(max=math.log(100)).exp()

    @property
    def temperature(self) -> float:
        return float(1 / self.scale().detach())

    def forward(self, embeddings: Mapping[str, torch.Tensor],
                present: Mapping[str, torch.Tensor],
                groups: Mapping[str, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The mean loss over the pairs that have rows, and each pair's loss.

        ``groups`` gives, per column, a content id per row: rows with the same id hold
        the same file or text and are not each other's negatives.
        """
        scale = self.scale()
        emb = {c: gather_with_grad(embeddings[c]) for c in self.columns}
        has = {c: gather_with_grad(present[c].to(torch.uint8)).bool() for c in self.columns}
        ids = {c: gather_with_grad(groups[c]) for c in self.columns} if groups else None
        losses: dict[str, torch.Tensor] = {}
        for ca, cb in self.pairs():
            both = has[ca] & has[cb]
            if int(both.sum()) < 2:
                continue
            exclude = None
            if ids is not None:
                ga, gb = ids[ca][both], ids[cb][both]
                exclude = (ga[:, None] == ga[None]) | (gb[:, None] == gb[None])
            qa = self._queued(ca)
            qb = self._queued(cb)
            losses[f"{ca}~{cb}"] = info_nce(emb[ca][both], emb[cb][both], scale,
                                            exclude=exclude, extra_a=qa, extra_b=qb)
        if self.training and self.queues:
            for c in self.columns:
                self.queues[module_key(c)].push(emb[c][has[c]])
        if not losses:
            return next(iter(embeddings.values())).sum() * 0.0, losses
        return torch.stack(list(losses.values())).mean(), losses

    def step(self, model: nn.Module, batch: Batch, stage: str) -> Step:
        """The loss of a batch of ``model`` (a ContrastiveModel): its embeddings, with
        rows of identical content kept out of each other's negatives; nothing to learn
        (``loss`` None) when no pair has two rows."""
        embeddings, present = model(batch)
        groups = {c: content_hash(batch.inputs[c]).to(embeddings[c].device)
                  for c in self.columns}
        loss, per_pair = self(embeddings, present, groups)
        logs = {f"{stage}_loss": loss,
                **{f"{stage}_loss/{pair}": value for pair, value in per_pair.items()}}
        if stage == "train":
            logs["temperature"] = torch.tensor(self.temperature)
        return Step(loss if per_pair else None, logs, shown=(f"{stage}_loss",))

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The temperature, when it is learnt: trained without weight decay."""
        return [{"params": [self.log_scale], "weight_decay": 0.0}] \
            if self.log_scale.requires_grad else []

    def _queued(self, column: str) -> torch.Tensor | None:
        if not self.queues:
            return None
        return self.queues[module_key(column)].items
