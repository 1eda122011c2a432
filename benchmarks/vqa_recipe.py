"""The VQA recipe (:mod:`polymodal.apps.vqa`) as the sort-of-clevr benchmark trains it:
with its callbacks (each epoch's time kept across resumes, a warm start from another
run). The benchmark that
trains and scores both fusions with it is :mod:`benchmarks.vqa`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback

from benchmarks.report import RESULTS
from polymodal.apps import vqa as recipe
from polymodal.apps.vqa import ENCODERS, FUSION_OPTIONS, LR, SCHEDULE, fast_precision
from polymodal.data import Manifest
from polymodal.predictor import Predictor

__all__ = ["ENCODERS", "FUSION_OPTIONS", "LR", "SCHEDULE", "EpochClock", "WarmStart",
           "fast_precision", "train_vqa"]

class EpochClock(Callback):
    """Appends each finished epoch's wall-clock seconds to ``path`` (CSV: epoch,
    seconds), so a run that is killed and resumed still reports all its training time."""

    def __init__(self, path: Path) -> None:
        self.path, self._start = path, 0.0

    def on_train_epoch_start(self, trainer: Any, module: Any) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: Any, module: Any) -> None:
        new = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as fh:
            fh.write(("epoch,seconds\n" if new else "")
                     + f"{trainer.current_epoch},{time.perf_counter() - self._start:.3f}\n")

    @staticmethod
    def total(path: Path) -> float:
        """Seconds over the epochs logged in ``path`` (an epoch trained twice, before
        and after a resume, counted once: the later time)."""
        if not path.exists():
            return 0.0
        import pandas as pd

        return float(pd.read_csv(path).groupby("epoch")["seconds"].last().sum())


class WarmStart(Callback):
    """Starts a fit from another run's weights (a training checkpoint, e.g. its
    ``last.ckpt``), so that a trained model trains on under a new recipe. A fit that
    resumes its own checkpoint keeps that one."""

    def __init__(self, checkpoint: Path) -> None:
        self.checkpoint = Path(checkpoint)

    def on_fit_start(self, trainer: Any, module: Any) -> None:
        if trainer.ckpt_path:  # resuming this run: Lightning has restored its own state
            return
        from polymodal.training.module import load_training_checkpoint

        module.load_state_dict(load_training_checkpoint(self.checkpoint)["state_dict"])


def train_vqa(manifest: Manifest, fusion: str, seed: int = 0, epochs: int = 12,
              path: str | Path = RESULTS / "runs" / "vqa", rows: int | None = None,
              progress: bool = False, tune_on_train: bool = False,
              resume: bool = False, lr: float = LR, schedule: str = SCHEDULE,
              start_from: Path | None = None) -> Predictor:
    """:func:`polymodal.apps.vqa.train_vqa` as the benchmark runs it: in
    ``bench-results/``, each epoch's time kept (:class:`EpochClock`), optionally
    started from another run's checkpoint (``start_from``: same data, so the same
    vocabulary and answer classes)."""
    callbacks: list[Callback] = [EpochClock(Path(path) / "epoch_seconds.csv")]
    if start_from is not None:
        callbacks.append(WarmStart(start_from))
    return recipe.train_vqa(manifest, fusion, seed=seed, epochs=epochs, path=path, rows=rows,
                            progress=progress, tune_on_train=tune_on_train, resume=resume,
                            lr=lr, schedule=schedule, callbacks=callbacks)
