"""LiT-style heads on the locked towers, trained on cached tower outputs (:mod:`.features`).

The heads are residual: the picture head starts as the identity on the bridge's 385
axes, the caption head as MiniLM's 384 axes (0 on the "nothing" axis), i.e. exactly the
untrained ``builtin:general``; training learns a correction ``W = W0 + delta`` with an
L2 pull of ``delta`` towards 0, so a name the corpus never had still falls back on the
bridge. The "nothing" axis is kept as it is: the picture head passes it through (its
row and column of ``delta`` are 0), the caption head leaves it 0. Loss: symmetric
InfoNCE with a fixed temperature over one row per caption key (so a batch never
holds two rows of one name, each other's false negatives): the first row of each key
(``per_name="first"``), or each epoch one of the key's rows drawn at random
(``per_name="sampled"``: the nine icon themes' "edit redo" are nine pictures of one
name, seen in turn)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from polymodal.library.general.features import Features, rows_by_key

#: the bridge's size (MiniLM's 384 axes plus the "nothing" axis)
DIM = 385


@dataclass(frozen=True)
class HeadSettings:
    """How the heads are trained: epochs, batch, learning rate, the pull towards the
    untrained heads (``anchor``), InfoNCE temperature and seed."""

    epochs: int = 6
    batch_size: int = 512
    lr: float = 1e-3
    anchor: float = 1.0
    temperature: float = 0.05
    seed: int = 0
    #: the picture head also reads EfficientNet-Lite0's pooled features (1280 more
    #: inputs, starting at 0 weight)
    pooled: bool = False
    #: which of a name's pictures an epoch trains on: its first ("first") or one drawn
    #: at random each epoch ("sampled")
    per_name: str = "first"

    def __post_init__(self) -> None:
        if self.per_name not in PER_NAME:
            raise ValueError(f"per_name must be one of {PER_NAME}, got {self.per_name!r}")


#: the ways of choosing a name's picture (:attr:`HeadSettings.per_name`)
PER_NAME = ("first", "sampled")


#: the pooled features' size
POOLED = 1280


def untrained_weights(pooled: bool = False) -> dict[str, torch.Tensor]:
    """The heads of the untrained model: identity for the picture (0 on the pooled
    features, if read), MiniLM's axes copied (0 on the "nothing" axis) for the
    caption."""
    text = torch.zeros(DIM, DIM - 1)
    text[: DIM - 1] = torch.eye(DIM - 1)
    image = torch.cat([torch.eye(DIM), torch.zeros(DIM, POOLED)], 1) if pooled else \
        torch.eye(DIM)
    return {"image": image, "caption": text}


def picture_inputs(features: Features, pooled: bool) -> np.ndarray:
    """The picture head's inputs: the bridge vectors, and the scaled pooled features."""
    if not pooled:
        return features.images
    if features.pooled is None:
        raise ValueError(f"{features.source}: the heads read pooled features, none given")
    return np.concatenate([features.images, features.pooled], axis=1)


def _masks(pooled: bool = False) -> dict[str, torch.Tensor]:
    image = torch.ones(DIM, DIM + POOLED * pooled)
    image[-1, :] = 0
    image[:, DIM - 1] = 0
    text = torch.ones(DIM, DIM - 1)
    text[-1, :] = 0
    return {"image": image, "caption": text}


def embed(weights: dict[str, torch.Tensor], column: str, x: np.ndarray | torch.Tensor
          ) -> np.ndarray:
    """Normalised embeddings of tower outputs ``x`` through the head of ``column``."""
    with torch.no_grad():
        out = torch.as_tensor(x, dtype=torch.float32) @ weights[column].T
        return torch.nn.functional.normalize(out, dim=-1).numpy()


def train_heads(train: Features, settings: HeadSettings = HeadSettings()
                ) -> dict[str, torch.Tensor]:
    """The picture and caption heads' weights, trained on ``train``'s pairs (one row
    per caption key an epoch: :attr:`HeadSettings.per_name`)."""
    groups = rows_by_key(train.keys)
    if len(groups) < 2:
        raise ValueError(f"training the heads needs at least 2 names, got {len(groups)}")
    g = torch.Generator().manual_seed(settings.seed)
    base, masks = untrained_weights(settings.pooled), _masks(settings.pooled)
    delta = {c: torch.zeros_like(w, requires_grad=True) for c, w in base.items()}
    opt = torch.optim.Adam(list(delta.values()), lr=settings.lr)
    images = torch.as_tensor(picture_inputs(train, settings.pooled), dtype=torch.float32)
    words = torch.as_tensor(train.words, dtype=torch.float32)
    firsts = torch.as_tensor([rows[0] for rows in groups])
    sizes = torch.as_tensor([len(rows) for rows in groups])
    offsets = torch.cumsum(sizes, 0) - sizes
    members = torch.as_tensor(np.concatenate(groups))
    n = len(groups)
    for _ in range(settings.epochs):
        if settings.per_name == "sampled":  # one of each name's rows, drawn this epoch
            pick = (torch.rand(n, generator=g) * sizes).long()
            chosen = members[offsets + pick]
        else:
            chosen = firsts
        order = chosen[torch.randperm(n, generator=g)]
        for i in range(0, n - 1, settings.batch_size):
            b = order[i: i + settings.batch_size]
            if len(b) < 2:
                continue
            w_img = base["image"] + masks["image"] * delta["image"]
            w_txt = base["caption"] + masks["caption"] * delta["caption"]
            u = torch.nn.functional.normalize(images[b] @ w_img.T, dim=-1)
            t = torch.nn.functional.normalize(words[b] @ w_txt.T, dim=-1)
            logits = u @ t.T / settings.temperature
            target = torch.arange(len(b))
            loss = (torch.nn.functional.cross_entropy(logits, target)
                    + torch.nn.functional.cross_entropy(logits.T, target)) / 2
            pull = sum((d * m).pow(2).sum() for d, m in zip(delta.values(), masks.values(),
                                                             strict=True))
            opt.zero_grad()
            (loss + settings.anchor * pull).backward()
            opt.step()
    return {c: (base[c] + masks[c] * delta[c]).detach().clone() for c in base}
