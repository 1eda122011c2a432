"""Training overhead: Predictor.fit (Lightning) against a plain PyTorch loop over the
same model and the same batches, in the same run."""

from __future__ import annotations

import logging
import tempfile
import time

import lightning as L
import torch

from benchmarks.report import Section
from polymodal.data import Manifest
from polymodal.data.bundled import make_dataset
from polymodal.predictor import Predictor


class _EpochTimer(L.Callback):
    """Seconds from each training epoch's start to the end of its validation."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self.seconds.append(time.perf_counter() - self._start)


def run(quick: bool = False) -> Section:
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    manifest = Manifest.read(make_dataset("av-digits", limit=20 if quick else None))
    train = manifest.split("train")
    epochs = 2 if quick else 4
    section = Section(
        key="training-overhead", title="Training overhead: Predictor.fit against a plain loop",
        command="python -m benchmarks --only training-overhead"
        + (" --quick" if quick else ""),
        columns=["loop", "epochs", "seconds per epoch", "ratio to the plain loop"])
    with tempfile.TemporaryDirectory() as run_dir:
        predictor = Predictor(label="label", modalities=["image", "record"], fusion="concat",
                              preset="fast", max_epochs=epochs, path=run_dir, seed=0)
        timer = _EpochTimer()
        start = time.perf_counter()
        predictor.fit(manifest, progress=False, callbacks=[timer])
        whole_s = (time.perf_counter() - start) / epochs
        lightning_s = sum(timer.seconds) / len(timer.seconds)
        # the plain loop: the same model shape, the same loader, AdamW, no validation
        torch.manual_seed(0)
        model = predictor._make_model()
        loader = predictor._loader(train, shuffle=True, with_labels=True)
        val_loader = predictor._loader(manifest.split("val"), shuffle=False, with_labels=True)
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
        start = time.perf_counter()
        for _ in range(epochs):
            model.train()
            for batch in loader:
                loss = torch.nn.functional.cross_entropy(model(batch), batch.labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():  # Predictor.fit validates every epoch; so does this loop
                for batch in val_loader:
                    torch.nn.functional.cross_entropy(model(batch), batch.labels)
        plain_s = (time.perf_counter() - start) / epochs
    section.rows = [["plain PyTorch loop (baseline)", f"{epochs}", f"{plain_s:.2f}", "1.00"],
                    ["Predictor.fit epoch (Lightning: checkpoints, early stopping, CSV and "
                     "TensorBoard logs, LR schedule)", f"{epochs}", f"{lightning_s:.2f}",
                     f"{lightning_s / plain_s:.2f}"],
                    ["Predictor.fit whole call / epochs (set-up, vocabulary, trainer, best "
                     "checkpoint reload included)", f"{epochs}", f"{whole_s:.2f}",
                     f"{whole_s / plain_s:.2f}"]]
    section.notes = ("av-digits image + record with the `fast` preset and concat fusion, "
                     "training and validation each epoch in both loops. An epoch is timed "
                     "from the start of training to the end of validation by a callback.")
    return section
