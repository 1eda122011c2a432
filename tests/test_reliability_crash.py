"""Issue 8, point 3 (and 6): crash safety. A training run killed with SIGKILL mid-epoch
resumes to the model an uninterrupted run ends with; an index run killed mid-way
resumes with no duplicate and no missing item; checkpoints, saved models and library
settings half-written by a crash, truncated or tampered with are refused with a clear
error, never loaded in part, and nothing in them is executed."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import make_colours
from polymodal.predictor import Predictor
from polymodal.training import AtomicCheckpointIO, CheckpointError, load_training_checkpoint

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
#: default dropout (0.1) on purpose: a resumed run must draw the same random numbers
SETTINGS = {"label": "colour", "preset": "tiny", "fusion": "concat", "max_epochs": 4,
            "batch_size": 8, "seed": 3}

TRAIN = textwrap.dedent("""
    import json, os, signal, sys
    import lightning as L
    from polymodal.predictor import Predictor

    manifest, run, mode, out = sys.argv[1:5]
    settings = json.loads(sys.argv[5])

    class KillMidEpoch(L.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if trainer.current_epoch == 2 and batch_idx == 1:
                os.kill(os.getpid(), signal.SIGKILL)   # no handler, no cleanup

    p = Predictor(**settings, path=run)
    p.fit(manifest, progress=False, resume=mode == "resume",
          callbacks=[KillMidEpoch()] if mode == "kill" else None)
    json.dump({"metrics": p.evaluate(manifest),
               "proba": p.predict_proba(manifest).to_numpy().tolist()}, open(out, "w"))
""")


class _Payload:
    """A pickle that would create a file if it were ever unpickled (executed)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def colours_csv(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("crash-colours")
    table = make_colours(folder, n=40).drop(columns=["split"])
    table.to_csv(folder / "colours.csv", index=False)
    return folder / "colours.csv"


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", *args], env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def test_training_killed_mid_epoch_resumes_to_the_same_metrics(colours_csv, tmp_path):
    whole = Predictor(**SETTINGS, path=tmp_path / "whole").fit(colours_csv, progress=False)
    settings = json.dumps(SETTINGS)
    run, out = tmp_path / "cut", tmp_path / "out.json"
    killed = _run([TRAIN, str(colours_csv), str(run), "kill", str(out), settings])
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not out.exists()  # it died before the end
    last = load_training_checkpoint(run / "checkpoints" / "last.ckpt")
    assert last["epoch"] == 1  # the last whole epoch before the kill (0-based)
    assert not list((run / "checkpoints").glob("*.tmp"))
    resumed = _run([TRAIN, str(colours_csv), str(run), "resume", str(out), settings])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["metrics"] == pytest.approx(whole.evaluate(colours_csv), abs=1e-6)
    np.testing.assert_allclose(result["proba"], whole.predict_proba(colours_csv).to_numpy(),
                               atol=1e-6)


def test_a_damaged_training_checkpoint_is_refused_not_loaded(colours_csv, tmp_path):
    settings = {**SETTINGS, "max_epochs": 1}
    Predictor(**settings, path=tmp_path / "run").fit(colours_csv, progress=False)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    whole = last.read_bytes()
    marker = tmp_path / "executed"
    cases = {
        "truncated to half": whole[: len(whole) // 2],
        "cut to 100 bytes": whole[:100],
        "empty": b"",
        "one byte flipped in the middle": whole[: len(whole) // 2]
        + bytes([whole[len(whole) // 2] ^ 0xFF]) + whole[len(whole) // 2 + 1:],
        "a pickle that runs a command": pickle.dumps({"state_dict": _Payload(marker)}),
        "a torch.save of code": None,
    }
    sums = last.with_name("last.ckpt.sha256")
    assert sums.read_text().split()[0] == __import__("hashlib").sha256(whole).hexdigest()
    refused: dict[bool, list[str]] = {True: [], False: []}
    for with_checksum in (True, False):
        saved_sums = sums.read_text() if sums.exists() else None
        if not with_checksum:
            sums.unlink()  # a checkpoint from before checksums: weights-only still guards
        for name, data in cases.items():
            if data is None:
                torch.save({"state_dict": {}, "hook": _Payload(marker)}, last)
            else:
                last.write_bytes(data)
            try:
                Predictor(**settings, path=tmp_path / "run").fit(
                    colours_csv, progress=False, resume=True)
            except CheckpointError as exc:
                assert "refused" in str(exc) or "not a Lightning" in str(exc), name
                refused[with_checksum].append(name)
            if saved_sums is not None and with_checksum:
                sums.write_text(saved_sums)
    assert refused[True] == list(cases)  # the checksum catches all six
    # without it, a flipped byte inside tensor data passes zip and unpickling
    assert refused[False] == [n for n in cases if n != "one byte flipped in the middle"]
    assert not marker.exists()  # nothing in any file was executed


def test_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    target = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}, "epoch": 1}, target)
    before = target.read_bytes()

    def crash(obj, fh, *a, **k):
        fh.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("the disk went away")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk went away"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "epoch": 2}, target)
    assert target.read_bytes() == before  # the old whole file, not half a new one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt", "last.ckpt.sha256"]
    assert io.load_checkpoint(target)["epoch"] == 1
    monkeypatch.undo()
    # a crash between the checksum file and the rename leaves the old checkpoint, whose
    # hash the new checksum file still accepts
    sums = tmp_path / "last.ckpt.sha256"
    real_replace = os.replace

    def die_at_the_rename(src, dst):
        if str(dst) == str(target):
            raise KeyboardInterrupt("killed between the two renames")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", die_at_the_rename)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "epoch": 2}, target)
    monkeypatch.undo()
    assert len(sums.read_text().split()) == 2  # the new hash, then the old one
    assert io.load_checkpoint(target)["epoch"] == 1
    io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}, "epoch": 3}, target)
    assert io.load_checkpoint(target)["epoch"] == 3
    target.write_bytes(before)  # an older whole checkpoint put back by hand: not accepted
    with pytest.raises(CheckpointError, match="SHA-256"):
        io.load_checkpoint(target)


def test_index_killed_mid_way_resumes_with_no_duplicate_and_no_missing(colour_model,
                                                                       colours, tmp_path):
    from polymodal.library import Library

    folder = tmp_path / "photos"
    folder.mkdir()
    colours.drop(columns=["split"]).to_csv(folder / "photos.csv", index=False)
    model = colour_model.save(tmp_path / "model")
    lib = Library.create("photos", model, root=tmp_path / "libs")
    script = textwrap.dedent(f"""
        import os, signal
        from polymodal.library import LanceStore, Library
        real, calls = LanceStore.upsert, []
        def upsert(self, records):
            calls.append(len(records))
            if len(calls) == 4:
                os.kill(os.getpid(), signal.SIGKILL)   # mid-run, between two batches
            real(self, records)
        LanceStore.upsert = upsert
        Library("photos", {str(tmp_path / 'libs')!r}).index(
            {str(folder / 'photos.csv')!r}, batch_size=16, progress=False)
    """)
    killed = _run([script])
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    stored = len(lib)
    assert stored == 3 * 16  # three whole batches, nothing of the fourth
    report = Library("photos", tmp_path / "libs").index(folder / "photos.csv",
                                                        progress=False)
    n = 2 * len(colours)  # a picture and a caption per row
    assert report.unchanged == stored and report.added == n - stored
    contents = lib.store.contents()
    assert len(contents) == len(lib) == n  # no duplicate, none missing
    clean = Library.create("clean", model, root=tmp_path / "libs")
    clean.index(folder / "photos.csv", progress=False)
    assert contents == clean.store.contents()


def test_a_damaged_saved_model_is_refused_and_never_executed(colours_csv, tmp_path):
    from polymodal.checkpoint import CONFIG_NAME, STATE_NAME, WEIGHTS_NAME

    p = Predictor(**{**SETTINGS, "max_epochs": 1}, path=tmp_path / "run").fit(
        colours_csv, progress=False)
    saved = p.save(tmp_path / "model")
    Predictor.load(saved)  # whole: loads
    weights = (saved / WEIGHTS_NAME).read_bytes()
    config = (saved / CONFIG_NAME).read_text()
    marker = tmp_path / "executed"

    def restore() -> None:
        p.save(saved)

    cases = {
        "weights truncated to half": lambda: (saved / WEIGHTS_NAME).write_bytes(
            weights[: len(weights) // 2]),
        "weights empty": lambda: (saved / WEIGHTS_NAME).write_bytes(b""),
        "one weight byte flipped": lambda: (saved / WEIGHTS_NAME).write_bytes(
            weights[:-5] + bytes([weights[-5] ^ 0x01]) + weights[-4:]),
        "weights replaced by a pickle": lambda: (saved / WEIGHTS_NAME).write_bytes(
            pickle.dumps(_Payload(marker))),
        "vocabulary file changed": lambda: (saved / STATE_NAME).write_text("{}"),
        "config without its end (half-written)": lambda: (saved / CONFIG_NAME).write_text(
            config[: len(config) // 2]),
        "config with a python object tag": lambda: (saved / CONFIG_NAME).write_text(
            f"!!python/object/apply:os.system ['touch {marker}']\n"),
        "config missing": lambda: (saved / CONFIG_NAME).unlink(),
    }
    for name, damage in cases.items():
        restore()
        damage()
        with pytest.raises(ValueError) as info:
            Predictor.load(saved)
        assert str(saved) in str(info.value), name
    assert not marker.exists()
    # a pickle with its checksum updated to match (a deliberate forgery) still never runs
    restore()
    forged = pickle.dumps(_Payload(marker))
    (saved / WEIGHTS_NAME).write_bytes(forged)
    from polymodal.checkpoint import sha256_file

    text = (saved / CONFIG_NAME).read_text()
    import yaml

    cfg = yaml.safe_load(text)
    cfg["checksums"][WEIGHTS_NAME] = sha256_file(saved / WEIGHTS_NAME)
    (saved / CONFIG_NAME).write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError, match="cannot read the saved Predictor"):
        Predictor.load(saved)
    assert not marker.exists()


def test_a_crash_between_two_files_of_a_save_is_detected(colours_csv, tmp_path):
    """Saving over an old model: new weights landed, then the process died before the
    new config.yaml was written. The folder is refused, not loaded as a mix."""
    from polymodal.checkpoint import CONFIG_NAME, WEIGHTS_NAME

    a = Predictor(**{**SETTINGS, "max_epochs": 1}, path=tmp_path / "a").fit(
        colours_csv, progress=False)
    b = Predictor(**{**SETTINGS, "max_epochs": 2, "seed": 4}, path=tmp_path / "b").fit(
        colours_csv, progress=False)
    old = a.save(tmp_path / "model")
    old_config = (old / CONFIG_NAME).read_text()
    b.save(old)
    (old / CONFIG_NAME).write_text(old_config)  # as if the last rename never happened
    with pytest.raises(ValueError, match=f"{WEIGHTS_NAME} is not the file saved"):
        Predictor.load(old)


def test_a_damaged_library_config_is_refused(colour_library, tmp_path):
    import shutil

    from polymodal.library import Library

    root = tmp_path / "libs"
    shutil.copytree(colour_library / "photos", root / "photos")
    config = (root / "photos" / "library.yaml").read_text()
    Library("photos", root)  # whole: opens
    for damaged in ("", "model: [unclosed\n", "- a\n- b\n", "backend: lancedb\n",
                    "model: /m\nbackend: sqlite\n"):
        (root / "photos" / "library.yaml").write_text(damaged)
        with pytest.raises(ValueError, match=r"library\.yaml is damaged"):
            Library("photos", root)
    # a file cut short may still parse; then its model path is cut too, and the library
    # refuses to load it, naming what is missing, instead of searching with another model
    model = yaml_model(config)
    (root / "photos" / "library.yaml").write_text(
        config.replace(model, model[: len(model) // 2]))
    with pytest.raises((ValueError, FileNotFoundError), match=r"not a (saved|pretrained)"):
        _ = Library("photos", root).model


def yaml_model(config: str) -> str:
    import yaml

    return yaml.safe_load(config)["model"]
