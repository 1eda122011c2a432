"""The VQA benchmark's quick path: both models trained and scored per question family,
the section and the plot written (the full run is `make bench`)."""

from __future__ import annotations

import pandas as pd
from PIL import Image

from polymodal.bench import vqa
from polymodal.encoders import build_encoder


def test_quick_vqa_benchmark_scores_both_models_per_family(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYMODAL_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(vqa, "RESULTS", tmp_path / "results")
    section = vqa.run(quick=True)
    assert [row[0] for row in section.rows] == list(vqa.SETTINGS)
    first = section.columns.index("relational accuracy")
    families = section.columns.index("shape"), section.columns.index("count")
    for row in section.rows:
        assert row[1:3] == ["1", f"{vqa.LR:g}"]  # the quick recipe: one epoch
        for value in row[first:first + 2] + row[families[0]:families[1] + 1]:
            assert 0.0 <= float(value) <= 1.0
    assert (tmp_path / "results" / "vqa-quick.png").stat().st_size > 10_000
    assert "vqa-quick.png" in section.notes
    clocks = sorted((tmp_path / "results" / "runs").glob("*/epoch_seconds.csv"))
    assert len(clocks) == 2  # one per model: its one epoch's time, kept across resumes
    for clock in clocks:
        assert list(pd.read_csv(clock)["epoch"]) == [0]
        assert vqa.EpochClock.total(clock) > 0
    again = vqa.run(quick=True, train=False)  # read back from the log, nothing trained
    assert again.rows == section.rows


def test_the_vqa_picture_encoder_gives_16_objects_so_256_pairs():
    name, options = vqa.ENCODERS["image"]
    out = build_encoder(name, **options).encode([Image.new("RGB", (75, 75))])
    assert out.tokens.shape[1] == 16


def test_a_resumed_run_counts_each_epoch_once(tmp_path):
    clock = tmp_path / "epoch_seconds.csv"
    clock.write_text("epoch,seconds\n0,10.0\n1,12.0\n1,11.0\n2,9.5\n")  # epoch 1 redone
    assert vqa.EpochClock.total(clock) == 10.0 + 11.0 + 9.5
    assert vqa.EpochClock.total(tmp_path / "none.csv") == 0.0
