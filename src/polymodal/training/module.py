"""The LightningModule that trains every polymodal model (the Trainer: trainer.py)."""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from polymodal.data.dataset import Batch
from polymodal.data.errors import SkipReport

SCHEDULES = ("cosine", "constant")


def check_schedule(schedule: str) -> str:
    """``schedule`` if it is one of :data:`SCHEDULES`, else a ValueError naming them."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    return schedule


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int,
                  warmup_fraction: float = 0.05, schedule: str = "cosine") -> dict[str, Any]:
    """Lightning's optimizer config: linear warm-up over ``warmup_fraction`` of the
    steps, then cosine decay to zero (``schedule="cosine"``) or the peak rate held to the
    end (``"constant"``), stepped every batch."""
    check_schedule(schedule)
    total = max(1, total_steps)
    warmup = max(1, int(warmup_fraction * total))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class CheckpointError(ValueError):
    """A training checkpoint that cannot be used: half-written by a crash, truncated,
    tampered with, or not a checkpoint at all. It is refused, never loaded in part."""


#: the suffix of a checkpoint's checksum file (``last.ckpt.sha256``)
CHECKSUM_SUFFIX = ".sha256"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints written atomically, checksummed, and read without executing
    code.

    A checkpoint is written to a temporary file next to its target, flushed to disk,
    then renamed over it: a crash (SIGKILL, power loss) at any moment leaves either the
    previous whole file or the new whole file, never a mix. Before the rename,
    ``<name>.sha256`` is replaced (atomically too) by the SHA-256 of the new file and of
    the one it replaces, so whichever of the two a crash leaves in place is accepted and
    any other content (a flipped bit in a tensor, a file swapped in) is refused. Reading
    always uses ``torch.load(weights_only=True)``: tensors and plain values only, a
    pickle that would run code is refused. A file that cannot be used is a
    :class:`CheckpointError` naming it."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any,
                        storage_options: Any | None = None) -> None:
        import hashlib

        from polymodal.files import write_atomically

        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        digest = hashlib.sha256()
        try:
            with tmp.open("wb") as fh:
                torch.save(checkpoint, fh)
                fh.flush()
                os.fsync(fh.fileno())
            with tmp.open("rb") as fh:
                for block in iter(lambda: fh.read(2**20), b""):
                    digest.update(block)
            previous = _accepted_hashes(target)[:1]
            write_atomically(_checksum_path(target),
                             "\n".join([digest.hexdigest(), *previous]) + "\n")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def load_checkpoint(self, path: Any, map_location: Callable | Any = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        return load_training_checkpoint(path, map_location=map_location)

    def remove_checkpoint(self, path: Any) -> None:
        super().remove_checkpoint(path)
        _checksum_path(Path(path)).unlink(missing_ok=True)


def _checksum_path(path: Path) -> Path:
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def _accepted_hashes(path: Path) -> list[str]:
    """The SHA-256 values a checkpoint may have (newest first); [] without a file."""
    sums = _checksum_path(path)
    if not sums.is_file():
        return []
    return [line.strip() for line in sums.read_text().splitlines() if line.strip()]


def load_training_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu"
                             ) -> dict[str, Any]:
    """A Lightning checkpoint, checked against its ``.sha256`` file when it has one and
    read with ``weights_only=True``.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: a truncated, half-written, tampered or foreign file.
    """
    from polymodal.files import sha256_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    accepted = _accepted_hashes(path)
    if accepted and sha256_file(path) not in accepted:
        raise CheckpointError(
            f"{path}: its SHA-256 is not the one written with it in "
            f"{_checksum_path(path).name} (changed after saving, truncated, or "
            "half-written); refused")
    try:
        checkpoint = torch.load(path, map_location=map_location or "cpu", weights_only=True)
    except Exception as exc:  # zip, unpickling and weights-only errors alike
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: not a whole polymodal training checkpoint (truncated or half-written "
            f"by a crash, tampered with, or holding code); refused ({reason[:300]})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: not a Lightning training checkpoint (no state_dict)")
    return checkpoint


def _rng_state() -> dict[str, Any]:
    """Every random generator training draws from, in plain types (weights-only safe)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available() and \
            len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


class SkipTracking(L.LightningModule):
    """What the training and validation batches met under ``on_error="skip"``: every
    bad row's problems (``skip_report``) and the dataset positions each stage's batches
    covered (``visited``), so that rows no batch met can be checked after the run
    (:func:`polymodal.data.dataset.sweep_unvisited`). Also keeps the random generators
    in the checkpoint, so a resumed run draws what an uninterrupted one would."""

    def __init__(self) -> None:
        super().__init__()
        self.skip_report = SkipReport()
        self.visited: dict[str, set[int]] = {"train": set(), "val": set()}

    def on_before_batch_transfer(self, batch: Batch, dataloader_idx: int) -> Batch:
        if isinstance(batch, Batch):
            stage = "train" if self.trainer.training else "val"
            self.skip_report.extend(batch.skipped)
            if not self._streamed(stage):  # a stream's bad rows all reach its batches
                self.visited[stage].update(batch.indices.tolist())
                self.visited[stage].update(batch.skipped_indices)
        return batch

    def _streamed(self, stage: str) -> bool:
        """Does ``stage`` read an iterable dataset (a shard folder: nothing to sweep
        after the run, so its rows are not recorded: a million of them is 60 MB)?"""
        loader = self.trainer.train_dataloader if stage == "train" else \
            self.trainer.val_dataloaders
        return isinstance(getattr(loader, "dataset", None), torch.utils.data.IterableDataset)

    def on_train_epoch_start(self) -> None:  # a streamed loader plans Lightning's epoch
        loader = self.trainer.train_dataloader
        getattr(loader, "set_epoch", lambda _epoch: None)(self.current_epoch)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["polymodal_rng"] = _rng_state()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "polymodal_rng" in checkpoint:
            _set_rng_state(checkpoint["polymodal_rng"])


