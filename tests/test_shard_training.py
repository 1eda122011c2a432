"""The estimators read a shard folder wherever they read a manifest: a Predictor and a
Pretrainer fit from shards without opening a media file, and what they give for the
shards' rows (probabilities, embeddings) is what they give for the manifest's."""

from __future__ import annotations

import os

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


TORCHRUN_FIT = """
import json, os, sys
import lightning as L
from polymodal.pretraining import Pretrainer

folder, run, out = sys.argv[1:4]

class Seen(L.Callback):  # the rows of each epoch's batches, on this process
    def __init__(self):
        self.rows = {}
    def on_train_batch_start(self, trainer, module, batch, index):
        self.rows.setdefault(trainer.current_epoch, []).extend(batch.indices.tolist())

seen = Seen()
pre = Pretrainer(preset="tiny", max_epochs=2, batch_size=4, patience=0, path=run,
                 modalities=["image", "audio"], media_cache=None, seed=0)
pre.fit(folder, devices=2, num_nodes=2, progress=False, callbacks=[seen])
rank = int(os.environ["RANK"])
probe = pre.embed(folder)["image"][:6].tolist()
json.dump({"rows": seen.rows, "steps": pre.train_steps_, "probe": probe},
          open(f"{out}.{rank}.json", "w"))
if rank == 0:
    pre.save(out + "-model")
"""


@pytest.mark.slow
def test_a_pretrainer_fits_from_shards_on_two_nodes_of_two_processes(tmp_path):
    """`Pretrainer.fit(folder, devices=2, num_nodes=2)` under two torchrun launches
    (gloo, loopback): each process reads its own rows of each epoch (none twice), all
    take the same steps, and every replica ends with the same weights."""
    import json
    import socket
    import subprocess
    import sys

    digits = make_dataset("av-digits", tmp_path / "avd", limit=12, show_progress=False)
    shards = tmp_path / "shards"  # 40 training rows: 10 a process, 2 batches and a half
    write_shards(digits, shards, shard_rows=8, image_size=None, show_progress=False)
    script = tmp_path / "fit.py"
    script.write_text(TORCHRUN_FIT)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    out = tmp_path / "out"
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
         "--nproc-per-node", "2", "--node-rank", str(node), "--master-addr", "127.0.0.1",
         "--master-port", str(port), str(script), str(shards), str(tmp_path / "run"),
         str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for node in range(2)]
    logs = [p.communicate(timeout=600)[0] for p in nodes]
    assert all(p.returncode == 0 for p in nodes), "\n".join(logs)[-4000:]
    ranks = [json.loads((tmp_path / f"out.{r}.json").read_text()) for r in range(4)]
    train = set(open_shards(shards).split("train").positions().tolist())
    assert len({r["steps"] for r in ranks}) == 1 and ranks[0]["steps"] > 0
    for epoch in ("0", "1"):
        rows = [r["rows"][epoch] for r in ranks]
        assert len({len(x) for x in rows}) == 1  # equal shares
        every = [i for x in rows for i in x]
        assert len(every) == len(set(every))  # no row twice in an epoch
        assert set(every) <= train
    for r in ranks[1:]:  # DDP keeps the replicas in step
        np.testing.assert_allclose(r["probe"], ranks[0]["probe"], atol=1e-6)
    again = Pretrainer.load(tmp_path / "out-model").embed(shards)["image"][:6]
    np.testing.assert_allclose(again, ranks[0]["probe"], atol=1e-5)
