"""The lazy dataset and its collate: presence masks, padding, labels, workers."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from polymodal.data import Manifest, MultimodalDataset, collate_examples
from polymodal.data.dataset import Example


def test_batch_has_presence_masks_zeros_and_padded_audio(media, tmp_path):
    df = pd.DataFrame({
        "image": ["media/red.png", None, "media/green.jpg"],
        "audio": ["media/tone.wav", "media/tone.ogg", None],  # 0.5 s and 1.0 s
        "caption": ["one", "", "three"],
        "label": ["a", "b", "a"],
    })
    ds = MultimodalDataset(Manifest.read(df, root=tmp_path), image_size=(6, 4),
                           label_map={"a": 0, "b": 1})
    batch = next(iter(ds.loader(batch_size=3)))
    assert list(batch.inputs) == ["audio", "caption", "image"]  # sorted keys
    assert batch.present["image"].tolist() == [True, False, True]
    assert batch.inputs["image"].shape == (3, 3, 6, 4)
    assert torch.all(batch.inputs["image"][1] == 0)
    assert batch.inputs["audio"].shape == (3, 16_000)
    assert batch.lengths["audio"].tolist() == [8_000, 16_000, 0]
    assert batch.present["audio"].tolist() == [True, True, False]
    assert batch.inputs["caption"] == ["one", "", "three"]
    assert batch.present["caption"].tolist() == [True, False, True]
    assert batch.labels.tolist() == [0, 1, 0]
    moved = batch.to("cpu")
    assert moved.inputs["image"].device.type == "cpu"


def test_transforms_by_column_or_modality_and_worker_processes(media, tmp_path):
    df = pd.DataFrame({"image": ["media/red.png"] * 5, "label": [0.5, 1.0, 1.5, 2.0, 2.5]})
    ds = MultimodalDataset(Manifest.read(df, root=tmp_path),
                           transforms={"image": lambda img: torch.tensor(img.size)})
    batches = list(ds.loader(batch_size=2, num_workers=2))
    assert torch.equal(batches[0].inputs["image"], torch.tensor([[12, 10], [12, 10]]))
    assert batches[0].labels.dtype == torch.float32
    assert sum(len(b) for b in batches) == 5


def test_unknown_label_and_bad_arguments(media, tmp_path):
    df = pd.DataFrame({"image": ["media/red.png"], "label": ["zebra"]})
    ds = MultimodalDataset(Manifest.read(df, root=tmp_path), label_map={"cow": 0})
    with pytest.raises(Exception, match="label 'zebra' is not one of the known classes"):
        ds[0]
    with pytest.raises(ValueError, match="on_error"):
        MultimodalDataset(Manifest.read(df, root=tmp_path), on_error="ignore")
    with pytest.raises(ValueError, match="not modality columns"):
        MultimodalDataset(Manifest.read(df, root=tmp_path), columns=["label"])


def test_images_of_different_sizes_need_a_size(media, tmp_path):
    df = pd.DataFrame({"image": ["media/red.png", "media/green.jpg"]})
    ds = MultimodalDataset(Manifest.read(df, root=tmp_path))
    with pytest.raises(ValueError, match="image_size"):
        collate_examples([ds[0], ds[1]])


def test_a_batch_of_rows_lacking_everything_is_still_a_batch():
    batch = collate_examples([Example(0, "x", {"image": None, "text": None}),
                              Example(1, "y", {"image": None, "text": None})])
    assert batch.present["image"].tolist() == [False, False]
    assert batch.labels is None


def test_memory_cache_decodes_each_file_once_within_its_budget(media, tmp_path, monkeypatch):
    df = pd.DataFrame({"image": ["media/red.png", "media/green.jpg", None, "media/red.png",
                                 "media/green.jpg", "media/red.png"],
                       "audio": ["media/tone.wav"] * 6,
                       "caption": ["a cat", "a dog", "a cat", "", "a cat", "a dog"]})
    m = Manifest.read(df, root=tmp_path)
    tokens = {"caption": lambda text: torch.tensor([len(text)])}
    plain = MultimodalDataset(m, image_size=(6, 4), transforms=tokens)
    cached = MultimodalDataset(m, image_size=(6, 4), transforms=tokens, memory_cache_mb=1)
    decoded: list[tuple[int, str]] = []
    decode = Manifest.decode

    def counting(self, row, column, options=None):
        decoded.append((row, column))
        return decode(self, row, column, options)

    monkeypatch.setattr(Manifest, "decode", counting)
    for _ in range(2):  # two epochs
        for i in range(len(df)):
            a, b = plain[i].inputs, cached[i].inputs
            assert (a["image"] is None) == (b["image"] is None)  # the empty cell stays empty
            if a["image"] is not None:
                assert torch.equal(a["image"], b["image"])
            assert torch.equal(a["audio"], b["audio"])
            assert (a["caption"] is None) == (b["caption"] is None)
            if a["caption"] is not None:
                assert torch.equal(a["caption"], b["caption"])
    # plain: 2 epochs x (6 image cells + 6 clips + 6 captions); cached: the 2 pictures,
    # the 1 clip and the 2 captions once each, and the 2 empty cells asked for again each
    # epoch (they hold nothing to keep)
    assert len(decoded) == 2 * 18 + 5 + 2 * 2
    assert len(cached.memory_cache) == 5

    small = MultimodalDataset(m, columns=["audio", "image"], image_size=(6, 4),
                              memory_cache_mb=1.5 * 3 * 6 * 4 * 4 / 2**20)
    for i in range(len(df)):
        small[i]
    assert len(small.memory_cache) == 1  # one 3 x 6 x 4 float picture fits, the next not
    assert small.memory_cache.bytes <= small.memory_cache.max_bytes
    with pytest.raises(ValueError, match="memory_cache_mb"):
        MultimodalDataset(m, memory_cache_mb=-1)