class LitEstimator(SkipTracking):
    """Training of any polymodal model: the model, and an objective that gives each
    batch's loss and logs (:class:`~polymodal.objectives.SupervisedLoss`,
    :class:`~polymodal.objectives.ContrastiveLoss`); AdamW with a linear warm-up.

    Args:
        model: the model (towers and whatever the task puts on them).
        loss: the objective: ``step(model, batch, stage) -> Step`` and
            ``parameter_groups()`` (its own trained parameters).
        lr: peak learning rate, reached after the warm-up.
        weight_decay: AdamW weight decay (not on the objective's own parameters).
        warmup_fraction: share of the steps spent warming up.
        schedule: after the warm-up, "cosine" decays to zero over the run, "constant"
            holds the peak rate.
    """

    def __init__(self, model: torch.nn.Module, loss: torch.nn.Module, lr: float = 1e-3,
                 weight_decay: float = 0.01, warmup_fraction: float = 0.05,
                 schedule: str = "cosine") -> None:
        super().__init__()
        self.model, self.loss = model, loss
        self.schedule = check_schedule(schedule)
        self.lr, self.weight_decay, self.warmup_fraction = lr, weight_decay, warmup_fraction

    def transfer_batch_to_device(self, batch: Batch, device: torch.device,
                                 dataloader_idx: int) -> Batch:
        return batch.to(device)

    def _step(self, batch: Batch, stage: str) -> torch.Tensor | None:
        if len(batch) == 0:  # every row of it left out under on_error="skip"
            return None
        step = self.loss.step(self.model, batch, stage)  # type: ignore[operator]
        for name, value in step.logs.items():
            self.log(name, value, prog_bar=name in step.shown, batch_size=len(batch),
                     on_step=False, on_epoch=True, sync_dist=stage != "train")
        return step.loss

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor | None:
        return self._step(batch, "train")

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def _frozen_keys(self, keys: Any) -> list[str]:
        """The checkpoint keys of frozen pretrained towers, and of whatever else the
        model says loads from elsewhere (``loaded_elsewhere(key)``: a frozen language
        model): they load from their package or name, as in a saved model."""
        from polymodal.checkpoint import is_frozen_pretrained

        if not hasattr(self.model, "encoders"):
            return []
        elsewhere = getattr(self.model, "loaded_elsewhere", lambda _key: False)
        return [k for k in keys if k.startswith("model.") and (
            is_frozen_pretrained(self.model, k[len("model."):])
            or elsewhere(k[len("model."):]))]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Leave frozen pretrained towers out of each epoch's checkpoint: MiniLM and
        EfficientNet-Lite0 are 110 MB, written twice an epoch, for weights that never
        change."""
        super().on_save_checkpoint(checkpoint)  # the random state, for an exact resume
        state = checkpoint["state_dict"]
        for k in self._frozen_keys(list(state)):
            del state[k]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        self.fill_frozen(checkpoint)

    def fill_frozen(self, checkpoint: dict[str, Any]) -> None:
        """Put the frozen towers' own weights back where the checkpoint left them out."""
        state = checkpoint["state_dict"]
        own = self.state_dict()
        for k in self._frozen_keys([k for k in own if k not in state]):
            state[k] = own[k]

    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for p in self.model.parameters() if p.requires_grad]
        groups = [{"params": params, "weight_decay": self.weight_decay},
                  *self.loss.parameter_groups()]  # type: ignore[operator]
        optimizer = torch.optim.AdamW(groups, lr=self.lr, weight_decay=self.weight_decay)
        return warmup_cosine(optimizer, int(self.trainer.estimated_stepping_batches),
                             self.warmup_fraction, self.schedule)


class UnfreezeEncoders(L.Callback):
    """Unfreeze the frozen encoders at the start of epoch ``epoch`` and train them from
    then on at ``lr_scale`` times the base learning rate (a new optimizer group)."""

    def __init__(self, epoch: int, lr_scale: float = 0.1) -> None:
        self.epoch, self.lr_scale = epoch, lr_scale
        self.unfrozen: list[str] = []

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.current_epoch != self.epoch or self.unfrozen:
            return
        model = module.model
        optimizer = trainer.optimizers[0]
        for column in model.columns:
            encoder = model.encoder(column)
            frozen = [p for p in encoder.parameters() if not p.requires_grad]
            if not frozen or column in model.cached:
                continue
            encoder.unfreeze()
            base = optimizer.param_groups[0]
            optimizer.add_param_group({"params": frozen, "lr": base["lr"] * self.lr_scale,
                                       "initial_lr": base.get("initial_lr", base["lr"])
                                       * self.lr_scale,
                                       "weight_decay": base["weight_decay"]})
            for config in trainer.lr_scheduler_configs:  # the schedule covers the new group
                scheduler = config.scheduler
                scheduler.base_lrs.append(optimizer.param_groups[-1]["initial_lr"])
                if hasattr(scheduler, "lr_lambdas"):
                    scheduler.lr_lambdas.append(scheduler.lr_lambdas[0])
            self.unfrozen.append(column)
