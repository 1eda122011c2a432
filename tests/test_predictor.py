"""The three-line Predictor: fit, predict, evaluate, embed, save, load, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from polymodal.data import ManifestError
from polymodal.data.bundled import make_dataset
from polymodal.predictor import Predictor


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return make_dataset("av-digits", tmp_path_factory.mktemp("avd") / "av-digits", limit=6,
                        show_progress=False)


@pytest.fixture(scope="module")
def fitted(digits, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    return Predictor(label="label", preset="tiny", fusion="gated", path=run,
                     encoders={"text": "tfidf"}).fit(digits, progress=False)


def test_fit_predict_evaluate_on_rows_that_lack_modalities(fitted, digits):
    table = pd.read_csv(digits)
    assert table["record"].isna().any()  # some rows lack the text record
    assert fitted.problem_type_ == "multiclass" and fitted.classes_[:3] == ["0", "1", "2"]
    assert fitted.columns_ == ["audio", "image", "record"]
    proba = fitted.predict_proba(digits)
    assert proba.shape == (60, 10)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert list(proba.index[:2]) == ["0000", "0010"]  # ids kept as written
    pred = fitted.predict(digits)
    assert set(pred) <= set(fitted.classes_)
    metrics = fitted.evaluate(digits)
    assert {"accuracy", "macro_f1", "roc_auc", "log_loss"} <= set(metrics)
    assert fitted.embed(digits).shape == (60, 16)
    assert (fitted.run_dir_ / "checkpoints" / "last.ckpt").exists()
    assert (fitted.run_dir_ / "logs" / "metrics.csv").exists()


def test_modality_report_and_gate_weights(fitted, digits):
    report = fitted.modality_report(digits)
    settings = report["setting"].tolist()
    for c in ("audio", "image", "record"):
        assert f"without {c}" in settings and f"{c} alone" in settings
    weights = report[report["setting"].str.startswith("gate weight")]["accuracy"]
    assert len(weights) == 3 and abs(weights.sum() - 1) < 1e-4


def test_saved_model_predicts_exactly_as_before(fitted, digits, tmp_path):
    fitted.save(tmp_path / "model")
    assert {p.name for p in (tmp_path / "model").iterdir()} == {
        "config.yaml", "model.safetensors", "encoder_state.json",
        "training_log.csv", "learning_curves.png"}  # the fit's curves travel with it
    loaded = Predictor.load(tmp_path / "model")
    assert loaded.training_log() is not None and loaded.chance_ == fitted.chance_
    pd.testing.assert_frame_equal(loaded.predict_proba(digits), fitted.predict_proba(digits))
    weights = tmp_path / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated by a crash, say
    with pytest.raises(ValueError, match="cannot read the saved Predictor"):
        Predictor.load(tmp_path / "model")
    with pytest.raises(ValueError, match="not a saved Predictor"):
        Predictor.load(tmp_path)


def _coloured(tmp_path, n=40, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        v = float(rng.uniform(0, 1))
        Image.new("RGB", (8, 8), (int(255 * v), 0, 0)).save(tmp_path / f"{i}.png")
        rows.append({"image": str(tmp_path / f"{i}.png"),
                     "text": "bright red" if v > 0.5 else "dark red", "value": v,
                     "tags": "red|bright" if v > 0.5 else "red"})
    return pd.DataFrame(rows)


def test_regression_and_multilabel(tmp_path):
    df = _coloured(tmp_path)
    reg = Predictor(label="value", preset="tiny", fusion="concat", path=tmp_path / "r",
                    max_epochs=2).fit(df.drop(columns="tags"), progress=False)
    assert reg.problem_type_ == "regression"
    assert {"rmse", "mae", "r2"} <= set(reg.evaluate(df.drop(columns="tags")))
    ml = Predictor(label="tags", problem_type="multilabel", preset="tiny", fusion="lowrank",
                   path=tmp_path / "m", max_epochs=2).fit(df.drop(columns="value"),
                                                          progress=False)
    assert ml.classes_ == ["bright", "red"]
    assert {"subset_accuracy", "macro_f1"} <= set(ml.evaluate(df.drop(columns="value")))


def test_bad_input_is_refused_before_training(tmp_path):
    df = _coloured(tmp_path, n=10)
    with pytest.raises(ManifestError, match="label column 'nope' is not in the manifest"):
        Predictor(label="nope", preset="tiny").fit(df, progress=False)
    with pytest.raises(ValueError, match="one class only"):
        Predictor(label="kind", preset="tiny").fit(df.assign(kind="red"), progress=False)
    with pytest.raises(ValueError, match="empty in every row"):
        Predictor(label="tags", preset="tiny").fit(df.assign(image=None), progress=False)
    with pytest.raises(ValueError, match="unknown preset"):
        Predictor(label="tags", preset="huge").fit(df, progress=False)
    with pytest.raises(KeyError, match="known fusions"):
        Predictor(label="tags", preset="tiny", fusion="magic").fit(df, progress=False)
    with pytest.raises(RuntimeError, match="not fitted"):
        Predictor(label="tags").predict(df)


def test_skip_keeps_training_and_reports_bad_rows(tmp_path):
    df = _coloured(tmp_path, n=20)
    (tmp_path / "3.png").write_bytes(b"broken")
    with pytest.raises(Exception, match="row 3, column 'image'"):
        Predictor(label="tags", preset="tiny", path=tmp_path / "a", max_epochs=1).fit(
            df, tuning=df.iloc[:0], progress=False)
    p = Predictor(label="tags", preset="tiny", path=tmp_path / "b", max_epochs=1).fit(
        df, tuning=df.iloc[:0], on_error="skip", progress=False)
    assert p.skipped_.rows == [3]
    assert "row" in (tmp_path / "b" / "skipped_rows.csv").read_text()


def test_cli_train_evaluate_predict(digits, tmp_path):
    import json

    from typer.testing import CliRunner

    from polymodal.cli import app

    runner = CliRunner()
    config = tmp_path / "train.yaml"
    config.write_text(f"train: {digits}\nlabel: label\npreset: tiny\nfusion: concat\n"
                      f"path: {tmp_path / 'run'}\n")
    result = runner.invoke(app, ["train", str(config), "--out", str(tmp_path / "model"),
                                 "--set", "max_epochs=1"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "model" / "model.safetensors").exists()
    result = runner.invoke(app, ["evaluate", str(tmp_path / "model"), str(digits), "--plots",
                                 str(tmp_path / "plots")])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "record alone" in result.output
    table = pd.read_csv(digits, dtype=str)
    n_test = int((table["split"] == "test").sum())
    assert f"scored the {n_test} rows of split 'test' of 60" in result.output  # no train rows
    assert {p.name for p in (tmp_path / "plots").iterdir()} >= {
        "confusion_matrix.png", "modality_contribution.png"}
    # found from outside: a manifest without a column the model was trained on was
    # refused, though an empty column is fine; it is that modality absent from every row
    no_record = tmp_path / "no_record.csv"
    table.drop(columns=["record"]).assign(
        image=lambda t: [str(Path(digits).parent / v) for v in t["image"]],
        audio=lambda t: [str(Path(digits).parent / v) for v in t["audio"]],
    ).to_csv(no_record, index=False)
    result = runner.invoke(app, ["evaluate", str(tmp_path / "model"), str(no_record),
                                 "--split", "all", "--json"])
    assert result.exit_code == 0, result.output
    assert "no column 'record'" in result.stderr and "absent from every row" in result.stderr
    report = runner.invoke(app, ["evaluate", str(tmp_path / "model"), str(no_record),
                                 "--split", "all"])  # the modality report evaluates 7 times
    assert report.exit_code == 0 and report.stderr.count("absent from every row") == 1
    assert 0 <= json.loads(result.stdout)["accuracy"] <= 1
    result = runner.invoke(app, ["predict", str(tmp_path / "model"), str(digits), "--out",
                                 str(tmp_path / "pred.csv"), "--proba"])
    assert result.exit_code == 0, result.output
    pred = pd.read_csv(tmp_path / "pred.csv", dtype={"id": str})
    assert len(pred) == 60 and pred["id"][0] == "0000" and "p_9" in pred.columns
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"train: {digits}\nlabel: label\nfusoin: gated\n")
    result = runner.invoke(app, ["train", str(bad)])
    assert result.exit_code == 2 and "unknown setting 'fusoin'" in result.output
    assert "did you mean 'fusion'?" in result.output


def test_fitted_predictor_writes_its_plots(fitted, digits, tmp_path):
    paths = fitted.plot(digits, tmp_path)
    assert sorted(p.name for p in paths) == ["confusion_matrix.png", "learning_curves.png",
                                             "modality_contribution.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


class _Crash(Exception):
    pass


def test_an_interrupted_run_resumes_to_the_same_model(tmp_path):
    import lightning as L

    class CrashAfterTwoEpochs(L.Callback):
        def on_train_epoch_end(self, trainer, module):
            if trainer.current_epoch == 1:
                raise _Crash("the machine went down")

    df = _coloured(tmp_path, n=32)
    settings = {"label": "tags", "preset": "tiny", "fusion": "concat", "dropout": 0.0,
                "max_epochs": 4, "batch_size": 8, "seed": 3}
    whole = Predictor(**settings, path=tmp_path / "whole").fit(df, progress=False)
    with pytest.raises(_Crash):
        Predictor(**settings, path=tmp_path / "cut").fit(
            df, progress=False, callbacks=[CrashAfterTwoEpochs()])
    assert (tmp_path / "cut" / "checkpoints" / "last.ckpt").exists()
    resumed = Predictor(**settings, path=tmp_path / "cut").fit(df, progress=False,
                                                             resume=True)
    np.testing.assert_allclose(resumed.predict_proba(df).to_numpy(),
                               whole.predict_proba(df).to_numpy(), atol=1e-5)
    checkpoints = sorted(p.name for p in (tmp_path / "cut" / "checkpoints").glob("*.ckpt"))
    assert checkpoints == ["best.ckpt", "last.ckpt"]  # replaced in place, not versioned
    # the log keeps the epochs before the crash: one learning curve, as if never cut
    from polymodal.plots import read_metrics

    def per_epoch(run):
        log = read_metrics(tmp_path / run / "logs" / "metrics.csv")
        return log.groupby("epoch")[["train_loss", "val_loss"]].mean()

    assert list(per_epoch("cut").index) == [0, 1, 2, 3]
    np.testing.assert_allclose(per_epoch("cut").to_numpy(), per_epoch("whole").to_numpy(),
                               atol=1e-5)
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        Predictor(**settings, path=tmp_path / "new").fit(df, progress=False, resume=True)


def test_frozen_pretrained_encoders_unfreeze_on_schedule(tmp_path):
    import lightning as L

    vectors = tmp_path / "glove.txt"
    vectors.write_text("bright 1 0 0 0\ndark 0 1 0 0\nred 0 0 1 0\n")
    df = _coloured(tmp_path, n=24)
    seen: list[bool] = []

    class Watch(L.Callback):
        def on_train_epoch_end(self, trainer, module):
            weights = module.model.encoder("text").embedding.weight
            seen.append(bool(weights.requires_grad))

    p = Predictor(label="tags", preset="tiny", fusion="concat", max_epochs=3,
                  path=tmp_path / "run", unfreeze_after=2,
                  encoders={"text": ("word-vectors", {"path": str(vectors)})})
    before = None

    class Snapshot(L.Callback):
        def on_train_start(self, trainer, module):
            nonlocal before
            before = module.model.encoder("text").embedding.weight.detach().clone()

    p.fit(df, progress=False, callbacks=[Watch(), Snapshot()])
    assert seen == [False, False, True]
    after = p.model_.encoder("text").embedding.weight.detach()
    assert not np.allclose(before.numpy(), after.numpy())  # trained in the last epoch


def test_noise_levels_corrupt_inputs_deterministically(fitted, digits):
    from polymodal.data.noise import noisy

    clean = fitted.evaluate(digits)
    assert fitted.evaluate(digits, noise={"image": 0.0}) == clean
    noisy_once = fitted.evaluate(digits, noise={"image": 1.0, "audio": 1.0})
    assert noisy_once == fitted.evaluate(digits, noise={"image": 1.0, "audio": 1.0})
    assert noisy_once != clean
    assert noisy("text", 1.0)("a red bird") == "zzxq zzxq zzxq"
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        noisy("image", 2.0)


def test_frozen_encoders_train_on_cached_features(tmp_path):
    vectors = tmp_path / "glove.txt"
    vectors.write_text("bright 1 0 0 0\ndark 0 1 0 0\nred 0 0 1 0\n")
    df = _coloured(tmp_path, n=24)
    p = Predictor(label="tags", preset="tiny", fusion="concat", max_epochs=2,
                  path=tmp_path / "run",
                  encoders={"text": ("word-vectors", {"path": str(vectors)})})
    p.fit(df, progress=False)
    from polymodal.encoders.cache_store import ChunkedFeatureCache

    (folder,) = (tmp_path / "run" / "feature-cache").iterdir()  # the encoder's
    assert len(ChunkedFeatureCache(folder.parent, fingerprint=folder.name)) == 2
    # "bright red" and "dark red"
    assert p.model_.cached == set()  # inference runs the live encoder
    again = Predictor.load(p.save(tmp_path / "model"))
    pd.testing.assert_frame_equal(again.predict_proba(df), p.predict_proba(df))


def test_balanced_class_weights_on_imbalanced_labels(tmp_path):
    df = _coloured(tmp_path, n=24)
    df["kind"] = ["rare"] * 3 + ["common"] * 21
    p = Predictor(label="kind", preset="tiny", fusion="concat", max_epochs=1,
                  class_weights="balanced", path=tmp_path / "run",
                  modalities=["image"])
    rows = df.drop(columns=["tags", "value"])
    p.fit(rows, tuning=rows, progress=False)  # every row trains
    assert p.problem_type_ == "binary" and "accuracy" in p.evaluate(df)
    # classes sort as ["common", "rare"]: the positive class "rare" weighs 21 / 3
    assert p.class_weights_.tolist() == [7.0]


def test_mixed_precision_trains_where_the_device_supports_it(digits, tmp_path):
    """bf16 autocast runs on a CPU too; the default stays full precision there."""
    from polymodal.training.trainer import default_precision

    p = Predictor(label="label", preset="tiny", fusion="concat", path=tmp_path,
                  precision="bf16-mixed", max_epochs=1).fit(digits, progress=False)
    proba = p.predict_proba(digits)
    assert np.isfinite(proba.to_numpy()).all()
    import torch

    expected = {"bf16-mixed", "16-mixed"} if torch.cuda.is_available() else {"32-true"}
    assert default_precision() in expected


def test_patience_zero_never_stops_early_and_the_cache_keeps_training_the_same(tmp_path):
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping

    class Stoppers(L.Callback):
        def on_train_start(self, trainer, module):
            self.found = [c.patience for c in trainer.callbacks
                          if isinstance(c, EarlyStopping)]

    df = _coloured(tmp_path, n=16)
    settings = {"label": "tags", "preset": "tiny", "fusion": "concat", "max_epochs": 2,
                "batch_size": 8, "seed": 1}
    seen: dict[int | None, list[int]] = {}
    for patience in (None, 2, 0):
        spy = Stoppers()
        Predictor(**settings, patience=patience, path=tmp_path / f"p{patience}").fit(
            df, progress=False, callbacks=[spy])
        seen[patience] = spy.found
    assert seen == {None: [3], 2: [2], 0: []}  # the tiny preset's 3, the given 2, none
    with pytest.raises(ValueError, match="patience must be >= 0"):
        Predictor(**settings, patience=-1, path=tmp_path / "neg").fit(df, progress=False)
    # decoding each picture once (the default memory cache) trains the same model
    a = Predictor(**settings, path=tmp_path / "a").fit(df, progress=False)
    b = Predictor(**settings, memory_cache_mb=0, path=tmp_path / "b").fit(df, progress=False)
    np.testing.assert_allclose(a.predict_proba(df).to_numpy(), b.predict_proba(df).to_numpy(),
                               atol=1e-6)


def test_last_checkpoint_is_the_last_epoch_even_when_validation_got_worse(tmp_path):
    import lightning as L
    import torch

    from polymodal.training.module import load_training_checkpoint

    class WorseEveryEpoch(L.Callback):  # a validation loss that never improves again
        def on_validation_epoch_end(self, trainer, module):
            trainer.callback_metrics["val_loss"] = torch.tensor(float(trainer.current_epoch))

    df = _coloured(tmp_path, n=16)
    Predictor(label="tags", preset="tiny", fusion="concat", max_epochs=3, batch_size=8,
              patience=0, path=tmp_path / "run").fit(df, progress=False,
                                                     callbacks=[WorseEveryEpoch()])
    checkpoints = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("*.ckpt")) == ["best.ckpt", "last.ckpt"]
    assert load_training_checkpoint(checkpoints / "best.ckpt")["epoch"] == 0
    assert load_training_checkpoint(checkpoints / "last.ckpt")["epoch"] == 2  # resumes at 3


def test_constant_schedule_holds_the_learning_rate_after_warm_up(tmp_path):
    import lightning as L

    class Rates(L.Callback):
        def __init__(self):
            self.seen: list[float] = []

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            self.seen.append(trainer.optimizers[0].param_groups[0]["lr"])

    df = _coloured(tmp_path, n=16)
    settings = {"label": "tags", "preset": "tiny", "fusion": "concat", "max_epochs": 3,
                "batch_size": 4, "lr": 1e-3, "seed": 0}
    rates = {}
    for schedule in ("cosine", "constant"):
        spy = Rates()
        Predictor(**settings, schedule=schedule, path=tmp_path / schedule).fit(
            df, progress=False, callbacks=[spy])
        rates[schedule] = spy.seen
    assert len(rates["constant"]) == len(rates["cosine"]) >= 6
    assert rates["constant"][-1] == pytest.approx(1e-3)  # held at the peak to the end
    assert rates["cosine"][-1] < 0.1 * 1e-3  # decayed towards zero
    assert max(rates["cosine"]) == pytest.approx(1e-3)  # the same peak after warm-up
    with pytest.raises(ValueError, match="schedule must be one of"):
        Predictor(label="tags", schedule="linear")


def test_rows_without_a_label_are_in_the_skip_report(tmp_path):
    """Found from outside: under on_error="skip" a row with an empty label was left out
    of training but not listed in skipped_rows.csv, though validate counts it."""
    df = _coloured(tmp_path, n=24)
    df.loc[[5, 9], "tags"] = None
    p = Predictor(label="tags", preset="tiny", path=tmp_path / "run", max_epochs=1).fit(
        df, tuning=df.iloc[:0], on_error="skip", progress=False)
    report = pd.read_csv(tmp_path / "run" / "skipped_rows.csv")
    missing = report[report["kind"] == "missing_label"]
    assert sorted(missing["row"]) == [5, 9] and set(missing["column"]) == {"tags"}
    assert {5, 9} <= set(p.skipped_.rows)


def test_a_class_only_in_the_tuning_rows_is_a_known_class(tmp_path):
    """Found running the README: a random 10% hold-out of a small manifest took every
    row of one class, and the first validation batch failed on "not one of the known
    classes". The classes are those of the training and tuning rows together."""
    df = _coloured(tmp_path, n=24)
    df["kind"] = ["warm"] * 12 + ["cool"] * 11 + ["rare"]
    p = Predictor(label="kind", preset="tiny", path=tmp_path / "run", max_epochs=1).fit(
        df.iloc[:23], tuning=df.iloc[21:], progress=False)
    assert p.classes_ == ["cool", "rare", "warm"]
    assert set(p.predict_proba(df).columns) == {"cool", "rare", "warm"}
