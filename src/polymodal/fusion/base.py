"""The fusion contract and what every fusion shares.

A fusion module combines per-column encoder outputs, already projected to one shared
size ``dim``, into one ``(B, out_dim)`` representation:

    forward(encoded: dict[str, Encoded], present: dict[str, Tensor]) -> Tensor

Keys are modality column names; ``present[col]`` is a bool ``(B,)`` saying whether the
row has that column. Every fusion accepts rows where any column is absent (even all of
them) and gives a finite output.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from polymodal.encoders.base import Encoded
from polymodal.registry import Registry

#: every fusion class by name (``polymodal.fusion`` imports the methods that fill it)
FUSIONS: Registry[type[Fusion]] = Registry("fusion", modules=("polymodal.fusion.methods",))


def module_key(column: str) -> str:
    """A column name as a ModuleDict / ParameterDict key (torch refuses dots, and real
    columns have them: ``img.front``)."""
    return column.replace(".", "\u2024")


def register_fusion(name: str) -> Callable[[type[Fusion]], type[Fusion]]:
    """Register a fusion class under ``name`` (configs and the CLI use the name; a name
    registered twice is refused)."""
    def wrap(cls: type[Fusion]) -> type[Fusion]:
        FUSIONS.add(name, cls)
        cls.name = name
        return cls
    return wrap


class Fusion(nn.Module):
    """Base class: stores the column order (sorted) and the sizes.

    Args:
        columns: the modality columns it fuses.
        dim: the shared size of every column's projected features.
        out_dim: the size of the fused representation (default ``dim``).
    """

    name = ""

    def __init__(self, columns: Sequence[str], dim: int, out_dim: int | None = None) -> None:
        super().__init__()
        if not columns:
            raise ValueError("a fusion needs at least one modality column")
        self.columns = sorted(columns)
        self.dim = dim
        self.out_dim = out_dim or dim

    def _present(self, encoded: dict[str, Encoded], present: dict[str, torch.Tensor]
                 ) -> torch.Tensor:
        """(B, M) float presence in column order."""
        ref = encoded[self.columns[0]].pooled
        return torch.stack([present[c].to(ref.device, ref.dtype) for c in self.columns], dim=1)

    def _pooled(self, encoded: dict[str, Encoded], present: dict[str, torch.Tensor]
                ) -> torch.Tensor:
        """(B, M, dim) pooled features, zeroed where a column is absent."""
        stacked = torch.stack([encoded[c].pooled for c in self.columns], dim=1)
        return stacked * self._present(encoded, present).unsqueeze(-1)

    def forward(self, encoded: dict[str, Encoded], present: dict[str, torch.Tensor]
                ) -> torch.Tensor:
        raise NotImplementedError


def fusion_class(name: str) -> type[Fusion]:
    """The fusion class registered as ``name``.

    Raises:
        UnknownName: unknown name (a KeyError; the message names the nearest ones).
    """
    return FUSIONS.get(name)


def build_fusion(name: str, columns: Sequence[str], dim: int, **kwargs: object) -> Fusion:
    """Build the fusion registered as ``name`` (an unknown one: :func:`fusion_class`)."""
    return fusion_class(name)(columns, dim, **kwargs)


def modality_dropout(present: dict[str, torch.Tensor], p: float,
                     generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Drop each present column of each row with probability ``p``, keeping at least one
    present column per row that had one (so the model learns to do without any one)."""
    if p <= 0:
        return present
    columns = sorted(present)
    mask = torch.stack([present[c] for c in columns], dim=1)  # (B, M) bool
    keep = torch.rand(mask.shape, generator=generator, device=mask.device) >= p
    dropped = mask & keep
    empty = ~dropped.any(dim=1) & mask.any(dim=1)
    if empty.any():  # restore one random present column in rows left with none
        scores = torch.rand(mask.shape, generator=generator, device=mask.device) * mask
        restore = nn.functional.one_hot(scores.argmax(dim=1), len(columns)).bool()
        dropped = dropped | (restore & empty.unsqueeze(1))
    return {c: dropped[:, i] for i, c in enumerate(columns)}
