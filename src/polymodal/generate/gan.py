"""A conditional GAN that synthesises small greyscale pictures of a class, to enlarge a
training set (:mod:`polymodal.generate.augment` writes them as manifest rows)::

    gan = ConditionalGAN(image="image", label="label").fit("fashion-mnist/manifest.csv")
    pictures = gan.sample("Coat", 16, seed=0)         # Pillow images
    gan.save("gan/"); ConditionalGAN.load("gan/")

The networks are :mod:`~polymodal.generate.gan_model`'s (DCGAN generator; spectrally
normalised projection discriminator; hinge loss). Training is one Lightning run with
manual optimisation (a discriminator step, then a generator step, per batch), for a
fixed number of steps: a GAN has no validation loss to stop on. Saved as
safetensors + YAML, like every polymodal model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from PIL import Image

from polymodal.data import Manifest
from polymodal.generate.gan_model import Discriminator, Generator, hinge_d, hinge_g

KIND = "gan"
SETTINGS = ("image", "label", "size", "z_dim", "width", "steps", "batch_size", "lr", "d_lr",
            "seed")
#: Adam's betas for both networks (SNGAN's: no momentum, a short memory of squares)
BETAS = (0.0, 0.9)


class _GANModule(L.LightningModule):
    def __init__(self, generator: Generator, discriminator: Discriminator, lr: float,
                 d_lr: float) -> None:
        super().__init__()
        self.generator, self.discriminator = generator, discriminator
        self.lr, self.d_lr = lr, d_lr
        self.automatic_optimization = False

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        opt_g, opt_d = self.optimizers()  # type: ignore[misc]
        z = torch.randn(len(x), self.generator.z_dim, device=x.device)
        fake = self.generator(z, y)
        d_loss = hinge_d(self.discriminator(x, y), self.discriminator(fake.detach(), y))
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.step()
        g_loss = hinge_g(self.discriminator(fake, y))
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        opt_g.step()
        self.log_dict({"d_loss": d_loss, "g_loss": g_loss}, prog_bar=True, on_step=False,
                      on_epoch=True)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [torch.optim.Adam(self.generator.parameters(), self.lr, betas=BETAS),
                torch.optim.Adam(self.discriminator.parameters(), self.d_lr, betas=BETAS)]


class ConditionalGAN:
    """Learn to draw pictures of each class of a labelled picture column.

    Args:
        image: the picture column (default: the only one).
        label: the class column.
        size: pictures are made greyscale at size x size (a multiple of 4; 28 for
            fashion-mnist).
        z_dim: the noise's size; width: the networks' base channels.
        steps: training steps (a discriminator and a generator update each).
        batch_size, seed: the run.
        lr, d_lr: the generator's and the discriminator's learning rates (Adam, betas
            0 / 0.9; the discriminator 4x faster, the two-time-scale rule of Heusel et
            al. 2017: with one rate for both, as DCGAN has it, the generator collapsed
            to nearly one picture a class on fashion-mnist).
    """

    def __init__(self, image: str | None = None, label: str = "label", size: int = 28,
                 z_dim: int = 64, width: int = 64, steps: int = 2000, batch_size: int = 64,
                 lr: float = 1e-4, d_lr: float = 4e-4, seed: int = 0) -> None:
        self.image, self.label, self.size, self.z_dim, self.width = image, label, size, z_dim, width
        self.steps, self.batch_size, self.lr, self.d_lr = steps, batch_size, lr, d_lr
        self.seed = seed
        if size % 4:
            raise ValueError(f"size must be a multiple of 4, got {size}")

    def _pictures(self, m: Manifest) -> tuple[torch.Tensor, list[str]]:
        pictures = [c for c, r in m.modality_columns.items() if r.value == "image"]
        column = self.image or (pictures[0] if len(pictures) == 1 else None)
        if column not in pictures:
            raise ValueError(f"{m.source}: name the picture column with image=COLUMN; "
                             f"picture columns: {pictures}")
        rows = [i for i in range(len(m)) if m.present(column)[i] and m.label(i) is not None]
        x = np.stack([np.asarray(m.decode(i, column).convert("L").resize(
            (self.size, self.size)), dtype=np.float32) for i in rows])
        labels = [str(m.label(i)) for i in rows]
        return torch.from_numpy(x / 127.5 - 1.0)[:, None], labels

    def fit(self, train: Any, *, progress: bool = False) -> ConditionalGAN:
        """Train on the labelled pictures of ``train`` (a manifest path, DataFrame or
        Manifest; a split column's "train" rows only, when it has one)."""
        m = Manifest.read(train, label=self.label)
        if self.label not in m.table.columns:
            raise ValueError(f"{m.source}: no class column {self.label!r}; columns: "
                             f"{list(m.table.columns)}")
        if m.schema.split is not None:
            m = m.split("train")
        x, labels = self._pictures(m)
        self.classes_ = sorted(set(labels))
        y = torch.tensor([self.classes_.index(v) for v in labels])
        L.seed_everything(self.seed, verbose=False)
        self._build()
        data = torch.utils.data.TensorDataset(x, y)
        loader = torch.utils.data.DataLoader(data, batch_size=min(self.batch_size, len(data)),
                                             shuffle=True, drop_last=True)
        epochs = max(1, -(-self.steps // max(1, len(loader))))
        trainer = L.Trainer(max_epochs=epochs, max_steps=2 * self.steps, logger=False,
                            enable_checkpointing=False, enable_progress_bar=progress,
                            enable_model_summary=False, accelerator="auto", devices=1)
        module = _GANModule(self.generator_, self.discriminator_, self.lr, self.d_lr)
        trainer.fit(module, loader)
        self.generator_.eval()
        self.n_train_ = len(data)
        return self

    def _build(self) -> None:
        self.generator_ = Generator(len(self.classes_), self.size, self.z_dim, self.width)
        self.discriminator_ = Discriminator(len(self.classes_), self.size, self.width)

    def class_index(self, name: Any) -> int:
        """The index of class ``name``.

        Raises:
            ValueError: a class this GAN was not trained on, with the classes it knows.
        """
        if not hasattr(self, "classes_"):
            raise RuntimeError("this GAN is not fitted: call fit(train) or "
                               "ConditionalGAN.load(path) first")
        if str(name) not in self.classes_:
            raise ValueError(f"class {name!r} is not one this GAN was trained on; it "
                             f"knows {self.classes_}")
        return self.classes_.index(str(name))

    @torch.no_grad()
    def sample(self, name: Any, n: int, seed: int = 0) -> list[Image.Image]:
        """``n`` greyscale pictures of class ``name`` (the same ``seed``, the same
        pictures)."""
        y = torch.full((n,), self.class_index(name), dtype=torch.long)
        z = torch.randn(n, self.z_dim, generator=torch.Generator().manual_seed(seed))
        device = next(self.generator_.parameters()).device
        x = self.generator_.eval()(z.to(device), y.to(device)).cpu()[:, 0]
        pixels = ((x + 1) * 127.5).clamp(0, 255).round().to(torch.uint8).numpy()
        return [Image.fromarray(p, mode="L") for p in pixels]

    # -- save / load ----------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``config.yaml`` (settings, classes) and ``model.safetensors``."""
        from polymodal import __version__
        from polymodal.checkpoint import FORMAT, write_checkpoint

        holder = torch.nn.Module()
        holder.generator, holder.discriminator = self.generator_, self.discriminator_
        config = {"polymodal": FORMAT, "saved_by": __version__, "kind": KIND,
                  "settings": {k: getattr(self, k) for k in SETTINGS},
                  "fitted": {"classes": self.classes_, "n_train": self.n_train_}}
        return write_checkpoint(path, holder, config)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ConditionalGAN:
        """A saved GAN (safetensors + YAML; a newer format refused with the version it
        needs)."""
        from polymodal.checkpoint import read_saved

        saved = read_saved(path, "saved GAN")
        if saved.kind != KIND:
            raise ValueError(f"{path}: not a saved GAN (it holds {saved.kind or 'no kind'})")
        gan = cls(**saved.settings)
        gan.classes_, gan.n_train_ = saved.fitted["classes"], saved.fitted["n_train"]
        gan._build()
        holder = torch.nn.Module()
        holder.generator, holder.discriminator = gan.generator_, gan.discriminator_
        holder.load_state_dict(saved.state)
        gan.generator_.eval()
        return gan
