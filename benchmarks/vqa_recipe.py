"""The VQA model of the sort-of-clevr benchmark and how it trains: the encoders (the
paper's CNN with a hypercolumn, the question as a bag of words), the Relation Network's
options, the learning rate and schedule, and :func:`train_vqa` with its callbacks (each
epoch's time kept across resumes, a warm start from another run). The benchmark that
trains and scores both fusions with it is :mod:`benchmarks.vqa`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback

from benchmarks.report import RESULTS
from polymodal.data import Manifest
from polymodal.predictor import Predictor

#: the VQA model: the paper's CNN (four stride-2 conv layers) on the picture at 64 px,
#: whose 4 x 4 grid gives 16 objects and 256 pairs (the paper's 75 px gives 25 and 625, a
#: Relation Network step 3 times as slow on a CPU), and the question as a bag of words:
#: the paper feeds an 11-bit code (colour, question kind), which a bag of words of the
#: templated question carries too. With a BiLSTM over the words the Relation Network
#: stuck at 0.64 (left/right at chance: the colour word, one of ten, barely moves its mean)
#: The CNN also hands each cell its second block's output averaged over the cell
#: (``hypercolumn=2``): trained on this task, the plain CNN's last two blocks dropped
#: the objects' colour (a linear probe read it off the object tokens at chance), and a
#: question names its object by colour, so neither fusion could find that object.
ENCODERS = {"image": ("strided-cnn", {"image_size": 64, "dim": 64, "hypercolumn": 2}),
            "text": ("bow", {})}
#: the Relation Network layer-normalises objects and question before g: in 60,000
#: questions x 2 epochs it reached train accuracy 0.505 (val 0.567) with it against
#: 0.47 (0.50, the answer priors) without
FUSION_OPTIONS: dict[str, dict[str, Any]] = {"relation": {"norm": True}}
#: the paper's learning rate. At 1e-3 the Relation Network sat at the answer priors for
#: all of 6 epochs (it had not even learned to count); the reference PyTorch
#: reimplementation trains at 1e-4 and leaves its plateau only after 8 to 12 epochs
LR = 2.5e-4
#: the rate is held after the warm-up (the reference reimplementation holds 1e-4): a
#: cosine decay brings it to zero around the epochs where the Relation Network leaves
#: its plateau
SCHEDULE = "constant"


def fast_precision() -> str | None:
    """bf16 mixed precision where the CPU multiplies bf16 in hardware (AMX: the
    Relation Network's step is about 1.8 times as fast), else the trainer's default."""
    import torch

    if torch.cuda.is_available():
        return None
    try:
        return "bf16-mixed" if torch._C._cpu._init_amx() else None
    except (AttributeError, RuntimeError):
        return None


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
    """A VQA Predictor (question + picture -> answer class) on ``manifest``'s train
    split (its first ``rows`` questions if given), tuned on val (or on train, for data
    too small for val to hold only answers seen in training). ``resume`` continues an
    interrupted run in ``path`` from its last checkpoint; ``start_from`` starts from
    another run's checkpoint (same data, so the same vocabulary and answer classes).
    Early stopping is off: on this task a Relation Network's validation loss stays flat
    for epochs before it learns."""
    train = manifest.split("train")
    if rows is not None:
        train = train.subset(list(range(min(rows, len(train)))))
    p = Predictor(label="answer", modalities=["image", "question"], fusion=fusion,
                  encoders=ENCODERS, preset="fast", seed=seed, max_epochs=epochs,
                  batch_size=64, lr=lr, path=path, patience=0, schedule=schedule,
                  fusion_options=FUSION_OPTIONS.get(fusion), precision=fast_precision())
    callbacks: list[Callback] = [EpochClock(Path(path) / "epoch_seconds.csv")]
    if start_from is not None:
        callbacks.append(WarmStart(start_from))
    return p.fit(train, train if tune_on_train else manifest.split("val"), progress=progress,
                 resume=resume, callbacks=callbacks)
