"""Contrastive pretraining, retrieval metrics, zero-shot and fine-tuning from a
pretrained checkpoint."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from polymodal.cli import app
from polymodal.data.bundled import make_dataset
from polymodal.objectives import ContrastiveLoss, content_hash, info_nce
from polymodal.predictor import Predictor
from polymodal.pretraining import (
    Pretrainer,
    chance_metrics,
    co_occurrence,
    pretrained_encoders,
    retrieval_metrics,
)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=-1)


# -- the loss ---------------------------------------------------------------------
def test_info_nce_prefers_aligned_pairs():
    torch.manual_seed(0)
    a = _unit(torch.randn(16, 8))
    scale = torch.tensor(10.0)
    aligned = info_nce(a, a, scale)
    shuffled = info_nce(a, a[torch.randperm(16)], scale)
    assert aligned < shuffled
    assert aligned < np.log(16)  # better than uniform


def test_duplicates_are_not_negatives():
    torch.manual_seed(0)
    base = _unit(torch.randn(4, 8))
    other = _unit(base + 0.1 * torch.randn(4, 8))
    a, b = torch.cat([base, base[:1]]), torch.cat([other, other[:1]])  # row 4 repeats row 0
    group = torch.tensor([0, 1, 2, 3, 0])
    exclude = group[:, None] == group[None]
    scale = torch.tensor(20.0)
    with_dup = info_nce(a, b, scale, exclude=exclude)
    naive = info_nce(a, b, scale)
    assert with_dup < naive  # the repeated row no longer counts against its twin
    # rows 0 and 4 see exactly the negatives of the unique set
    logits = scale * a @ b.T
    logits = logits.masked_fill(exclude & ~torch.eye(5, dtype=torch.bool), float("-inf"))
    per_row = torch.nn.functional.cross_entropy(logits, torch.arange(5), reduction="none")
    ref = torch.nn.functional.cross_entropy(scale * base @ other.T, torch.arange(4),
                                            reduction="none")
    torch.testing.assert_close(per_row[[0, 4]], ref[[0, 0]])


def test_loss_over_pairs_with_missing_modalities_and_gradients():
    torch.manual_seed(0)
    loss = ContrastiveLoss(["audio", "image", "text"], 8)
    emb = {c: _unit(torch.randn(6, 8, requires_grad=True)) for c in loss.columns}
    present = {"audio": torch.tensor([1, 1, 1, 0, 0, 0], dtype=torch.bool),
               "image": torch.ones(6, dtype=torch.bool),
               "text": torch.tensor([0, 0, 0, 1, 1, 0], dtype=torch.bool)}
    total, pairs = loss(emb, present)
    assert set(pairs) == {"audio~image", "image~text"}  # audio and text never co-occur
    total.backward()
    assert loss.log_scale.grad is not None and loss.log_scale.grad != 0
    anchor = ContrastiveLoss(["audio", "image", "text"], 8, anchor="image")
    assert anchor.pairs() == [("image", "audio"), ("image", "text")]
    with pytest.raises(ValueError, match="anchor"):
        ContrastiveLoss(["audio", "image"], 8, anchor="text")


def test_queue_adds_negatives_up_to_its_size():
    loss = ContrastiveLoss(["a", "b"], 4, queue_size=5)
    emb = {c: _unit(torch.randn(3, 4)) for c in "ab"}
    present = {c: torch.ones(3, dtype=torch.bool) for c in "ab"}
    first, _ = loss(emb, present)
    loss(emb, present)
    assert loss.queues["a"].items.shape == (5, 4)
    second, _ = loss(emb, present)
    assert second > first  # the same batch against more negatives is harder


def test_content_hash_groups_identical_inputs():
    x = torch.tensor([[1.0, 2.0], [1.0, 2.0], [2.0, 1.0]])
    h = content_hash(x)
    assert h[0] == h[1] and h[0] != h[2]
    s = content_hash(["a frog.", "a cat.", "a frog."])
    assert s[0] == s[2] and s[0] != s[1]


# -- retrieval metrics ------------------------------------------------------------
def test_retrieval_metrics_by_hand():
    gallery = torch.eye(4)
    # query 0 ranks gallery 0 first; query 1 ranks gallery 2 first, then 1; query 2
    # has two correct items ranked 1st and 3rd
    queries = _unit(torch.tensor([[1.0, 0, 0, 0], [0, 0.5, 1.0, 0], [0, 0.1, 1.0, 0.2]]))
    relevant = [[0], [1], [2, 1]]
    m = retrieval_metrics(queries, gallery, relevant, ks=(1, 2))
    assert m["R@1"] == pytest.approx(2 / 3)
    assert m["R@2"] == pytest.approx(1.0)
    assert m["median_rank"] == 1.0
    # AP: 1, 1/2, (1/1 + 2/3)/2
    assert m["mAP"] == pytest.approx((1 + 0.5 + (1 + 2 / 3) / 2) / 3)
    chance = chance_metrics([[0]], gallery_size=10, ks=(1, 5))
    assert chance["R@1"] == pytest.approx(0.1) and chance["R@5"] == pytest.approx(0.5)


def test_co_occurrence_counts_files_once_and_keeps_every_match():
    queries, gallery, relevant = co_occurrence(["A frog.", "A frog.", "A cat."],
                                               ["frog1.png", "frog2.png", "cat.png"])
    assert queries == ["A frog.", "A cat."] and len(gallery) == 3
    assert relevant == [[0, 1], [2]]


# -- the Pretrainer ---------------------------------------------------------------
@pytest.fixture(scope="module")
def pretrained(colour_model) -> Pretrainer:
    return colour_model


def test_pretraining_aligns_pictures_and_captions(pretrained, colours):
    test = colours[colours.split == "test"]
    table = pretrained.evaluate_retrieval(test).set_index("direction")
    assert set(table.index) == {"caption -> image", "image -> caption"}
    # a caption's correct pictures are those it was written for: one or two of 12
    _q, gallery, relevant = co_occurrence(test.caption.tolist(), test.image.tolist())
    chance = chance_metrics(relevant, len(gallery), ks=(1, 5))
    row = table.loc["caption -> image"]
    assert row["R@1"] >= 3 * chance["R@1"] and row["R@5"] > chance["R@5"], table
    zero = pretrained.evaluate_zero_shot(test, "image", "colour", templates=("{}",))
    assert zero["accuracy"] >= 0.75 and zero["chance"] == pytest.approx(1 / 6), zero


def test_untrained_projections_are_near_chance(colours, tmp_path):
    fresh = Pretrainer(preset="tiny", path=tmp_path, max_epochs=0).fit(
        colours[colours.split == "train"], progress=False)
    assert not (tmp_path / "logs" / "metrics.csv").exists() or "train_loss" not in (
        tmp_path / "logs" / "metrics.csv").read_text()  # max_epochs=0 trains nothing
    zero = fresh.evaluate_zero_shot(colours[colours.split == "test"], "image", "colour")
    assert zero["accuracy"] < 0.6


def test_saved_pretrainer_embeds_exactly_as_before(pretrained, colours, tmp_path):
    pretrained.save(tmp_path / "pre")
    loaded = Pretrainer.load(tmp_path / "pre")
    before, after = pretrained.embed(colours), loaded.embed(colours)
    for c in before:
        np.testing.assert_array_equal(before[c], after[c])
    text = loaded.embed_values("caption", ["red", "blue"])
    assert text.shape == (2, pretrained.dim_)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="not a saved Predictor"):
        Predictor.load(tmp_path / "pre")


def test_rows_lacking_a_modality_embed_as_nan(pretrained, colours):
    part = colours.copy()
    part.loc[:5, "caption"] = None
    emb = pretrained.embed(part)
    assert np.isnan(emb["caption"][:6]).all() and not np.isnan(emb["caption"][6:]).any()
    assert not np.isnan(emb["image"]).any()


def test_finetune_from_pretrained_and_probe(pretrained, colours, tmp_path):
    ckpt = pretrained.save(tmp_path / "pre")
    few = colours[colours.split == "train"].groupby("colour").head(2)
    probe = Predictor(label="colour", preset="tiny", fusion="concat", modalities=["image"],
                      freeze_encoders=True, path=tmp_path / "probe", max_epochs=40, lr=1e-2,
                      ).fit(few, colours[colours.split == "train"].drop(few.index),
                            progress=False, init_from=ckpt)
    image_enc = probe.model_.encoder("image")
    for name, value in image_enc.state_dict().items():  # frozen: still the pretrained one
        torch.testing.assert_close(value, pretrained.model_.encoder("image").state_dict()[name])
    assert probe.init_from_ == str(ckpt)
    acc = probe.evaluate(colours[colours.split == "test"])["accuracy"]
    assert acc >= 0.75  # 12 labels on pretrained features; chance is 1/6
    full = Predictor(label="colour", preset="tiny", fusion="concat", path=tmp_path / "ft",
                     max_epochs=2).fit(few, progress=False, init_from=ckpt)
    assert full.model_.encoder("caption").is_fitted  # the pretrained vocabulary came along
    again = Predictor.load(full.save(tmp_path / "ft-model"))
    pd.testing.assert_frame_equal(again.predict_proba(colours), full.predict_proba(colours))


# -- bad input --------------------------------------------------------------------
def test_one_modality_only_is_refused(colours, tmp_path):
    with pytest.raises(ValueError, match="two or more modalities"):
        Pretrainer(preset="tiny", path=tmp_path).fit(colours.drop(columns=["caption"]),
                                                     progress=False)


def test_pairs_without_overlap_are_refused(colours, tmp_path):
    apart = colours.copy()
    apart.loc[apart.index % 2 == 0, "caption"] = None
    apart.loc[apart.index % 2 == 1, "image"] = None
    with pytest.raises(ValueError, match="no row holds two"):
        Pretrainer(preset="tiny", path=tmp_path).fit(apart, progress=False)


def test_checkpoint_from_another_encoder_set_is_refused(pretrained, colours, tmp_path):
    ckpt = pretrained.save(tmp_path / "pre")
    roles = {"image": pretrained_roles(colours)["image"],
             "caption": pretrained_roles(colours)["caption"]}
    with pytest.raises(ValueError, match="pretrained with encoder"):
        pretrained_encoders(ckpt, ["caption"], roles, {"text": "tfidf"})
    extra = colours.assign(extra="more words here")
    with pytest.raises(ValueError, match="not for"):  # asked for a column it lacks
        Predictor(label="colour", preset="tiny", modalities=["image", "caption", "extra"]
                  ).fit(extra, init_from=ckpt, progress=False)
    # not asked: the columns the pretraining covers, said (the README's tuxpaint case)
    p = Predictor(label="colour", preset="tiny", max_epochs=1).fit(extra, init_from=ckpt,
                                                                   progress=False)
    assert p.columns_ == ["caption", "image"]
    with pytest.raises(ValueError, match="no such folder"):
        Predictor(label="colour", preset="tiny").fit(colours, init_from=tmp_path / "nope",
                                                     progress=False)


def pretrained_roles(frame: pd.DataFrame):
    from polymodal.data import Manifest

    return Manifest.read(frame).modality_columns


# -- the command line -------------------------------------------------------------
def test_cli_pretrain_retrieval_zero_shot_and_init_from(tmp_path):
    data = make_dataset("av-digits", tmp_path / "av-digits", limit=3, show_progress=False)
    runner = CliRunner()
    res = runner.invoke(app, ["pretrain", "--train", str(data), "--preset", "tiny",
                              "--out", str(tmp_path / "pre"), "--set", "max_epochs=1",
                              "--set", f"path={tmp_path / 'run'}"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["evaluate-retrieval", str(tmp_path / "pre"), str(data),
                              "--direction", "image:audio", "--json"])
    assert res.exit_code == 0, res.output
    import json

    records = json.loads(res.stdout)  # stderr says which model
    assert [r["direction"] for r in records] == ["image -> audio"]
    assert 0 <= records[0]["R@1"] <= records[0]["R@5"] <= records[0]["R@10"] <= 1
    res = runner.invoke(app, ["zero-shot", str(tmp_path / "pre"), str(data), "--column",
                              "image", "--classes", "zero,one", "--out",
                              str(tmp_path / "z.csv")])
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(tmp_path / "z.csv")) == 30
    res = runner.invoke(app, ["train", "--train", str(data), "--label", "label", "--preset",
                              "tiny", "--init-from", str(tmp_path / "pre"),
                              "--freeze-encoders", "--out", str(tmp_path / "m"),
                              "--set", "max_epochs=1", "--set", f"path={tmp_path / 'r2'}"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["pretrain", "--train", str(data), "--set", "colour=1"])
    assert res.exit_code == 2 and "unknown setting" in res.output
