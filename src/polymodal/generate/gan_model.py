"""The networks of the conditional GAN: a DCGAN generator (class embedding joined to
the noise, transposed convolutions, batch norm) and a discriminator with spectral norm
on every layer and a projection of the class (Miyato & Koyama 2018), trained with the
hinge loss. Spectral norm bounds the discriminator's Lipschitz constant, so its
gradients stay informative and training does not need DCGAN's careful balancing;
the projection conditions it on the class without concatenating a one-hot map."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class Generator(nn.Module):
    """Noise and a class -> a (1, size, size) picture in [-1, 1]."""

    def __init__(self, n_classes: int, size: int = 28, z_dim: int = 64, width: int = 64
                 ) -> None:
        super().__init__()
        if size % 4:
            raise ValueError(f"the GAN's picture size must be a multiple of 4, got {size}")
        self.base, self.width, self.z_dim = size // 4, width, z_dim
        self.embed = nn.Embedding(n_classes, z_dim)
        self.fc = nn.Sequential(nn.Linear(2 * z_dim, 2 * width * self.base ** 2),
                                nn.BatchNorm1d(2 * width * self.base ** 2), nn.ReLU())
        self.net = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.ConvTranspose2d(width, 1, 4, 2, 1), nn.Tanh())

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.fc(torch.cat([z, self.embed(y)], dim=1))
        return self.net(h.view(-1, 2 * self.width, self.base, self.base))


class Discriminator(nn.Module):
    """A picture and its class -> a score (high: real), spectrally normalised."""

    def __init__(self, n_classes: int, size: int = 28, width: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            spectral_norm(nn.Conv2d(1, width, 4, 2, 1)), nn.LeakyReLU(0.2),
            spectral_norm(nn.Conv2d(width, 2 * width, 4, 2, 1)), nn.LeakyReLU(0.2),
            nn.Flatten())
        features = 2 * width * (size // 4) ** 2
        self.out = spectral_norm(nn.Linear(features, 1))
        self.embed = spectral_norm(nn.Embedding(n_classes, features))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.net(x)
        return self.out(h)[:, 0] + (self.embed(y) * h).sum(dim=1)


def hinge_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The discriminator's hinge loss."""
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def hinge_g(fake: torch.Tensor) -> torch.Tensor:
    """The generator's hinge loss."""
    return -fake.mean()
