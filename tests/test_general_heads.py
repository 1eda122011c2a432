"""The general model's trained heads (residual LiT heads on cached tower outputs), its
corpus' name cleaning and the leave-one-source-out split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polymodal.library.general.features import Features, distinct
from polymodal.library.general.heads import DIM, HeadSettings, embed, train_heads, untrained_weights
from polymodal.library.general.loso import gallery_index, measure, training_names
from polymodal.library.general.sources import HELD_OUT, Source, caption_key, clean_art_name


def _pairs(n: int, seed: int = 0) -> Features:
    """Captions in an 8-d subspace, their pictures the same vectors with those 8 axes
    shuffled: the untrained (identity) heads match them poorly, trained heads well."""
    rng = np.random.default_rng(seed)
    words = np.zeros((n, DIM - 1), np.float32)
    words[:, :8] = rng.normal(size=(n, 8))
    words /= np.linalg.norm(words, axis=1, keepdims=True)
    u = words.copy()
    u[:, :8] = words[:, [3, 0, 6, 1, 7, 2, 5, 4]]
    images = np.concatenate([u, np.full((n, 1), 0.1)], axis=1).astype(np.float32)
    images /= np.linalg.norm(images, axis=1, keepdims=True)
    return Features("synthetic", [f"thing {i}" for i in range(n)], images, words)


def test_trained_heads_beat_the_untrained_ones_and_keep_the_nothing_axis() -> None:
    data = _pairs(200)
    weights = train_heads(data, HeadSettings(epochs=30, batch_size=100, lr=1e-2, anchor=1e-4))
    assert torch.equal(weights["image"][-1], torch.eye(DIM)[-1])  # passed through
    assert torch.equal(weights["image"][:, -1], torch.eye(DIM)[:, -1])
    assert torch.count_nonzero(weights["caption"][-1]) == 0  # a sentence has none of it
    before, _ = measure(embed(untrained_weights(), "image", data.images),
                        embed(untrained_weights(), "caption", data.words), data.captions)
    after, _ = measure(embed(weights, "image", data.images),
                       embed(weights, "caption", data.words), data.captions)
    assert after["R@1"] > before["R@1"] + 0.1


def test_a_strong_pull_keeps_the_untrained_heads() -> None:
    weights = train_heads(_pairs(64), HeadSettings(epochs=2, batch_size=32, anchor=1e6))
    for column, w in untrained_weights().items():
        assert torch.allclose(weights[column], w, atol=1e-3)


def test_training_needs_pairs() -> None:
    with pytest.raises(ValueError, match="at least 2 names"):
        train_heads(_pairs(1))


def _two_pictures_a_name(n: int) -> Features:
    """``_pairs(n)`` with each name given a second picture (another shuffle of its
    axes) after the first ones."""
    data = _pairs(n)
    other = data.images.copy()
    other[:, :8] = data.images[:, [5, 4, 1, 7, 0, 3, 2, 6]]
    return Features("two", data.captions * 2, np.concatenate([data.images, other]),
                    np.concatenate([data.words, data.words]))


def test_an_epoch_trains_on_one_picture_a_name() -> None:
    data = _two_pictures_a_name(40)
    s = HeadSettings(epochs=3, batch_size=16, lr=1e-2)
    first = train_heads(data, s)
    assert all(torch.equal(first[c], w) for c, w in train_heads(distinct(data), s).items())
    sampled = train_heads(data, HeadSettings(epochs=3, batch_size=16, lr=1e-2,
                                             per_name="sampled"))
    again = train_heads(data, HeadSettings(epochs=3, batch_size=16, lr=1e-2,
                                           per_name="sampled"))
    assert all(torch.equal(sampled[c], w) for c, w in again.items())  # seeded
    assert not torch.allclose(sampled["image"], first["image"])  # the second pictures count
    with pytest.raises(ValueError, match="per_name"):
        HeadSettings(per_name="all")


def test_sampled_pictures_teach_every_picture_of_a_name() -> None:
    data = _two_pictures_a_name(200)
    second = data.take(np.arange(200, 400))
    scores = {}
    for mode in ("first", "sampled"):
        w = train_heads(data, HeadSettings(epochs=40, batch_size=100, lr=1e-2, anchor=1e-4,
                                           per_name=mode))
        scores[mode], _ = measure(embed(w, "image", second.images),
                                  embed(w, "caption", second.words), second.captions)
    assert scores["sampled"]["R@10"] > scores["first"]["R@10"] + 0.1


def test_names_are_cleaned_and_shared_names_are_one_concept() -> None:
    assert clean_art_name("spearman-attack-se-3") == "spearman"
    assert clean_art_name("castle-ruins2") == "castle ruins"
    assert caption_key("folder downloads") == caption_key("downloads folder")
    data = Features("x", ["edit redo", "redo edit", "go top"], np.zeros((3, DIM)),
                    np.zeros((3, DIM - 1)))
    assert distinct(data).captions == ["edit redo", "go top"]


def test_unseen_queries_are_measured_apart() -> None:
    data = _pairs(20)
    keep = np.array([i % 2 == 0 for i in range(20)])
    images = embed(untrained_weights(), "image", data.images)
    words = embed(untrained_weights(), "caption", data.words)
    m, chance = measure(images, words, data.captions, keep)
    assert m["queries"] == 10 and chance["R@10"] == pytest.approx(0.5)
    none, _ = measure(images, words, data.captions, np.zeros(20, bool))
    assert none["queries"] == 0


def test_the_left_out_source_is_never_trained_on() -> None:
    for name in ("adwaita", "wesnoth", "tuxpaint"):
        names = training_names(name)
        assert name not in names and "tuxpaint" not in names
    assert "tuxpaint-train" in training_names("adwaita")
    assert "tuxpaint-train" not in training_names("tuxpaint")
    assert list(gallery_index(5)) == [0, 1, 2, 3, 4] and len(gallery_index(3000)) == 1000


def test_held_out_packages_are_refused() -> None:
    for package in (*HELD_OUT, "fonts-noto-color-emoji"):
        with pytest.raises(ValueError, match="held-out"):
            Source("x", package, "-", "-", lambda: None).rows()  # type: ignore[arg-type]


def test_the_mixed_folder_hits_are_counted_per_kind() -> None:
    import pandas as pd

    from polymodal.library.general.mixed import hits

    questions = pd.DataFrame({"question": ["a cat", "a cow", "moo"],
                              "answer": ["photo-0.png", "clip-1.png", "sound-2.ogg"],
                              "kind": ["photo", "clip art", "sound effect"]})
    found = [["photo-0.png"], ["x.png", "clip-1.png"], [f"f{i}" for i in range(10)]]
    table = hits(found, questions)
    assert table.loc["photo", "hit1"] == 1.0 and table.loc["clip art", "hit1"] == 0.0
    assert table.loc["clip art", "hit10"] == 1.0 and table.loc["sound effect", "hit10"] == 0
    assert table.loc["all", "questions"] == 3
    assert table.loc["all", "hit10"] == pytest.approx(2 / 3)


def test_the_pooled_features_fade_with_the_bridges_confidence() -> None:
    from polymodal.encoders.bridge import with_pooled

    placed = torch.zeros(2, DIM)
    placed[0, 0] = 1.0  # placed with full confidence
    placed[1, -1] = 1.0  # all on the "nothing" axis
    out = with_pooled(placed, torch.ones(2, 1280) * 3)
    assert out.shape == (2, DIM + 1280)
    assert out[0, DIM:].norm() == pytest.approx(1.0) and out[1, DIM:].abs().max() == 0
    plain = with_pooled(placed[:, :-1], torch.ones(2, 1280), null_axis=False)
    assert plain[1, DIM - 1:].norm() == pytest.approx(1.0)


def test_untrained_heads_reading_pooled_features_are_the_bridge_alone() -> None:
    from polymodal.library.general.heads import picture_inputs

    data = _pairs(30)
    with pytest.raises(ValueError, match="pooled"):
        picture_inputs(data, pooled=True)
    data.pooled = np.random.default_rng(0).normal(size=(30, 1280)).astype(np.float32)
    inputs = picture_inputs(data, pooled=True)
    assert np.allclose(embed(untrained_weights(pooled=True), "image", inputs),
                       embed(untrained_weights(), "image", data.images), atol=1e-6)
    weights = train_heads(data, HeadSettings(epochs=1, batch_size=16, pooled=True))
    assert weights["image"].shape == (DIM, DIM + 1280)
    assert torch.count_nonzero(weights["image"][:, DIM - 1] - torch.eye(DIM)[:, -1]) == 0


@pytest.mark.slow
def test_the_untrained_builtin_still_builds_and_loads(tmp_path) -> None:
    from polymodal.library.general.build import build_model
    from polymodal.pretraining import Pretrainer

    old = Pretrainer.load(build_model(tmp_path / "general"))
    assert old.model_.encoder("image").output_dim == DIM
    assert old.model_.encoder("image").pooled is False


def test_chunks_encoded_in_two_processes_are_the_ones_encoded_here(tmp_path) -> None:
    """The corpus's pictures encoded by worker processes: the same features, chunk for
    chunk, as in this process, and each chunk kept once (no half-written file left)."""
    from PIL import Image

    from polymodal.library.general.tuning import chunked_features

    paths = []
    for i in range(5):
        path = tmp_path / f"p{i}.png"
        Image.new("RGB", (24, 24), (40 * i, 255 - 40 * i, 90)).save(path)
        paths.append(str(path))
    here = chunked_features(paths, tmp_path / "here", chunk=2, processes=1)
    there = chunked_features(paths, tmp_path / "there", chunk=2, processes=2)
    assert here.shape == (5, 1280)
    np.testing.assert_allclose(here, there, rtol=1e-4, atol=1e-5)  # threads: rounding
    assert sorted(p.suffix for p in (tmp_path / "there").iterdir()) == [".npy"] * 3


def test_a_picture_that_cannot_be_decoded_is_left_out_of_its_source(tmp_path) -> None:
    """An SVG bomb among a source's pictures: no features (NaN), its row dropped with
    its caption, the others kept in order."""
    import pandas as pd
    from PIL import Image

    from polymodal.library.general.features import source_features
    from polymodal.library.general.sources import Source
    from polymodal.library.general.tuning import pooled_features

    good = tmp_path / "good.png"
    Image.new("RGB", (24, 24), (200, 30, 30)).save(good)
    bomb = tmp_path / "bomb.svg"  # 10 levels of 10 <use>: 10^10 elements drawn
    defs = ['<g id="l0"><rect width="1" height="1"/></g>'] + [
        f'<g id="l{i}">' + f'<use xlink:href="#l{i - 1}"/>' * 10 + "</g>" for i in range(1, 11)]
    bomb.write_text('<svg xmlns="http://www.w3.org/2000/svg" '
                    'xmlns:xlink="http://www.w3.org/1999/xlink" width="10" height="10">'
                    f'<defs>{"".join(defs)}</defs><use xlink:href="#l10"/></svg>')
    feats = pooled_features([str(good), str(bomb)])
    assert np.isfinite(feats[0]).all() and np.isnan(feats[1]).all()
    rows = pd.DataFrame({"image": [str(bomb), str(good)], "caption": ["bomb", "red square"]})
    source = Source("test", "none", "none", "test", lambda: rows)
    kept = source_features(source, tmp_path / "cache")
    assert kept.captions == ["red square"] and kept.images.shape[0] == 1
