"""The applications of issue 7 (audio-visual recognition against audio SNR, image + text
recognition): the SNR noise they rely on, the evaluation hook, and each example run end
to end on tiny data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from polymodal.data.bundled import make_dataset
from polymodal.data.noise import level_for_snr, noisy, noisy_snr


def _measured_snr(clean: np.ndarray, corrupted: np.ndarray) -> float:
    added = corrupted.astype(np.float64) - clean
    return 10 * math.log10(np.mean(np.square(clean, dtype=np.float64))
                           / np.mean(np.square(added)))


@pytest.mark.parametrize("snr_db", [20.0, 10.0, 5.0, 0.0, -5.0, -10.0])
def test_noisy_snr_adds_noise_at_the_asked_snr(snr_db):
    rng = np.random.default_rng(1)
    t = np.arange(16_000) / 16_000
    # a voiced-like clip with a DC offset, quiet: the SNR must follow its power
    clip = (0.05 * np.sin(2 * np.pi * 220 * t) + 0.02 * np.sin(2 * np.pi * 1300 * t)
            + 0.01 + 0.005 * rng.normal(size=t.size)).astype(np.float32)
    corrupt = noisy_snr("audio", snr_db, seed=3)
    out = corrupt(clip)
    assert out.dtype == np.float32 and out.shape == clip.shape
    assert _measured_snr(clip, out) == pytest.approx(snr_db, abs=0.15)
    # every call draws new noise (a sweep over many clips), at the same SNR
    again = corrupt(clip)
    assert not np.array_equal(out, again)
    assert _measured_snr(clip, again) == pytest.approx(snr_db, abs=0.15)
    # deterministic for a seed
    assert np.array_equal(noisy_snr("audio", snr_db, seed=3)(clip), out)


def test_noisy_snr_on_real_speech_and_its_edges(tmp_path):
    import soundfile as sf

    manifest = make_dataset("av-digits", tmp_path / "avd", limit=1, show_progress=False)
    wave, _ = sf.read(next((manifest.parent / "audio").glob("*.wav")), dtype="float32")
    assert _measured_snr(wave, noisy_snr("audio", -10.0)(wave)) == pytest.approx(-10, abs=0.2)
    assert noisy_snr("audio", math.inf)(wave) is wave
    silent = noisy_snr("audio", 0.0)(np.zeros(1000, dtype=np.float32))
    assert 0 < float(np.std(silent)) < 2e-3
    with pytest.raises(ValueError, match="audio only"):
        noisy_snr("image", 10.0)
    with pytest.raises(ValueError, match="decibels"):
        noisy_snr("audio", float("nan"))


def test_level_for_snr_matches_noisy_levels():
    # noisy(level) adds noise of std 3 x level x the clip's std: SNR = -20 log10(3 level)
    assert level_for_snr(math.inf) == 0.0
    assert level_for_snr(-20 * math.log10(3 * 0.5)) == pytest.approx(0.5)
    assert level_for_snr(-10.0) > 1.0  # beyond what noisy accepts: why noisy_snr exists
    rng = np.random.default_rng(0)
    clip = rng.normal(0, 0.2, 48_000).astype(np.float32)
    out = noisy("audio", level_for_snr(0.0))(clip)
    assert _measured_snr(clip, out) == pytest.approx(0.0, abs=0.1)


@pytest.fixture(scope="module")
def tiny_digits(tmp_path_factory):
    return make_dataset("av-digits", tmp_path_factory.mktemp("avd") / "av-digits", limit=3,
                        show_progress=False)


def test_evaluate_accepts_a_corrupting_function(tiny_digits, tmp_path):
    from polymodal import Predictor

    p = Predictor(label="label", modalities=["audio"], fusion="concat", preset="tiny",
                  max_epochs=1, path=tmp_path / "run").fit(
        tiny_digits, progress=False)
    calls: list[int] = []

    def silence(wave: np.ndarray) -> np.ndarray:
        calls.append(len(wave))
        return np.zeros_like(wave)

    data = tiny_digits
    clean = p.evaluate(data)
    silenced = p.evaluate(data, noise={"audio": silence})
    assert len(calls) == 30  # every row's clip went through the function
    # silence makes the rows (nearly) alike: about one predicted class for all, 3 of 30 right
    assert silenced["accuracy"] <= 0.2
    assert silenced["log_loss"] != clean["log_loss"]
    drowned = p.evaluate(data, noise={"audio": noisy_snr("audio", -30.0, seed=1)})
    assert drowned == p.evaluate(data, noise={"audio": noisy_snr("audio", -30.0, seed=1)})
    assert drowned != clean


# -- the examples, end to end on tiny data ------------------------------------------

def _example(name: str):
    """Import examples/<name>.py as a module (examples/ is not a package)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _is_png(path) -> bool:
    return path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_noisy_training_copies_are_written_at_their_snr(tiny_digits, tmp_path):
    import soundfile as sf

    from benchmarks.studies.av_snr import with_noisy_copies
    from polymodal.data import Manifest

    train = Manifest.read(tiny_digits).split("train")
    table = with_noisy_copies(train, tmp_path / "copies", (-10.0,), copies=2, seed=0)
    assert len(table) == 3 * len(train)
    assert table["id"].is_unique and (table["split"] == "train").all()
    original, copy = table.iloc[0], table.iloc[len(train)]
    assert copy["image"] == original["image"] and copy["label"] == original["label"]
    assert str(tmp_path / "copies") in copy["audio"]
    clean, _ = sf.read(original["audio"], dtype="float32")
    noisy_clip, sr = sf.read(copy["audio"], dtype="float32")
    assert sr == 16_000 and noisy_clip.shape == clean.shape
    assert _measured_snr(clean, noisy_clip) == pytest.approx(-10.0, abs=0.3)
    # made again: the same files, the same noise
    again = with_noisy_copies(train, tmp_path / "copies", (-10.0,), copies=2, seed=0)
    assert again.equals(table)


