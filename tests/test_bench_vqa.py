"""The VQA benchmark's quick path: both models trained and scored per question family,
the section and the plot written (the full run is `make bench`)."""

from __future__ import annotations

import pandas as pd
import pytest
from PIL import Image

from benchmarks import vqa, vqa_recipe
from polymodal import Manifest, Predictor
from polymodal.data.bundled import make_dataset
from polymodal.encoders import build_encoder


def test_quick_vqa_benchmark_scores_both_models_per_family(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYMODAL_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(vqa, "RESULTS", tmp_path / "results")
    section = vqa.run(quick=True, then=(1, vqa_recipe.LR))
    # each model's continuation (one more epoch at a held rate) first, then its first stage
    assert [row[0] for row in section.rows] == [*vqa.SETTINGS, *vqa.SETTINGS]
    first = section.columns.index("relational accuracy")
    families = section.columns.index("shape"), section.columns.index("count")
    for row in section.rows[:2]:
        assert row[1:3] == ["1 + 1", f"{vqa_recipe.LR:g} held"]
    for row in section.rows[2:]:
        assert row[1:3] == ["1", f"{vqa_recipe.LR:g} held"]  # the quick recipe: one epoch
    for row in section.rows:
        for value in row[first:first + 2] + row[families[0]:families[1] + 1]:
            assert 0.0 <= float(value) <= 1.0
    assert (tmp_path / "results" / "vqa-quick.png").stat().st_size > 10_000
    assert "vqa-quick.png" in section.notes
    clocks = sorted((tmp_path / "results" / "runs").glob("*/epoch_seconds.csv"))
    assert len(clocks) == 4  # per model and stage: its one epoch's time, kept across resumes
    for clock in clocks:
        assert list(pd.read_csv(clock)["epoch"]) == [0]
        assert vqa_recipe.EpochClock.total(clock) > 0
    # read back from the log, nothing trained
    again = vqa.run(quick=True, train=False, then=(1, vqa_recipe.LR))
    assert again.rows == section.rows


def test_the_vqa_picture_encoder_gives_16_objects_so_256_pairs():
    name, options = vqa_recipe.ENCODERS["image"]
    out = build_encoder(name, **options).encode([Image.new("RGB", (75, 75))])
    assert out.tokens.shape[1] == 16


def test_a_resumed_run_counts_each_epoch_once(tmp_path):
    clock = tmp_path / "epoch_seconds.csv"
    clock.write_text("epoch,seconds\n0,10.0\n1,12.0\n1,11.0\n2,9.5\n")  # epoch 1 redone
    assert vqa_recipe.EpochClock.total(clock) == 10.0 + 11.0 + 9.5
    assert vqa_recipe.EpochClock.total(tmp_path / "none.csv") == 0.0


def test_warm_start_begins_from_the_other_run_unless_resuming(tmp_path):
    import copy

    import lightning as L
    import torch

    from polymodal.training.module import load_training_checkpoint

    class Weights(L.Callback):  # the weights the first training step sees
        def on_train_start(self, trainer, module):
            self.first = copy.deepcopy(module.state_dict())

    manifest = Manifest.read(make_dataset("sort-of-clevr", tmp_path / "soc", limit=2,
                                          show_progress=False), label="answer")
    vqa_recipe.train_vqa(manifest, "concat", 0, 1, tmp_path / "a", tune_on_train=True)
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    trained = load_training_checkpoint(last)["state_dict"]
    spy = Weights()
    vqa_recipe.train_vqa(manifest, "concat", 1, 1, tmp_path / "b", tune_on_train=True,
                         schedule="constant", start_from=last)
    p = Predictor(label="answer", modalities=["image", "question"], fusion="concat",
                  preset="fast", encoders=vqa_recipe.ENCODERS, seed=1, max_epochs=1,
                  path=tmp_path / "c", patience=0)
    p.fit(manifest.split("train"), manifest.split("train"), progress=False,
          callbacks=[vqa_recipe.WarmStart(last), spy])
    def same(a, b):
        assert a.keys() == b.keys()
        for k, v in b.items():
            if isinstance(v, torch.Tensor):
                torch.testing.assert_close(a[k], v)
            else:  # an encoder's extra state: the bag of words' vocabulary
                assert a[k] == v

    same(spy.first, trained)  # seed 1 would start elsewhere; it starts from run a
    # resuming run c keeps run c's own weights, not run a's
    c_last = load_training_checkpoint(tmp_path / "c" / "checkpoints" / "last.ckpt")
    resumed = Weights()
    p2 = Predictor(label="answer", modalities=["image", "question"], fusion="concat",
                   preset="fast",
                   encoders=vqa_recipe.ENCODERS, seed=1, max_epochs=2, path=tmp_path / "c",
                   patience=0)
    p2.fit(manifest.split("train"), manifest.split("train"), progress=False, resume=True,
           callbacks=[vqa_recipe.WarmStart(last), resumed])
    same(resumed.first, c_last["state_dict"])
    with pytest.raises(AssertionError):  # and run c has moved away from run a
        same(resumed.first, trained)


def test_scene_objects_and_the_object_probe(tmp_path):
    root = make_dataset("sort-of-clevr", tmp_path / "soc", limit=12, show_progress=False)
    manifest = Manifest.read(root, label="answer")
    # the objects read off the pixels agree with the generator's answers
    table = manifest.table
    asked = table[table["family"] == "shape"]
    assert len(asked) > 5
    for _, row in asked.iterrows():
        objects = {c: s for c, s, _, _ in vqa.scene_objects(
            Image.open(manifest.root / row["image"]))}
        assert len(objects) == 6
        colour = row["question"].split(" the ")[-1].split(" object")[0]
        assert objects[colour] == row["answer"]
    p = vqa_recipe.train_vqa(manifest, "relation", 0, 0, tmp_path / "run", tune_on_train=True)
    probe = vqa.object_probe(p, manifest.split("train"))
    assert list(probe) == ["conv 1", "conv 2", "conv 3", "conv 4", "object tokens"]
    assert all(set(v) == {"colour", "shape"} for v in probe.values())
    # an untrained first conv block keeps colour (six flat colours): far above 1/6
    assert probe["conv 1"]["colour"] >= 0.8


def test_the_report_names_each_recipe_by_its_epochs_and_rates():
    assert vqa._recipe({"epochs": 20, "lr": 2.5e-4, "schedule": "constant"}) == (
        "20", "0.00025 held")
    assert vqa._recipe({"epochs": 20, "lr": 2.5e-4}) == ("20", "0.00025")  # cosine
    then = {"from_epochs": 20, "from_lr": 2.5e-4, "epochs": 12, "lr": 1e-4}
    assert vqa._recipe({"epochs": 32, "lr": 1e-4, "then": then}) == (
        "20 + 12", "0.00025, then 0.0001 held")
    assert vqa._recipe({"epochs": 26, "lr": 2.5e-4, "then": {**then, "lr": 2.5e-4}}) == (
        "20 + 12", "0.00025 held")
