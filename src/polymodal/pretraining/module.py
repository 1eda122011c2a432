"""The LightningModule of contrastive pretraining."""

from __future__ import annotations

import zlib
from typing import Any

import torch

from polymodal.data.dataset import Batch
from polymodal.objectives.contrastive import ContrastiveLoss
from polymodal.pretraining.model import ContrastiveModel
from polymodal.training.module import SkipTracking, warmup_cosine


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


class LitContrastive(SkipTracking):
    """InfoNCE pretraining of a :class:`ContrastiveModel`; AdamW, warm-up then cosine.

    Args:
        model: encoders and embedding heads.
        loss: the contrastive loss (pairs, temperature, queue).
        lr: peak learning rate.
        weight_decay: AdamW weight decay (not on the temperature).
        warmup_fraction: share of steps spent warming up.
    """

    def __init__(self, model: ContrastiveModel, loss: ContrastiveLoss, lr: float = 1e-3,
                 weight_decay: float = 0.01, warmup_fraction: float = 0.05) -> None:
        super().__init__()
        self.model, self.loss = model, loss
        self.lr, self.weight_decay, self.warmup_fraction = lr, weight_decay, warmup_fraction

    def transfer_batch_to_device(self, batch: Batch, device: torch.device,
                                 dataloader_idx: int) -> Batch:
        return batch.to(device)

    def _step(self, batch: Batch, stage: str) -> torch.Tensor | None:
        if len(batch) == 0:
            return None
        embeddings, present = self.model(batch)
        groups = {c: content_hash(batch.inputs[c]).to(embeddings[c].device)
                  for c in self.model.columns}
        loss, per_pair = self.loss(embeddings, present, groups)
        n = len(batch)
        self.log(f"{stage}_loss", loss, prog_bar=True, batch_size=n, on_step=False,
                 on_epoch=True, sync_dist=stage != "train")
        for pair, value in per_pair.items():
            self.log(f"{stage}_loss/{pair}", value, batch_size=n, on_step=False,
                     on_epoch=True, sync_dist=stage != "train")
        if stage == "train":
            self.log("temperature", self.loss.temperature, batch_size=n, on_step=False,
                     on_epoch=True)
        return loss if per_pair else None

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor | None:
        return self._step(batch, "train")

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self) -> dict[str, Any]:
        decay = [p for p in self.model.parameters() if p.requires_grad]
        groups: list[dict[str, Any]] = [{"params": decay, "weight_decay": self.weight_decay}]
        if self.loss.log_scale.requires_grad:
            groups.append({"params": [self.loss.log_scale], "weight_decay": 0.0})
        optimizer = torch.optim.AdamW(groups, lr=self.lr)
        return warmup_cosine(optimizer, int(self.trainer.estimated_stepping_batches),
                             self.warmup_fraction)
