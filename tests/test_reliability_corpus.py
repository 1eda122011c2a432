"""Issue 8, point 1: the bad-input corpus. ``validate`` names every bad row with its
reason; a dataset, the Predictor, the Pretrainer and a library index under
``on_error="skip"`` keep every good row and report every bad one; decoding is bounded."""

from __future__ import annotations

import csv
import tracemalloc

import pandas as pd
import pytest

from polymodal.data import Manifest, MediaError, MultimodalDataset, SkipReport, validate
from polymodal.data.dataset import iterate_with_report
from polymodal.data.errors import ManifestError
from polymodal.data.media import DEFAULT_LIMITS, decode_audio, decode_image
from reliability_corpus import HOUR, Corpus, make_corpus

#: problems only validate sees: a label's type and an id's uniqueness are not decoding
NOT_DECODED = {"bad_label", "duplicate_id"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return make_corpus(tmp_path_factory.mktemp("reliability"))


def _located(problems) -> set[tuple[int, str, str]]:
    return {(p.row, p.column, p.kind) for p in problems}


def test_the_corpus_covers_every_class_of_bad_input(corpus):
    kinds = {kind for _col, kind in corpus.bad.values()}
    assert kinds == {"unreadable", "too_large", "bad_label", "not_text", "outside_root",
                     "missing_file", "duplicate_id"}
    assert len(corpus.bad) == 17 and len(corpus.good) == 11
    assert (corpus.root / "link.png").is_symlink()
    assert (corpus.root / "media" / "hour.wav").stat().st_size > HOUR * 16_000 * 2


def test_validate_names_every_bad_row_with_its_reason(corpus):
    report = validate(Manifest.read(corpus.manifest, confine=True), show_progress=False)
    expected = {(row, col, kind) for row, (col, kind) in corpus.bad.items()}
    assert _located(report.problems) == expected
    assert report.bad_rows == sorted(corpus.bad)
    assert all(p.reason for p in report.problems)
    # without confine (the default) the three paths that lead out are read like any other
    loose = validate(Manifest.read(corpus.manifest), show_progress=False)
    assert {p.row for p in loose.problems if p.kind == "outside_root"} == set()
    assert len(loose.bad_rows) == len(corpus.bad) - 3


def test_dataset_skip_keeps_every_good_row_and_reports_every_bad_one(corpus):
    m = Manifest.read(corpus.manifest, confine=True)
    ds = MultimodalDataset(m, image_size=8, on_error="skip")
    report = SkipReport(str(corpus.manifest))
    kept = [int(i) for b in iterate_with_report(ds.loader(batch_size=5), report)
            for i in b.indices]
    decoded_bad = {r for r, (_c, kind) in corpus.bad.items() if kind not in NOT_DECODED}
    assert sorted(kept) == [r for r in range(corpus.n_rows) if r not in decoded_bad]
    assert report.rows == sorted(decoded_bad)
    with pytest.raises(MediaError, match=r"row 11, column 'image'.*truncated"):
        list(MultimodalDataset(m, image_size=8).loader(batch_size=5))


def test_decoding_is_bounded_in_memory(corpus):
    """Refused or cut short before the work is done (how fast is measured in
    docs/reliability.md, not asserted here)."""
    media = corpus.root / "media"
    tracemalloc.start()
    with pytest.raises(MediaError, match="1000000x1000000") as info:
        decode_image(media / "bomb.png")
    _now, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert info.value.kind == "too_large"
    assert peak < 4 * 2**20  # refused from the header: 10^12 pixels never allocated
    tracemalloc.start()
    wave = decode_audio(media / "hour.wav")
    _now, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(wave) == int(DEFAULT_LIMITS.max_audio_seconds * 16_000)  # 60 s of 3,600
    assert peak < 40 * 2**20  # 60 s of float32 is 3.8 MB; the hour would be 230 MB


def test_an_svg_claiming_a_huge_size_renders_bounded(tmp_path):
    svg = tmp_path / "huge.svg"
    svg.write_bytes(b'<svg xmlns="http://www.w3.org/2000/svg" width="40000" '
                    b'height="30000"><rect width="40000" height="30000" fill="red"/></svg>')
    tracemalloc.start()
    img = decode_image(svg)
    _now, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert img.size == (1024, 768) and img.getpixel((5, 5)) == (255, 0, 0)
    assert peak < 64 * 2**20  # at full size the surface alone would be 4.8 GB


@pytest.mark.parametrize(("name", "content"), [
    ("latin1.csv", "id,label\n1,caf\xe9\n".encode("latin-1")),
    ("binary.csv", bytes(range(256)) * 8),
    ("empty.csv", b""),
    ("broken.jsonl", b'{"id": 1}\n{"id": \n'),
    ("garbage.parquet", b"PAR1 not really parquet"),
    ("notes.json", b"[1, 2"),
])
def test_a_manifest_that_cannot_be_read_is_one_clear_error(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ManifestError, match=name):
        Manifest.read(path)


def _report_rows(path) -> set[tuple[int, str, str]]:
    with path.open(encoding="utf-8") as fh:
        return {(int(r["row"]), r["column"], r["kind"]) for r in csv.DictReader(fh)}


def test_predictor_skip_reports_every_bad_row_by_its_row_in_the_file(corpus, tmp_path):
    from polymodal.predictor import Predictor

    m = Manifest.read(corpus.manifest, label="label", confine=True)
    p = Predictor(label="label", preset="tiny", fusion="concat", max_epochs=1,
                  batch_size=8, path=tmp_path / "run").fit(m, on_error="skip",
                                                            progress=False)
    expected = {(row, col, kind) for row, (col, kind) in corpus.bad.items()
                if kind != "duplicate_id"}  # ids play no part in training
    assert _located(p.skipped_) == expected
    assert _report_rows(tmp_path / "run" / "skipped_rows.csv") == expected
    assert p.classes_ == ["0", "1"]  # the word among the numbers was left out
    with pytest.raises(MediaError, match=r"row 1[1-6], column 'image'"):  # the first met
        Predictor(label="label", preset="tiny", max_epochs=1, path=tmp_path / "raise").fit(
            Manifest.read(corpus.manifest, label="label").subset(range(20)), progress=False)


def test_a_wrong_label_stops_a_run_under_raise(corpus, tmp_path):
    from polymodal.predictor import Predictor

    m = Manifest.read(corpus.manifest, label="label").subset([*corpus.good, 21])
    with pytest.raises(MediaError, match=r"row 21, column 'label'.*'cat' is not a number"):
        Predictor(label="label", preset="tiny", max_epochs=1, path=tmp_path / "r").fit(
            m, progress=False)


def test_pretrainer_skip_writes_a_report_of_every_bad_row(corpus, tmp_path):
    from polymodal.pretraining import Pretrainer

    m = Manifest.read(corpus.manifest, confine=True)
    pre = Pretrainer(modalities=["image", "note"], preset="tiny", max_epochs=1,
                     batch_size=8, path=tmp_path / "pre").fit(m, on_error="skip",
                                                             progress=False)
    expected = {(row, col, kind) for row, (col, kind) in corpus.bad.items()
                if col in ("image", "note")}
    assert _located(pre.skipped_) == expected
    assert _report_rows(tmp_path / "pre" / "skipped_rows.csv") == expected


def test_library_index_keeps_every_good_cell_and_reports_every_bad_one(corpus, colour_model,
                                                                      tmp_path):
    from polymodal.library import Library

    model = colour_model.save(tmp_path / "model")
    lib = Library.create("corpus", model, root=tmp_path / "libs")
    report = lib.index(corpus.manifest, progress=False, confine=True)
    expected = {(row, col, kind) for row, (col, kind) in corpus.bad.items()
                if col in ("image", "note", "id")}
    # the model embeds pictures and words: every sound is left out, said, and listed
    sounds = pd.read_csv(corpus.manifest)["audio"].notna()
    left_out = {(row, "audio", "modality_not_embedded") for row in sounds[sounds].index}
    assert report.left_out == {"audio": ("audio", len(left_out))}
    assert _located(report.skipped) == expected | left_out
    assert _report_rows(lib.folder / "skipped_rows.csv") == expected | left_out
    assert len(report.problems) == len(expected)
    bad_cells = {(row, col) for row, col, _ in expected}
    duplicate = next(r for r, (_c, k) in corpus.bad.items() if k == "duplicate_id")
    facets = sum(1 for row in range(corpus.n_rows) if row != duplicate
                 for col in ("image", "note") if (row, col) not in bad_cells)
    assert report.added == facets == len(lib)
    first = lib.store.get(f"{corpus.manifest}::r00::image")
    assert first is not None and first["path"].endswith("media/p0.png")  # not overwritten
