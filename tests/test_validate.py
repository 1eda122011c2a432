"""Validation and on_error: every bad row named with its reason, nothing lost."""

from __future__ import annotations

import csv

import pandas as pd
import pytest
from typer.testing import CliRunner

from polymodal.cli import app
from polymodal.data import Manifest, MediaError, MultimodalDataset, SkipReport, validate
from polymodal.data.dataset import iterate_with_report


@pytest.fixture()
def mixed_manifest(media, tmp_path):
    """Six rows: two good, then a corrupt PNG, a truncated OGG, a missing file, and an
    empty caption (which is not an error)."""
    rows = [
        {"id": "good1", "image": "media/red.png", "audio": "media/tone.ogg",
         "caption": "a red thing", "label": "red"},
        {"id": "good2", "image": "media/green.jpg", "audio": "media/tone.wav",
         "caption": "a green thing", "label": "green"},
        {"id": "corrupt", "image": "media/truncated.png", "audio": "media/tone.wav",
         "caption": "broken picture", "label": "red"},
        {"id": "cut", "image": "media/red.png", "audio": "media/truncated.ogg",
         "caption": "broken sound", "label": "red"},
        {"id": "gone", "image": "media/does_not_exist.png", "audio": "media/tone.wav",
         "caption": "lost picture", "label": "green"},
        {"id": "quiet", "image": "media/red.png", "audio": "media/tone.flac",
         "caption": "", "label": "red"},
    ]
    path = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_validate_names_every_bad_row_once_and_counts_empty_cells(mixed_manifest):
    report = validate(Manifest.read(mixed_manifest), show_progress=False)
    assert [(p.row, p.column, p.kind) for p in report.problems] == [
        (2, "image", "unreadable"), (3, "audio", "unreadable"), (4, "image", "missing_file")]
    assert report.bad_rows == [2, 3, 4]
    assert report.columns["caption"].empty == 1 and report.columns["caption"].bad == 0
    assert report.columns["image"].present == 4
    assert report.label_counts == {"red": 4, "green": 2}
    assert not report.ok


def test_on_error_raise_stops_at_the_first_bad_row_naming_it(mixed_manifest):
    ds = MultimodalDataset(Manifest.read(mixed_manifest), image_size=8)
    assert ds[0].inputs["caption"] == "a red thing"
    assert ds[5].inputs["caption"] is None  # empty caption: the row lacks text
    messages = []
    for row in (2, 3, 4):
        with pytest.raises(MediaError) as info:
            ds[row]
        messages.append(str(info.value))
    assert all(str(mixed_manifest) in m for m in messages)
    assert f"row 2, column 'image', file {mixed_manifest.parent}/media/truncated.png: " \
           "cannot decode image: truncated" in messages[0]
    assert "row 3, column 'audio'" in messages[1] and "truncated.ogg" in messages[1]
    assert "row 4, column 'image'" in messages[2] and messages[2].endswith("file not found")
    with pytest.raises(MediaError, match="row 2"):
        list(ds.loader(batch_size=6))


def test_on_error_skip_keeps_every_good_row_and_reports_every_bad_one(mixed_manifest,
                                                                     tmp_path):
    ds = MultimodalDataset(Manifest.read(mixed_manifest), image_size=8, on_error="skip")
    report = SkipReport(str(mixed_manifest))
    batches = list(iterate_with_report(ds.loader(batch_size=2, num_workers=2), report))
    kept = [i for b in batches for i in b.ids]
    assert kept == ["good1", "good2", "quiet"]
    assert report.rows == [2, 3, 4]
    written = report.write(tmp_path / "skipped.csv")
    with written.open() as fh:
        lines = list(csv.DictReader(fh))
    assert [(r["row"], r["column"], r["kind"]) for r in lines] == [
        ("2", "image", "unreadable"), ("3", "audio", "unreadable"),
        ("4", "image", "missing_file")]
    assert all(r["reason"] for r in lines)


def test_labels_ids_numbers_and_required_modalities(media, tmp_path):
    df = pd.DataFrame({
        "id": ["a", "b", "b", "c", "d"],
        "image": ["media/red.png", "media/red.png", None, "media/red.png", "media/red.png"],
        "weight": [1.0, "heavy", 2.0, 3.0, 4.0],
        "label": [1.5, 2.0, "three", None, 4.0],
    })
    m = Manifest.read(df, root=tmp_path, roles={"weight": "numeric"})
    report = validate(m, require=["image"], show_progress=False)
    found = {(p.row, p.column, p.kind) for p in report.problems}
    assert found == {(1, "weight", "bad_value"), (2, "id", "duplicate_id"),
                     (2, "image", "missing_required"), (2, "label", "bad_label"),
                     (3, "label", "missing_label")}
    dup = next(p for p in report.problems if p.kind == "duplicate_id")
    assert dup.reason == "id 'b' is also on row 1"
    with pytest.raises(ValueError, match="names no column or modality"):
        validate(m, require=["smell"], show_progress=False)


def test_cli_validate_exit_code_table_and_report(mixed_manifest, tmp_path):
    runner = CliRunner()
    out_csv = tmp_path / "problems.csv"
    result = runner.invoke(app, ["validate", str(mixed_manifest), "--report", str(out_csv)])
    assert result.exit_code == 1, result.output
    assert "3 bad rows" in result.output and "file not found" in result.output
    assert len(out_csv.read_text().strip().splitlines()) == 1 + 3
    good = tmp_path / "good.csv"
    pd.read_csv(mixed_manifest).iloc[[0, 1, 5]].to_csv(good, index=False)
    result = runner.invoke(app, ["validate", str(good), "--json"])
    assert result.exit_code == 0, result.output
    assert '"bad_rows": 0' in result.output
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2 and "does not exist" in result.output
