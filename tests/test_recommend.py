"""Multimodal recommendation: fused item embeddings, content-based and two-tower
recommendations, leave-one-out evaluation, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from polymodal.apps import Recommender, fuse_item_embeddings, simulate_users
from polymodal.data import Manifest


@pytest.fixture(scope="module")
def catalogue(colours):
    return colours.drop(columns=["split"])


@pytest.fixture(scope="module")
def model_dir(colour_model, tmp_path_factory):
    return colour_model.save(tmp_path_factory.mktemp("rec-model") / "m")


@pytest.fixture(scope="module")
def likes(catalogue):
    return simulate_users(Manifest.read(catalogue), n_users=60, category="colour", seed=0)


def test_fused_embeddings_skip_missing_columns():
    a = np.array([[1.0, 0.0], [np.nan, np.nan]], dtype=np.float32)
    b = np.array([[0.0, 1.0], [0.0, 1.0]], dtype=np.float32)
    fused = fuse_item_embeddings({"a": a, "b": b})
    np.testing.assert_allclose(fused[0], [2 ** -0.5, 2 ** -0.5], atol=1e-6)
    np.testing.assert_allclose(fused[1], [0.0, 1.0], atol=1e-6)  # only b counts


def test_simulated_users_follow_their_categories(catalogue, likes):
    colour = dict(zip(catalogue["id"].astype(str), catalogue["colour"], strict=True))
    top_share = likes.assign(c=likes["item"].map(colour)).groupby("user")["c"].agg(
        lambda s: s.value_counts().iloc[:2].sum() / len(s))
    assert top_share.mean() > 0.8
    assert likes.groupby("user").size().between(5, 12).all()


def test_content_recommendations_follow_the_liked_items(model_dir, catalogue):
    rec = Recommender(model_dir).fit(catalogue)
    reds = catalogue.loc[catalogue.colour == "red", "id"].astype(str).tolist()[:3]
    top = rec.recommend(reds, k=5)
    colour = dict(zip(catalogue["id"].astype(str), catalogue["colour"], strict=True))
    assert sum(colour[i] == "red" for i in top["item"]) >= 4
    assert not set(top["item"]) & set(reds)  # liked items are not recommended again
    assert top["score"].is_monotonic_decreasing


def test_leave_one_out_beats_popularity_and_two_towers_train(model_dir, catalogue, likes):
    rec = Recommender(model_dir, epochs=20).fit(catalogue, interactions=likes)
    content = rec.evaluate(likes, method="content")
    popular = rec.evaluate(likes, method="popularity")
    towers = rec.evaluate(likes, method="two-tower")
    assert content["users"] == likes["user"].nunique()
    assert content["hit_rate@10"] > popular["hit_rate@10"]
    assert towers["hit_rate@10"] > popular["hit_rate@10"]
    assert 0 <= towers["ndcg@10"] <= towers["hit_rate@10"] <= 1


def test_bad_input_is_refused(model_dir, catalogue):
    rec = Recommender(model_dir)
    with pytest.raises(RuntimeError, match="not fitted"):
        rec.recommend(["000"])
    rec.fit(catalogue)
    with pytest.raises(ValueError, match="unknown item ids"):
        rec.recommend(["nope"])
    with pytest.raises(ValueError, match="not in the catalogue"):
        Recommender(model_dir).fit(catalogue, interactions=pd.DataFrame(
            {"user": ["a", "a"], "item": ["000", "zzz"]}))
    with pytest.raises(ValueError, match="'user' column"):
        Recommender(model_dir).fit(catalogue, interactions=pd.DataFrame({"item": ["000"]}))


def test_cli_recommend(model_dir, catalogue, likes, tmp_path):
    import json

    from typer.testing import CliRunner

    from polymodal.cli import app

    catalogue.to_csv(tmp_path / "items.csv", index=False)
    likes.to_csv(tmp_path / "likes.csv", index=False)
    reds = ",".join(catalogue.loc[catalogue.colour == "red", "id"].astype(str)[:2])
    res = CliRunner().invoke(app, ["recommend", str(tmp_path / "items.csv"), "--model",
                                   str(model_dir), "--likes", reds, "--k", "3", "--json",
                                   "--interactions", str(tmp_path / "likes.csv")])
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.stdout)) == 3
    res = CliRunner().invoke(app, ["recommend", str(tmp_path / "items.csv"), "--model",
                                   str(model_dir), "--likes", "nope"])
    assert res.exit_code == 2 and "unknown item ids" in res.output


def test_precomputed_item_embeddings_give_the_same_recommendations(model_dir, catalogue):
    from polymodal.pretraining import Pretrainer

    m = Manifest.read(catalogue)
    embedded = Pretrainer.load(model_dir).embed(m)
    own = Recommender(model_dir).fit(catalogue)
    reused = Recommender(model_dir).fit(catalogue, item_embeddings=embedded)
    np.testing.assert_allclose(own.embeddings_, reused.embeddings_, atol=1e-5)
    liked = own.item_ids_[:2]
    assert list(own.recommend(liked, 5)["item"]) == list(reused.recommend(liked, 5)["item"])
    with pytest.raises(ValueError, match="one row per item"):
        Recommender(model_dir).fit(catalogue, item_embeddings={
            c: v[:3] for c, v in embedded.items()})
    with pytest.raises(ValueError, match="not among the embedded"):
        Recommender(model_dir, columns=["nope"]).fit(catalogue, item_embeddings=embedded)
