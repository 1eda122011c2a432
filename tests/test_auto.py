"""The auto fit: candidates tried, scored and listed; the kept mix saved and loaded;
failures and spent time limits; the ensemble's weights; handcrafted features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import make_colours, tone
from polymodal.auto.ensemble import greedy_weights, proba_loss
from polymodal.heads import make_task
from polymodal.predictor import Predictor

CHEAP = ["handcrafted-linear", "pretrained-linear", "fusion-network"]


@pytest.fixture(scope="module")
def colours(tmp_path_factory) -> pd.DataFrame:
    table = make_colours(tmp_path_factory.mktemp("colours"), n=132)
    return table.drop(columns=["caption"])  # pictures only: the towers load fast


@pytest.fixture(scope="module")
def fitted(colours, tmp_path_factory) -> Predictor:
    train = colours[colours.split == "train"]  # 110 rows: 55 to fit, 55 to judge a network
    return Predictor(label="colour", candidates=CHEAP, max_epochs=2, seed=0,
                     path=tmp_path_factory.mktemp("run")).fit(train[:55], train[55:],
                                                             progress=False)


def test_every_candidate_is_listed_and_the_kept_mix_predicts(fitted, colours):
    board = fitted.leaderboard()
    assert sorted(board["model"]) == sorted(CHEAP)
    assert (board["status"] == "ok").all(), board["status"].tolist()
    assert {"val_accuracy", "fit_s", "predict_rows_s", "weight"} <= set(board.columns)
    assert board["weight"].sum() == pytest.approx(1.0, abs=1e-3)
    scored = board.set_index("model")["scored_on"]
    assert "cross-validation" in scored["handcrafted-linear"]  # every row, not a hold-out
    assert scored["fusion-network"].startswith("validation")
    kept = set(board.loc[board["weight"] > 0, "model"])
    assert kept and kept <= set(CHEAP)
    assert fitted.auto_.describe().startswith("kept")
    test = colours[colours.split == "test"]
    proba = fitted.predict_proba(test)
    assert proba.shape == (len(test), 6)
    np.testing.assert_allclose(proba.to_numpy().sum(axis=1), 1.0, atol=1e-6)
    # solid colours: colour statistics alone separate them, whatever was kept
    assert fitted.evaluate(test)["accuracy"] >= 0.9


def test_the_kept_mix_saves_and_loads_to_the_same_answers(fitted, colours, tmp_path):
    test = colours[colours.split == "test"]
    loaded = Predictor.load(fitted.save(tmp_path / "model"))
    np.testing.assert_allclose(loaded.predict_proba(test).to_numpy(),
                               fitted.predict_proba(test).to_numpy(), atol=1e-5)
    assert loaded.leaderboard()["model"].tolist() == fitted.leaderboard()["model"].tolist()


def test_modality_report_and_an_absent_column(fitted, colours):
    test = colours[colours.split == "test"]
    report = fitted.modality_report(test)
    assert report["setting"].tolist() == ["all columns", "without image"]
    # without its only column every row looks the same: one answer for all
    assert fitted.predict(test.assign(image=None)).nunique() == 1


def test_a_failing_candidate_is_listed_and_the_fit_goes_on(colours, tmp_path, monkeypatch):
    from polymodal.auto import heads

    real = heads.make_head

    def broken(kind, *args, **kwargs):
        if kind == "mlp":
            raise MemoryError("no room for the MLP")
        return real(kind, *args, **kwargs)

    monkeypatch.setattr(heads, "make_head", broken)
    monkeypatch.setattr("polymodal.auto.candidates.make_head", broken)
    pred = Predictor(label="colour", candidates=["pretrained-mlp", "handcrafted-linear"],
                     path=tmp_path).fit(colours[colours.split == "train"], progress=False)
    board = pred.leaderboard().set_index("model")
    assert board.loc["pretrained-mlp", "status"].startswith("error: MemoryError")
    assert board.loc["handcrafted-linear", "status"] == "ok"
    assert pred.auto_.weights == {"handcrafted-linear": 1.0}


def test_a_spent_time_limit_still_returns_the_first_candidate(colours, tmp_path):
    pred = Predictor(label="colour", candidates=["handcrafted-linear", "pretrained-linear"],
                     path=tmp_path).fit(colours[colours.split == "train"], time_limit=0,
                                        progress=False)
    board = pred.leaderboard().set_index("model")
    assert board.loc["handcrafted-linear", "status"] == "ok"
    assert board.loc["pretrained-linear", "status"].startswith("skipped: the time limit")
    assert pred.predict(colours).notna().all()


def test_no_network_is_trained_on_too_few_validation_rows(colours, tmp_path):
    few = colours[colours.split == "train"][:50]  # 5 held out
    pred = Predictor(label="colour", candidates=["handcrafted-linear", "fusion-network"],
                     path=tmp_path).fit(few, progress=False)
    status = pred.leaderboard().set_index("model")["status"]
    assert status["fusion-network"].startswith("skipped: 5 validation rows")
    assert not (tmp_path / "fusion-network").exists()  # nothing was trained


def test_unknown_candidate_names_the_nearest():
    with pytest.raises(ValueError, match="pretrained-linear"):
        Predictor(label="y", candidates=["pretrained-linaer"])


def test_greedy_weights_keep_the_better_candidate_and_mix_complements():
    task = make_task("multiclass", ["a", "b"])
    y = np.array([0, 1, 0, 1])
    right = np.array([[0.9, 0.1], [0.1, 0.9], [0.9, 0.1], [0.1, 0.9]])
    wrong = right[:, ::-1]
    assert greedy_weights(task, y, {"wrong": wrong, "right": right}) == {"right": 1.0}
    # each right on half the rows: the mix beats both alone
    half_a = np.array([[0.9, 0.1], [0.1, 0.9], [0.4, 0.6], [0.6, 0.4]])
    half_b = np.array([[0.4, 0.6], [0.6, 0.4], [0.9, 0.1], [0.1, 0.9]])
    w = greedy_weights(task, y, {"a": half_a, "b": half_b})
    assert set(w) == {"a", "b"} and sum(w.values()) == pytest.approx(1.0)
    mixed = w["a"] * half_a + w["b"] * half_b
    assert proba_loss(task, y, mixed) < min(proba_loss(task, y, half_a),
                                            proba_loss(task, y, half_b))


@pytest.mark.parametrize("kind,proba", [
    ("multiclass", np.array([[0.2, 0.5, 0.3], [0.9, 0.05, 0.05]])),
    ("binary", np.array([[0.3, 0.7], [0.99, 0.01]])),
    ("multilabel", np.array([[0.2, 0.9], [0.5, 0.01]])),
    ("regression", np.array([[1.5], [-2.0]])),
])
def test_outputs_for_is_the_inverse_of_proba(kind, proba):
    task = make_task(kind, [] if kind == "regression" else [str(i) for i in
                                                             range(proba.shape[1])])
    np.testing.assert_allclose(task.proba(task.outputs_for(proba)), proba, atol=1e-9)


def test_handcrafted_features_tell_tones_and_colours_apart():
    from PIL import Image

    from polymodal.encoders.registry import build_encoder

    mfcc = build_encoder("mfcc-stats")
    low, high = (mfcc.preprocess(tone(0.5, freq=f)) for f in (220.0, 3000.0))
    assert low.shape == (mfcc.output_dim,) and not np.allclose(low, high)
    assert not mfcc.trainable
    assert mfcc.preprocess(np.zeros(10, np.float32)).isfinite().all()  # 0.6 ms of silence
    colour = build_encoder("colour-stats")
    red = colour.preprocess(Image.new("RGB", (20, 20), (255, 0, 0)))
    blue = colour.preprocess(Image.new("RGBA", (20, 20), (0, 0, 255, 255)))
    assert red.shape == (colour.output_dim,)
    assert red[0] > 0.99 and red[2] < 0.01 and blue[2] > 0.99  # the channel means


def _trial(name, head, val, oof=None):
    from polymodal.auto.model import CandidateSpec, Trial

    t = Trial(CandidateSpec(name, (), head, ""), status="ok", val_proba=val, oof=oof)
    if oof is not None:
        t.score, t.loss = float((oof[0].argmax(1) == oof[1]).mean()), 0.5
    return t


@pytest.mark.parametrize("n_val,kept", [(10, {"linear"}), (400, {"network"})])
def test_a_network_joins_only_when_surely_better_on_the_validation_rows(n_val, kept):
    """On 10 validation rows, a network right on 8 against the linear mix's 7 may be
    luck; on 400, right on 90% against 70% is not."""
    from polymodal.auto.ensemble import choose

    task = make_task("multiclass", ["a", "b"])
    y_all = np.arange(500) % 2
    right = np.eye(2)[y_all] * 0.8 + 0.1

    def correct_on(share: float, n: int) -> np.ndarray:  # right on the first share of rows
        return np.where((np.arange(n) < round(share * n))[:, None], right[:n],
                        right[:n, ::-1])

    lin = correct_on(0.7, 500)
    net = correct_on(0.8 if n_val == 10 else 0.9, n_val)
    trials = [_trial("linear", "linear", lin[:n_val], (lin, y_all)),
              _trial("network", "network", net)]
    weights = choose(task, trials, y_all[:n_val], set(), seed=0)
    assert {n for n, w in weights.items() if w >= 0.5} == kept
