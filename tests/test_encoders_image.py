"""Image encoders: scratch CNNs, EfficientNet-Lite0, Hugging Face vision models."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from polymodal.encoders import build_encoder

ODD_IMAGES = [Image.new("RGB", (1, 1), (255, 0, 0)), Image.new("L", (300, 20), 128),
              Image.new("RGBA", (40, 41), (0, 0, 255, 100))]


@pytest.mark.parametrize(("name", "size", "grid"), [("cnn", 32, 8 * 8), ("resnet", 64, 16 * 16),
                                                    ("strided-cnn", 75, 5 * 5)])
def test_scratch_cnns_take_any_image_and_train_every_parameter(name, size, grid):
    torch.manual_seed(0)
    enc = build_encoder(name, dim=24)
    out = enc.encode(ODD_IMAGES)
    assert enc.preprocess(ODD_IMAGES[1]).shape == (3, size, size)
    assert out.tokens.shape == (3, grid, 24) and out.pooled.shape == (3, 24)
    assert out.mask.all()
    out.pooled.sum().backward()
    assert [n for n, p in enc.named_parameters() if p.grad is None] == []


def test_efficientnet_lite0_encoder_is_frozen_with_a_7x7_grid():
    enc = build_encoder("efficientnet-lite0")
    assert enc.output_dim == 1280 and not enc.trainable
    assert all(not p.requires_grad for p in enc.parameters())
    out = enc.encode(ODD_IMAGES[:2])
    assert out.tokens.shape == (2, 49, 1280) and out.pooled.shape == (2, 1280)
    enc.train()
    assert not enc.net.training  # a frozen encoder stays in eval mode (BatchNorm statistics)


def _save_tiny(folder, model, processor):
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return str(folder)


def test_hugging_face_vision_models_from_folders(tmp_path, monkeypatch):
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        ConvNextImageProcessor,
        ResNetConfig,
        ResNetModel,
        ViTConfig,
        ViTImageProcessor,
        ViTModel,
    )

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    vit = _save_tiny(tmp_path / "vit", ViTModel(ViTConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
        image_size=32, patch_size=8)), ViTImageProcessor(size={"height": 32, "width": 32}))
    resnet = _save_tiny(tmp_path / "resnet", ResNetModel(ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1])),
        ConvNextImageProcessor(size={"shortest_edge": 32}))
    clip = _save_tiny(tmp_path / "clip", CLIPModel(CLIPConfig(
        text_config={"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "intermediate_size": 20, "vocab_size": 50},
        vision_config={"hidden_size": 24, "num_hidden_layers": 1, "num_attention_heads": 2,
                       "intermediate_size": 20, "image_size": 32, "patch_size": 16},
        projection_dim=8)), CLIPImageProcessor(size={"shortest_edge": 32},
                                               crop_size={"height": 32, "width": 32}))
    for folder, dim, n_tokens in ((vit, 32, 17), (resnet, 16, None), (clip, 24, 5)):
        enc = build_encoder("hf-vision", model=folder)
        assert enc.output_dim == dim and not enc.trainable
        out = enc.encode(ODD_IMAGES)
        assert out.pooled.shape == (3, dim)
        assert out.tokens.shape[0] == 3 and out.tokens.shape[2] == dim
        if n_tokens:
            assert out.tokens.shape[1] == n_tokens
        assert torch.isfinite(out.pooled).all()


def test_strided_cnn_tags_each_cell_with_its_coordinates():
    """On a blank picture every cell sees the same pixels (away from the borders), so
    the cells differ by their coordinates only, and not at all without them."""
    torch.manual_seed(0)
    blank = [Image.new("RGB", (64, 64), (255, 255, 255))]
    tagged = build_encoder("strided-cnn", image_size=64, dim=8).eval()
    plain = build_encoder("strided-cnn", image_size=64, dim=8, coordinates=False).eval()
    assert tagged.grid_side == 4 and tagged.config()["coordinates"] is True
    with torch.no_grad():
        inner_tagged = tagged.encode(blank).tokens[0].view(4, 4, 8)[1:3, 1:3].reshape(4, 8)
        inner_plain = plain.encode(blank).tokens[0].view(4, 4, 8)[1:3, 1:3].reshape(4, 8)
    torch.testing.assert_close(inner_plain, inner_plain[:1].expand(4, 8))
    distances = torch.cdist(inner_tagged, inner_tagged)
    assert distances[~torch.eye(4, dtype=torch.bool)].min() > 1e-4  # each cell its own


def test_strided_cnn_takes_one_width_or_four():
    wide = build_encoder("strided-cnn", image_size=64, dim=8, channels=(32, 64, 128, 256))
    convs = [m for m in wide.net if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128, 256]
    assert wide.to_dim.in_channels == 256 + 2  # the last width and the coordinates
    assert wide.config()["channels"] == [32, 64, 128, 256]
    again = build_encoder("strided-cnn", **wide.config())  # a saved config builds it back
    assert [m.out_channels for m in again.net if isinstance(m, torch.nn.Conv2d)] == [
        32, 64, 128, 256]
    out = wide.encode([Image.new("RGB", (75, 75), (200, 10, 10))])
    assert out.tokens.shape == (1, 16, 8)
    with pytest.raises(ValueError, match="one width or four"):
        build_encoder("strided-cnn", channels=(8, 8))


def test_strided_cnn_hypercolumn_appends_an_early_block_averaged_per_cell():
    """Each final cell also carries block 2's output averaged over that cell's 4 x 4
    patch of block 2's 16 x 16 grid (64 px in); the config builds it back."""
    torch.manual_seed(0)
    enc = build_encoder("strided-cnn", image_size=64, dim=8, channels=(8, 12, 16, 20),
                        hypercolumn=2).eval()
    assert enc.to_dim.in_channels == 20 + 12 + 2  # last block, block 2, coordinates
    picture = Image.new("RGB", (64, 64), (255, 255, 255))
    picture.paste((255, 0, 0), (3, 3, 11, 11))  # a red square in the top-left cell
    x = enc.preprocess(picture)[None]
    with torch.no_grad():
        early = enc.net[:6](x)  # (1, 12, 16, 16)
        last = enc.net[6:](early)  # (1, 20, 4, 4)
        cell = early[0, :, :4, :4].mean(dim=(1, 2))
        manual = torch.cat([last[0, :, 0, 0], cell, torch.tensor([-1.0, -1.0])])
        expected = enc.to_dim.weight[:, :, 0, 0] @ manual + enc.to_dim.bias
        torch.testing.assert_close(enc(x).tokens[0, 0], expected)
    again = build_encoder("strided-cnn", **enc.config())
    assert again.config() == enc.config() and again.to_dim.in_channels == 34
    with pytest.raises(ValueError, match="hypercolumn must be a conv block 1 to 3"):
        build_encoder("strided-cnn", hypercolumn=4)
