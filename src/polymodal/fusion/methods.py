"""The fusion methods, each a small standalone module."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from polymodal.encoders.base import Encoded
from polymodal.fusion.base import Fusion, module_key, register_fusion


def _mlp(in_dim: int, out_dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(out_dim, out_dim))


@register_fusion("concat")
class ConcatFusion(Fusion):
    """Early fusion: pooled features and presence flags concatenated, then an MLP."""

    def __init__(self, columns: Sequence[str], dim: int, out_dim: int | None = None,
                 dropout: float = 0.1) -> None:
        super().__init__(columns, dim, out_dim)
        m = len(self.columns)
        self.mlp = _mlp(m * dim + m, self.out_dim, dropout)

    def forward(self, encoded: dict[str, Encoded], present: dict[str, torch.Tensor]
                ) -> torch.Tensor:
        flags = self._present(encoded, present)
        return self.mlp(torch.cat([self._pooled(encoded, present).flatten(1), flags], dim=1))


@register_fusion("late")
class LateFusion(Fusion):
    """Decision-level fusion: one tower per column, outputs averaged over the columns a
    row has. With the linear head on top, that is the average of per-column decisions."""

    def __init__(self, columns: Sequence[str], dim: int, out_dim: int | None = None,
                 dropout: float = 0.1) -> None:
        super().__init__(columns, dim, out_dim)
        self.towers = nn.ModuleDict({module_key(c): _mlp(dim, self.out_dim, dropout)
                                     for c in self.columns})

    def forward(self, encoded: dict[str, Encoded], present: dict[str, torch.Tensor]
                ) -> torch.Tensor:
        flags = self._present(encoded, present)  # (B, M)
        outs = torch.stack([self.towers[module_key(c)](encoded[c].pooled) for c in self.columns],
                           dim=1)
        weights = flags / flags.sum(dim=1, keepdim=True).clamp(min=1.0)
        return (outs * weights.unsqueeze(-1)).sum(dim=1)


@register_fusion("gated")
class GatedFusion(Fusion):
    """Learned per-row modality weights (softmax over the present columns) applied to
    their pooled features; ``last_weights`` holds the latest (B, M) weights."""

    def __init__(self, columns: Sequence[str], dim: int, out_dim: int | None = None,
                 dropout: float = 0.1) -> None:
        super().__init__(columns, dim, out_dim)
        m = len(self.columns)
        self.gate = nn.Sequential(nn.Linear(m * dim + m, dim), nn.GELU(), nn.Linear(dim, m))
        self.out = _mlp(dim, self.out_dim, dropout)
        self.last_weights: torch.Tensor | None = None

    def forward(self, encoded: dict[str, Encoded], present: dict[str, torch.Tensor]
                ) -> torch.Tensor:
        flags = self._present(encoded, present)
        pooled = self._pooled(encoded, present)
        logits = self.gate(torch.cat([pooled.flatten(1), flags], dim=1))
        logits = logits.masked_fill(flags == 0, -1e4)
        weights = torch.softmax(logits, dim=1) * (flags.sum(dim=1, keepdim=True) > 0)
        self.last_weights = weights.detach()
        return self.out((weights.unsqueeze(-1) * pooled).sum(dim=1))


@register_fusion("attention")
class AttentionFusion(Fusion):
    """A cross-modal transformer over every column's tokens (each tagged with a learned
    column embedding) and a learned fusion token, whose output is the representation."""

    def __init__(self, columns: Sequence[str], dim: int, out_dim: int | None = None,
                 layers: int = 2, heads: int = 4, dropout: float = 0.1,
                 max_tokens: int = 64) -> None:
        super().__init__(columns, dim, out_dim)
        self.max_tokens = max_tokens
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.column_embedding = nn.Parameter(torch.zeros(len(self.columns), dim))
        nn.init.normal_(self.cls, std=0.02)
        nn.init.normal_(self.column_embedding, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout, batch_first=True,
                                           norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        # Encoders trained from scratch emit tokens of very different scales; one norm per
        # column puts them on a footing before they meet, and pre-LN needs a final norm.
        self.token_norms = nn.ModuleList(nn.LayerNorm(dim) for _ in self.columns)
        self.final_norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, self.out_dim)

    def forward(self, encoded: dict[str, Encoded], present: dict[str, torch.Tensor]
                ) -> torch.Tensor:
        tokens, masks = [], []
        for i, c in enumerate(self.columns):
            e = encoded[c]
            t, m = e.tokens[:, : self.max_tokens], e.mask[:, : self.max_tokens]
            tokens.append(self.token_norms[i](t) + self.column_embedding[i])
            masks.append(m & present[c].to(m.device).unsqueeze(1))
        batch = tokens[0].shape[0]
        x = torch.cat([self.cls.expand(batch, -1, -1), *tokens], dim=1)
        keep = torch.cat([torch.ones(batch, 1, dtype=torch.bool, device=x.device), *masks], 1)
        fused = self.transformer(x, src_key_padding_mask=~keep)[:, 0]
        # a residual path from the present columns' pooled vectors: the fusion token
        # starts from a useful summary instead of diluted attention over many tokens
        pooled = torch.stack([encoded[c].pooled for c in self.columns], 1)
        weight = torch.stack([present[c].to(pooled.device) for c in self.columns], 1).float()
        summary = (pooled * weight.unsqueeze(-1)).sum(1) / weight.sum(1, keepdim=True).clamp(min=1)
        return self.out(self.final_norm(fused + summary))


def _with_one(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, torch.ones_like(x[:, :1])], dim=1)


@register_fusion("tensor")
class TensorFusion(Fusion):
    """Tensor Fusion Network (Zadeh et al. 2017): the outer product of every column's
    features with a 1 appended, so unimodal, bimodal and trimodal terms all appear;
    columns are first reduced to ``rank_dim`` to keep the product small."""

    def __init__(self, columns: Sequence[str], dim: int, out_dim: int | None = None,
                 rank_dim: int = 16, dropout: float = 0.1) -> None:
        super().__init__(columns, dim, out_dim)
        if (rank_dim + 1) ** len(self.columns) > 2_000_000:
            raise ValueError(f"tensor fusion of {len(self.columns)} columns at rank_dim "
                             f"{rank_dim} is too large; lower rank_dim or use 'lowrank'")
        self.reduce = nn.ModuleDict({module_key(c): nn.Linear(dim, rank_dim) for c in self.columns})
        self.out = _mlp((rank_dim + 1) ** len(self.columns), self.out_dim, dropout)

    def forward(self, encoded: dict[str, Encoded], present: dict[str, torch.Tensor]
                ) -> torch.Tensor:
        flags = self._present(encoded, present)
        product: torch.Tensor | None = None
        for i, c in enumerate(self.columns):
            z = _with_one(self.reduce[module_key(c)](encoded[c].pooled) * flags[:, i : i + 1])
            product = z if product is None else torch.einsum("bi,bj->bij", product, z
                                                             ).flatten(1)
        assert product is not None
        return self.out(product)


@register_fusion("lowrank")
class LowRankFusion(Fusion):
    """Low-rank Multimodal Fusion (Liu et al. 2018): the tensor fusion's weight as a sum
    of ``rank`` products of per-column factors; factors are registered parameters."""

    def __init__(self, columns: Sequence[str], dim: int, out_dim: int | None = None,
                 rank: int = 4) -> None:
        super().__init__(columns, dim, out_dim)
        self.factors = nn.ParameterDict({
            module_key(c): nn.Parameter(torch.empty(rank, dim + 1, self.out_dim))
            for c in self.columns})
        for p in self.factors.values():
            # each factor starts near 1 on the appended constant and small elsewhere, so
            # the product starts as 1 + a sum of per-column terms (an additive model)
            # and grows interactions from there; a missing column (z = [0, ..., 0, 1])
            # multiplies by its constant row and drops out of the product
            nn.init.normal_(p, std=(2.0 / (dim + 1 + self.out_dim)) ** 0.5)
            with torch.no_grad():
                p[:, -1, :].add_(1.0)
        self.rank_weights = nn.Parameter(torch.full((1, rank), 1.0 / rank))
        self.bias = nn.Parameter(torch.zeros(self.out_dim))

    def forward(self, encoded: dict[str, Encoded], present: dict[str, torch.Tensor]
                ) -> torch.Tensor:
        flags = self._present(encoded, present)
        fused: torch.Tensor | None = None
        for i, c in enumerate(self.columns):
            z = _with_one(encoded[c].pooled * flags[:, i : i + 1])  # (B, dim + 1)
            per_rank = torch.einsum("bd,rdo->rbo", z, self.factors[module_key(c)])
            fused = per_rank if fused is None else fused * per_rank
        assert fused is not None
        return torch.einsum("r,rbo->bo", self.rank_weights[0], fused) + self.bias


@register_fusion("relation")
class RelationFusion(Fusion):
    """A Relation Network (Santoro et al. 2017): every pair of one column's tokens (the
    "objects": a CNN's grid cells, each tagged with a learned position) is passed with
    the other columns' pooled vectors (the question) through g, summed over the pairs
    present, then through f with the question.

    Args:
        objects: the column whose tokens are the objects (default: the one with the
            most tokens in the first batch, usually the picture).
        max_tokens: objects kept per row (pairs grow with its square).
        norm: layer-normalise each object and the question before g, so that both
            reach g at one scale whatever the encoders and projections give (on
            sort-of-clevr the Relation Network left the answer priors sooner with it).
    """

    def __init__(self, columns: Sequence[str], dim: int, out_dim: int | None = None,
                 objects: str | None = None, hidden: int | None = None,
                 max_tokens: int = 64, dropout: float = 0.1, norm: bool = False) -> None:
        super().__init__(columns, dim, out_dim)
        self.norm = norm
        if norm:
            self.object_norm, self.question_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        if objects is not None and objects not in self.columns:
            raise ValueError(f"objects={objects!r} is not one of the columns {self.columns}")
        self.objects, self.max_tokens = objects, max_tokens
        hidden = hidden or 2 * dim
        self.position = nn.Parameter(torch.zeros(max_tokens, dim))
        nn.init.normal_(self.position, std=0.02)
        self.g = nn.Sequential(nn.Linear(3 * dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                               nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.f = nn.Sequential(nn.Linear(hidden + dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                               nn.Linear(hidden, self.out_dim))

    def _relations(self, tokens: torch.Tensor, question: torch.Tensor) -> torch.Tensor:
        """g over every (object i, object j, question) triple, (B, T, T, hidden).

        g's first layer is linear in the concatenation, so it is applied to each object
        and to the question once and the results are summed per pair (T^2 additions in
        place of T^2 products with a 3d-wide matrix): the same function as
        ``g(cat(o_i, o_j, q))``, at about half the cost of the whole of g."""
        if self.norm:
            tokens, question = self.object_norm(tokens), self.question_norm(question)
        first = self.g[0]
        d = tokens.shape[-1]
        w_i, w_j, w_q = first.weight[:, :d], first.weight[:, d:2 * d], first.weight[:, 2 * d:]
        left = tokens @ w_i.T  # (B, T, hidden)
        right = tokens @ w_j.T
        asked = question @ w_q.T + first.bias  # (B, hidden)
        hidden = left[:, :, None] + right[:, None] + asked[:, None, None]
        return self.g[1:](hidden)

    def forward(self, encoded: dict[str, Encoded], present: dict[str, torch.Tensor]
                ) -> torch.Tensor:
        if self.objects is None:
            self.objects = max(self.columns, key=lambda c: encoded[c].tokens.shape[1])
        flags = self._present(encoded, present)
        obj = encoded[self.objects]
        tokens = obj.tokens[:, : self.max_tokens]
        mask = obj.mask[:, : self.max_tokens] & flags[:, self.columns.index(self.objects),
                                                      None].bool()
        tokens = tokens + self.position[: tokens.shape[1]]
        others = [i for i, c in enumerate(self.columns) if c != self.objects]
        if others:  # the question: the mean of the other present columns' pooled vectors
            pooled = torch.stack([encoded[self.columns[i]].pooled for i in others], 1)
            w = flags[:, others]
            question = (pooled * w.unsqueeze(-1)).sum(1) / w.sum(1, keepdim=True).clamp(min=1)
        else:
            question = torch.zeros_like(obj.pooled)
        relations = self._relations(tokens, question)  # (B, T, T, hidden)
        pair_mask = (mask.unsqueeze(2) & mask.unsqueeze(1)).unsqueeze(-1).to(relations.dtype)
        # summed, as in the paper: a mean over the pairs divides each pair's signal by
        # their count, and a Relation Network trained on it learned far slower (on
        # sort-of-clevr's "is the red object on the left?", 40,000 questions, 3 epochs:
        # 0.62 accuracy with the mean, 0.99 with the sum)
        summed = (relations * pair_mask).sum(dim=(1, 2))
        return self.f(torch.cat([summed, question], dim=-1))