def test_audio_visual_example_runs_end_to_end_and_resumes(tiny_digits, tmp_path, capsys):
    import json

    import pandas as pd

    example = _example("audio_visual_snr")
    out = tmp_path / "out"
    argv = ["--out", str(out), "--data", str(tiny_digits), "--seeds", "0", "--epochs", "1",
            "--snrs", "inf", "0", "-10", "--preset", "tiny"]
    summary = example.main(argv)
    table = pd.read_csv(out / "av_snr.csv")
    assert len(table) == 3 * 3
    assert set(table["setting"]) == {"audio alone", "image alone", "fused"}
    assert list(table[table.setting == "fused"]["snr"]) == ["clean", "0 dB", "-10 dB"]
    assert table["accuracy_mean"].between(0, 1).all()
    # the image-alone model never hears: its accuracy cannot change with the SNR
    assert table[table.setting == "image alone"]["accuracy_mean"].nunique() == 1
    def strict(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    saved = json.loads((out / "av_snr.json").read_text(), parse_constant=strict)
    assert saved["settings"]["snrs"] == ["clean", "0 dB", "-10 dB"]
    assert isinstance(saved["fused_above_both_everywhere"], bool)
    assert saved["fused_above_both_everywhere"] == summary["fused_above_both_everywhere"]
    assert set(saved["fused_minus_best_single"]) == {"clean", "0 dB", "-10 dB"}
    assert _is_png(out / "av_snr.png")
    assert list((out / "runs" / "noisy-train").rglob("*.wav"))  # trained on noisy copies
    printed = capsys.readouterr().out
    assert "fused above both single modalities at every SNR" in printed
    # a second run resumes: nothing is trained again, the same results come out
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 3
    again = example.main(argv)
    assert (out / "results.jsonl").read_text().splitlines() == lines
    assert "done before" in capsys.readouterr().out
    assert again["rows"] == summary["rows"]


def test_audio_visual_example_quick_defaults():
    example = _example("audio_visual_snr")
    quick = example.settings_from(example.parse_args(["--quick"]))
    full = example.settings_from(example.parse_args([]))
    assert quick.seeds == (0,) and quick.epochs < full.epochs
    assert full.snrs[0] == math.inf and full.snrs[-1] == -10.0 and len(full.seeds) >= 2
    assert example.settings_from(example.parse_args(["--no-augment"])).augment_snrs == ()


def _bundled(name: str, folder, limit: int):
    from polymodal.data.bundled import DatasetUnavailable

    try:
        return make_dataset(name, folder, limit=limit, show_progress=False)
    except DatasetUnavailable as e:  # a Debian package missing here
        pytest.skip(str(e))


def test_image_text_example_runs_end_to_end(tmp_path, capsys):
    import json

    import pandas as pd

    tux = _bundled("tuxpaint", tmp_path / "tux", 3)
    fashion = _bundled("fashion-mnist", tmp_path / "fm", 3)
    example = _example("image_text_recognition")
    out = tmp_path / "out"
    summary = example.main([
        "--out", str(out), "--seeds", "0", "--tuxpaint-epochs", "1", "--fashion-epochs", "1",
        "--tuxpaint-preset", "tiny", "--fashion-per-class", "3", "1", "3",
        "--tuxpaint-data", str(tux), "--fashion-data", str(fashion),
        "--cache", str(tmp_path / "cache")])
    table = pd.read_csv(out / "image_text.csv")
    assert list(table["dataset"]) == ["tuxpaint"] * 3 + ["fashion-mnist"] * 3
    assert list(table["setting"]) == [
        "image alone", "caption alone", "image + caption (gated)",
        "image alone", "record alone", "image + record (gated)"]
    assert table["accuracy_mean"].between(0, 1).all()
    saved = json.loads((out / "image_text.json").read_text())
    assert set(saved["fused_minus_best_single"]) == {"tuxpaint", "fashion-mnist"}
    for dataset, column in (("tuxpaint", "caption"), ("fashion-mnist", "record")):
        report = pd.read_csv(out / dataset / "modality_report.csv")
        settings = set(report["setting"])
        assert {"all columns", f"without {column}", "image alone",
                f"gate weight of {column}"} <= settings
        gates = report[report.setting.str.startswith("gate weight")]["accuracy"]
        assert gates.sum() == pytest.approx(1.0, abs=1e-4)
        assert _is_png(out / dataset / "confusion_matrix.png")
        assert saved["modality_report"][dataset] == report.to_dict("records")
    assert _is_png(out / "image_text.png")
    records = pd.read_csv(out / "fashion-mnist" / "fashion-mnist-records.csv",
                          keep_default_na=False)
    assert set(records["split"]) == {"train", "val", "test"}
    assert (records["split"] == "test").sum() == 10 * 3  # 3 of each class
    assert not records["record"].str.contains("|".join(
        ["boot", "sneaker", "trouser", "pullover", "coat", "dress"]), case=False).any()
    assert "modality report, fashion-mnist" in capsys.readouterr().out
    assert summary["rows"] == saved["rows"]


def test_fashion_records_are_short_noisy_and_never_name_the_class():
    from benchmarks.studies.image_text import FASHION_FACTS, fashion_record

    rng = np.random.default_rng(0)
    records = {c: [fashion_record(c, rng) for _ in range(400)] for c in FASHION_FACTS}
    every = [r for rs in records.values() for r in rs]
    assert 0.11 < sum(r == "" for r in every) / len(every) < 0.19  # 15% empty
    for label, rs in records.items():
        for r in rs:
            assert len(r.split()) <= 8
            for word in label.lower().replace("/", " ").split():
                assert word not in r.lower().split(), (label, r)
        written = [r for r in rs if r]
        own = set(" ".join(FASHION_FACTS[label]).split())
        # mostly the class's own attributes, sometimes another class's, sometimes typos
        assert sum(bool(set(r.split(": ", 1)[1].replace(";", "").split()) - own)
                   for r in written) / len(written) > 0.2
        assert sum(set(r.split(": ", 1)[1].replace(";", "").split()) <= own
                   for r in written) / len(written) > 0.5
    again = np.random.default_rng(0)
    assert [fashion_record(c, again) for c in FASHION_FACTS for _ in range(400)] == every


# -- the benchmark sections -----------------------------------------------------------

def test_av_snr_bench_section(tiny_digits, tmp_path, monkeypatch):
    import dataclasses

    from benchmarks import apps
    from benchmarks.report import write_section
    from benchmarks.studies import av_snr as av

    tiny = dataclasses.replace(av.AVSNRSettings(), seeds=(0, 1), epochs=1, preset="tiny",
                               snrs=(math.inf, -10.0), augment_snrs=(0.0,))
    monkeypatch.setattr(av.AVSNRSettings, "quick", classmethod(lambda cls: tiny))
    monkeypatch.setattr(av, "make_dataset", lambda name, **kw: tiny_digits)
    section = apps.run_av_snr(quick=True, out=tmp_path / "av-snr")
    assert section.key == "av-snr"
    assert section.columns == ["setting", "seeds", "clean", "-10 dB", "train s"]
    assert [r[0] for r in section.rows] == ["audio alone", "image alone",
                                            "fused (late, dropout 0.5)"]
    assert all(r[1] == "2" for r in section.rows)  # two seeds each
    assert "stays above" in section.notes or "does NOT stay above" in section.notes
    assert (tmp_path / "av-snr-quick" / "av_snr.csv").exists()
    assert _is_png(tmp_path / "av-snr-quick.png")  # a quick run never writes docs/img
    report = write_section(section, tmp_path / "benchmarks.md").read_text()
    assert "<!-- bench:av-snr -->" in report and "| image alone | 2 |" in report
    # train=False reports what is there and trains nothing
    assert apps.run_av_snr(quick=True, out=tmp_path / "av-snr", train=False).rows == section.rows
    empty = apps.run_av_snr(quick=True, out=tmp_path / "nothing", train=False)
    assert empty.rows == [] and "Not every setting has results yet" in empty.notes
    assert not (tmp_path / "nothing-quick" / "results.jsonl").exists()


def test_image_text_bench_section(tmp_path, monkeypatch):
    import dataclasses

    from benchmarks import apps
    from benchmarks.studies import image_text as it

    made = {"tuxpaint": _bundled("tuxpaint", tmp_path / "tux", 3),
            "fashion-mnist": _bundled("fashion-mnist", tmp_path / "fm", 3)}
    tiny = dataclasses.replace(it.ImageTextSettings.quick(), tuxpaint_epochs=1,
                               fashion_epochs=1, tuxpaint_preset="tiny",
                               fashion_preset="tiny", cache_dir=str(tmp_path / "cache"),
                               fashion_per_class={"train": 3, "val": 1, "test": 3})
    monkeypatch.setattr(it.ImageTextSettings, "quick", classmethod(lambda cls: tiny))
    monkeypatch.setattr(it, "make_dataset", lambda name, **kw: made[name])
    section = apps.run_image_text(quick=True, out=tmp_path / "image-text")
    assert section.key == "image-text"
    assert [r[:2] for r in section.rows] == [
        ["tuxpaint", "image alone"], ["tuxpaint", "caption alone"],
        ["tuxpaint", "image + caption (gated)"], ["fashion-mnist", "image alone"],
        ["fashion-mnist", "record alone"], ["fashion-mnist", "image + record (gated)"]]
    assert "gate weight of record" in section.notes and "tuxpaint: all columns" in section.notes
    assert _is_png(tmp_path / "image-text-quick.png")
    again = apps.run_image_text(quick=True, out=tmp_path / "image-text", train=False)
    assert again.rows == section.rows
