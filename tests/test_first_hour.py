"""A new user's first hour (issue 18): what the command line says in a log or a pipe,
what it lets a user correct, and the mistakes made on purpose."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from polymodal.cli import app
from polymodal.data.bundled import make_dataset


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return make_dataset("av-digits", tmp_path_factory.mktemp("avd") / "av-digits", limit=3,
                        show_progress=False)


def test_a_fit_in_a_pipe_prints_a_line_per_epoch_the_roles_and_no_noise(digits, tmp_path):
    """Found by a new user: in a log a fit printed nothing until it ended, rich tables
    were cut to 80 columns, and every run printed Lightning's litlogger tip, a LeafSpec
    deprecation warning and "Found N module(s) in eval mode"."""
    env = dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="80")
    done = subprocess.run(
        [sys.executable, "-m", "polymodal.cli", "train", "--train", str(digits), "--label",
         "label", "--preset", "tiny", "--fusion", "concat", "--out", str(tmp_path / "m"),
         "--set", "max_epochs=2", "--set", "patience=0", "--role", "voice=ignore"],
        capture_output=True, text=True, env=env, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "epoch 1/2 done in" in output and "epoch 2/2 done in" in output
    assert "val_loss" in output
    for noise in ("litlogger", "LeafSpec", "in eval mode", "GPU available", "TPU available"):
        assert noise not in output, noise
    assert "change with --role COLUMN=ROLE" in output
    assert "voice" in output and "│ voice  │ ignore" in output  # the correction was applied
    assert "not used as features: speed (numeric), pitch (numeric), snr_db (numeric)" in \
        output
    assert str(digits) in output  # the manifest's path whole, on one line, in 80 columns
    assert (tmp_path / "m" / "learning_curves.png").exists()  # train writes its plot


def test_tables_in_a_log_are_never_cut(tmp_path):
    name = "a_very_long_file_name_that_a_terminal_of_80_columns_would_cut_" + "x" * 40
    (tmp_path / f"{name}.png").write_bytes(b"not a picture")
    pd.DataFrame({"image": [f"{name}.png"], "label": ["a"]}).to_csv(tmp_path / "m.csv",
                                                                     index=False)
    res = CliRunner().invoke(app, ["validate", str(tmp_path / "m.csv")],
                             env={"COLUMNS": "80"})
    assert res.exit_code == 1
    assert f"{name}.png" in res.output  # the bad file named whole


def test_mistakes_on_purpose_get_clear_errors(tmp_path, colour_library):
    runner = CliRunner()
    res = runner.invoke(app, ["search", "photos/nothere.jpg", "--library", "photos",
                              "--root", str(colour_library)])
    assert res.exit_code == 2 and "looks like a file and does not exist" in res.output
    res = runner.invoke(app, ["search", "red", "--library", "photos", "--root",
                              str(colour_library), "--modality", "video"])
    assert res.exit_code == 2 and "unknown modality 'video'" in res.output
    res = runner.invoke(app, ["index", str(tmp_path / "nope"), "--library", "x", "--root",
                              str(tmp_path / "libs")])
    assert res.exit_code == 2 and "does not exist" in res.output
    assert "unknown manifest format" not in res.output
    res = runner.invoke(app, ["search", "a red square", "--library", "photos", "--root",
                              str(colour_library), "--k", "3"])
    assert res.exit_code == 0 and "red" in res.output  # words with a space are words


def test_version_and_help_say_what_a_command_takes():
    from polymodal import __version__

    runner = CliRunner()
    assert runner.invoke(app, ["--version"]).output.strip() == f"polymodal {__version__}"
    train_help = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).output
    for word in ("gated", "attention", "tiny", "pretrained", "Example:", "--resume",
                 "--role", "default: (model)"):
        assert word in train_help, word
    index_help = runner.invoke(app, ["index", "--help"], env={"COLUMNS": "200"}).output
    assert "POLYMODAL_LIBRARIES" in index_help and "Example:" in index_help


def test_two_processes_that_need_a_builtin_model_train_it_once(tmp_path, monkeypatch):
    """Found by a new user: two processes needing the same builtin model both trained
    it into one folder and one failed. The training is locked (threads stand in for
    the processes: the lock is a file lock, the same across processes)."""
    import time

    from polymodal.library import builtin

    made = []

    def slow(folder: Path, quick: bool = False, progress: bool = False) -> Path:
        made.append(folder)
        time.sleep(0.5)
        folder.mkdir(parents=True)
        (folder / "config.yaml").write_text("{}")
        return folder

    monkeypatch.setitem(builtin.BUILTIN, "lit-tuxpaint", slow)
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(
        builtin.builtin_model("builtin:lit-tuxpaint", root=tmp_path))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 1 and len(set(results)) == 1 and len(results) == 3


def test_every_command_has_an_example_in_its_help():
    import typer.main

    runner = CliRunner()
    missing = []

    def walk(group, prefix: list[str]) -> None:
        for name, command in group.commands.items():
            if hasattr(command, "commands"):  # a group: its commands
                walk(command, [*prefix, name])
                continue
            shown = runner.invoke(app, [*prefix, name, "--help"], env={"COLUMNS": "200"})
            if "Example:" not in shown.output:
                missing.append(" ".join([*prefix, name]))

    walk(typer.main.get_command(app), [])
    assert missing == []
