"""The VQA benchmark's quick path: both models trained and scored per question family,
the section and the plot written (the full run is `make bench`)."""

from __future__ import annotations

from PIL import Image

from polymodal.bench import vqa
from polymodal.encoders import build_encoder


def test_quick_vqa_benchmark_scores_both_models_per_family(tmp_path, monkeypatch):
    monkeypatch.setenv("POLYMODAL_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(vqa, "RESULTS", tmp_path / "results")
    section = vqa.run(quick=True)
    assert [row[0] for row in section.rows] == list(vqa.SETTINGS)
    families = section.columns.index("shape"), section.columns.index("count")
    for row in section.rows:
        for value in row[2:4] + row[families[0]:families[1] + 1]:
            assert 0.0 <= float(value) <= 1.0
    assert (tmp_path / "results" / "vqa-quick.png").stat().st_size > 10_000
    assert "vqa-quick.png" in section.notes
    again = vqa.run(quick=True, train=False)  # read back from the log, nothing trained
    assert again.rows == section.rows


def test_the_vqa_picture_encoder_gives_16_objects_so_256_pairs():
    name, options = vqa.ENCODERS["image"]
    out = build_encoder(name, **options).encode([Image.new("RGB", (75, 75))])
    assert out.tokens.shape[1] == 16
