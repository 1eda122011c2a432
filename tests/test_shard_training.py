"""The estimators read a shard folder wherever they read a manifest: a Predictor and a
Pretrainer fit from shards without opening a media file, and what they give for the
shards' rows (probabilities, embeddings) is what they give for the manifest's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from polymodal.data.bundled import make_dataset
from polymodal.data.manifest import Manifest
from polymodal.data.shard_source import open_shards
from polymodal.data.shards import write_shards
from polymodal.predictor import Predictor
from polymodal.pretraining import Pretrainer


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """av-digits, 3 rows a class and split, with the labels of 2 training rows blanked."""
    root = tmp_path_factory.mktemp("avd")
    path = make_dataset("av-digits", root / "av-digits", limit=3, show_progress=False)
    table = pd.read_csv(path)
    train = table.index[table["split"] == "train"][:2]
    table.loc[train, "label"] = None
    table.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def shards(digits, tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards") / "digits"
    write_shards(digits, folder, shard_rows=8, image_size=None, show_progress=False)
    return folder


def _same_rows(digits, shards) -> Manifest:
    """The manifest's rows in the shard folder's order."""
    rows = open_shards(shards).index()["row"].to_numpy()
    return Manifest.read(digits).subset(rows)


def test_a_predictor_fits_from_shards_and_predicts_as_from_the_manifest(
        digits, shards, decodes, tmp_path):
    pred = Predictor(label="label", preset="tiny", fusion="concat", max_epochs=2,
                     patience=0, path=tmp_path / "run", modalities=["image", "audio"],
                     media_cache=None)
    pred.fit(shards, progress=False, on_error="skip")
    assert not decodes, "a fit from shards opened media files"
    assert pred.train_steps_ >= 2 and pred.columns_ == ["audio", "image"]
    # the two unlabelled training rows are left out and named by their manifest row
    table = pd.read_csv(digits)
    blank = set(table.index[table["label"].isna()])
    said = {p.row for p in pred.skipped_.problems if p.kind == "missing_label"}
    assert said == blank
    from_shards = pred.predict_proba(shards)
    from_manifest = pred.predict_proba(_same_rows(digits, shards))
    assert list(from_shards.index) == list(from_manifest.index)
    np.testing.assert_allclose(from_shards.to_numpy(), from_manifest.to_numpy(), atol=1e-5)
    metrics = pred.evaluate(shards)
    assert 0.0 <= metrics["accuracy"] <= 1.0


def test_a_pretrainer_fits_from_shards_and_embeds_as_from_the_manifest(
        digits, shards, decodes, tmp_path):
    pre = Pretrainer(preset="tiny", max_epochs=2, patience=0, path=tmp_path / "run",
                     modalities=["image", "audio"], media_cache=None)
    pre.fit(shards, progress=False)
    assert not decodes and pre.train_steps_ >= 2
    assert pre.pair_rows_ == {"audio~image": len(open_shards(shards).split("train"))}
    from_shards = pre.embed(shards)
    from_manifest = pre.embed(_same_rows(digits, shards))
    for c in ("audio", "image"):
        assert np.isfinite(from_shards[c]).all()
        np.testing.assert_allclose(from_shards[c], from_manifest[c], atol=1e-5)


def test_the_auto_preset_streams_shards_to_its_one_network(shards, tmp_path):
    """The auto search holds every row's features in memory; from shards it trains the
    fusion network on the rows as they stream."""
    pred = Predictor(label="label", max_epochs=1, patience=0, path=tmp_path / "run",
                     modalities=["image"], encoders={"image": "cnn"}, media_cache=None)
    pred.fit(shards, progress=False, on_error="skip")
    assert not pred.is_auto and pred.train_steps_ >= 1
    with pytest.raises(ValueError, match="label column is 'label', not 'digit'"):
        Predictor(label="digit", preset="tiny").fit(shards, progress=False)


def test_a_run_from_shards_resumed_at_an_epoch_end_ends_as_an_unbroken_one(shards, tmp_path):
    """The resumed run reads the next epoch's order (the trainer's epoch), not the
    first epoch's again, and ends with the same model."""
    import lightning as L

    class StopAfterTwo(L.Callback):
        def on_train_epoch_end(self, trainer, module):
            if trainer.current_epoch == 1:
                trainer.should_stop = True

    settings = dict(label="label", preset="tiny", fusion="concat", patience=0, seed=3,
                    modalities=["image"], media_cache=None, batch_size=8, max_epochs=3)
    whole = Predictor(**settings, path=tmp_path / "whole").fit(shards, progress=False,
                                                               on_error="skip")
    Predictor(**settings, path=tmp_path / "cut").fit(shards, progress=False, on_error="skip",
                                                     callbacks=[StopAfterTwo()])
    resumed = Predictor(**settings, path=tmp_path / "cut").fit(
        shards, progress=False, on_error="skip", resume=True)
    assert resumed.train_steps_ == whole.train_steps_
    np.testing.assert_allclose(resumed.predict_proba(shards).to_numpy(),
                               whole.predict_proba(shards).to_numpy(), atol=1e-6)


def test_the_commands_train_and_pretrain_from_a_shard_folder(shards, tmp_path):
    """`polymodal train` / `pretrain` take a shard folder as --train; `--set workers=2`
    streams it through two DataLoader workers, each reading its own shards."""
    from typer.testing import CliRunner

    from polymodal.cli import app

    runner = CliRunner()
    trained = runner.invoke(app, [
        "train", "--train", str(shards), "--label", "label", "--preset", "tiny",
        "--set", "max_epochs=1", "--set", "modalities=[image]", "--set", "workers=2",
        "--out", str(tmp_path / "model")])
    assert trained.exit_code == 0, trained.output
    pred = Predictor.load(tmp_path / "model")
    assert len(pred.predict(shards)) == len(open_shards(shards))
    pretrained = runner.invoke(app, [
        "pretrain", "--train", str(shards), "--preset", "tiny", "--set", "max_epochs=1",
        "--out", str(tmp_path / "pre")])
    assert pretrained.exit_code == 0, pretrained.output
    embedded = Pretrainer.load(tmp_path / "pre").embed(shards)
    assert set(embedded) == set(open_shards(shards).modality_columns)  # every column
