"""What outside testing found in the command line (issue 17): a run stopped by SIGTERM
exits non-zero and keeps its checkpoint, ``--resume`` continues it, a time limit holds
over the whole fit, commands that need no model import no torch, and every command that
takes a model takes the builtin names."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from polymodal.cli import app
from polymodal.data.bundled import make_dataset


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    return make_dataset("av-digits", tmp_path_factory.mktemp("avd") / "av-digits", limit=3,
                        show_progress=False)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def test_sigterm_exits_non_zero_keeps_the_checkpoint_and_resume_finishes(digits, tmp_path):
    """Found from outside: a run stopped with SIGTERM exited 0 and saved nothing."""
    out = tmp_path / "model"
    command = [sys.executable, "-m", "polymodal.cli", "train", "--train", str(digits),
               "--label", "label", "--preset", "tiny", "--fusion", "concat", "--out",
               str(out), "--set", "patience=0", "--set", "seed=0"]
    proc = subprocess.Popen([*command, "--set", "max_epochs=400"], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last = out / "run" / "checkpoints" / "last.ckpt"
    try:
        waited = 0.0
        while not last.exists() and proc.poll() is None and waited < 600:
            time.sleep(0.2)
            waited += 0.2
        assert last.exists(), "no epoch finished"
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, output
    assert "stopped by SIGTERM" in output and str(last) in output and "--resume" in output
    assert last.exists() and not (out / "config.yaml").exists()  # kept; no model claimed
    import torch

    from polymodal.plots import read_metrics

    # however many epochs finished before the signal (machine speed decides), the
    # resumed run trains two more and ends with every epoch logged once
    finished = torch.load(last, weights_only=True, map_location="cpu")["epoch"] + 1
    done = subprocess.run([*command, "--set", f"max_epochs={finished + 2}", "--resume"],
                          env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (out / "config.yaml").exists()
    log = read_metrics(out / "run" / "logs" / "metrics.csv")
    epochs = log.dropna(subset=["val_loss"])["epoch"].astype(int).tolist()
    assert epochs == list(range(finished + 2))


def test_resume_without_a_run_to_resume_is_a_clear_error(digits, tmp_path):
    res = CliRunner().invoke(app, ["train", "--train", str(digits), "--label", "label",
                                   "--preset", "tiny", "--out", str(tmp_path / "m"),
                                   "--resume"])
    assert res.exit_code == 2 and "nothing to resume" in res.output
    res = CliRunner().invoke(app, ["pretrain", "--train", str(digits), "--preset", "tiny",
                                   "--out", str(tmp_path / "p"), "--resume"])
    assert res.exit_code == 2 and "nothing to resume" in res.output


def test_time_limit_counts_the_whole_fit_and_cuts_validation(digits, tmp_path, monkeypatch):
    """Found from outside: --set time_limit=900 stopped at 1,131 s, since Lightning's
    max_time counts training batches only. The limit is wall-clock from fit's start:
    a spent limit trains one batch, skips the validation pass past its grace, and still
    returns a usable model (no timing is asserted: the limit is spent before the first
    batch ends on any machine)."""
    from polymodal import Predictor
    from polymodal.training import run

    monkeypatch.setattr(run, "VALIDATION_GRACE_S", 0.0)
    p = Predictor(label="label", preset="tiny", fusion="concat", max_epochs=50,
                  patience=0, batch_size=4, path=tmp_path / "run")
    p.fit(digits, time_limit=1e-6, progress=False)
    assert p.ended_ == "time limit" and p.train_steps_ == 1
    assert len(p.predict(digits)) == 30
    assert run.remaining_time(time.time() - 10, 5) == pytest.approx(1e-3)
    assert run.remaining_time(time.time(), None) is None


def test_deadline_stops_training_and_validation_by_the_wall_clock(monkeypatch):
    from types import SimpleNamespace

    from polymodal.training import run

    clock = {"now": 100.0}
    monkeypatch.setattr(run.time, "time", lambda: clock["now"])
    deadline = run.Deadline(110.0, grace=5.0)
    trainer = SimpleNamespace(should_stop=False, sanity_checking=False,
                              strategy=SimpleNamespace(broadcast=lambda value: value))
    deadline.on_train_batch_end(trainer)
    deadline.on_validation_batch_start(trainer)
    assert not trainer.should_stop and not deadline.reached
    clock["now"] = 111.0
    deadline.on_train_batch_end(trainer)
    assert trainer.should_stop and deadline.reached
    deadline.on_validation_batch_start(trainer)  # within the grace: validation goes on
    clock["now"] = 116.0
    with pytest.raises(run._DeadlineReached):
        deadline.on_validation_batch_start(trainer)


def test_commands_that_need_no_model_import_no_torch(digits, tmp_path):
    """Found from outside: the CLI imported torch before parsing its arguments (5 s of
    CPU for --help). Run in a fresh interpreter: this test process has torch already."""
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from polymodal.cli import app\n"
        f"for args in (['--help'], ['--version'], ['datasets', 'list'],"
        f" ['schema', {str(digits)!r}], ['validate', {str(digits)!r}], ['train', '--help'],"
        f" ['library', 'list', '--root', {str(tmp_path)!r}]):\n"
        "    r = CliRunner().invoke(app, args)\n"
        "    assert r.exit_code == 0, (args, r.output)\n"
        "heavy = ('torch', 'lightning', 'transformers', 'lancedb', 'sklearn')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


@pytest.fixture()
def builtin_home(colour_model, tmp_path, monkeypatch):
    """builtin:lit-tuxpaint made from the small colour model instead of trained on
    tuxpaint (which takes minutes): the names resolve as they do for a user."""
    from polymodal.library import builtin

    monkeypatch.setenv("POLYMODAL_MODELS", str(tmp_path / "models"))
    made = []

    def tiny(folder: Path, quick: bool = False, progress: bool = False) -> Path:
        made.append(folder)
        return colour_model.save(folder)

    monkeypatch.setitem(builtin.BUILTIN, "lit-tuxpaint", tiny)
    return made


def test_every_command_that_takes_a_model_takes_builtin_names(builtin_home, colours,
                                                               tmp_path):
    """Found from outside: evaluate-retrieval and zero-shot refused builtin:NAME, and
    index had no default model for a new library."""
    photos = tmp_path / "photos"
    photos.mkdir()
    colours.drop(columns=["split"]).to_csv(photos / "photos.csv", index=False)
    manifest = str(photos / "photos.csv")
    runner = CliRunner()
    res = runner.invoke(app, ["evaluate-retrieval", "builtin:lit-tuxpaint", manifest,
                              "--json"])
    assert res.exit_code == 0, res.output
    assert "model: builtin:lit-tuxpaint" in res.stderr and json.loads(res.stdout)
    res = runner.invoke(app, ["zero-shot", "builtin:lit-tuxpaint", manifest, "--column",
                              "image", "--classes", "red,green,blue"])
    assert res.exit_code == 0, res.output
    # the default model of a new library (builtin:general) is tested in test_general_model
    res = runner.invoke(app, ["index", manifest, "--library", "mine", "--root",
                              str(tmp_path / "libs"), "--model", "builtin:lit-tuxpaint"])
    assert res.exit_code == 0, res.output
    assert "model builtin:lit-tuxpaint" in res.output and "added" in res.output
    assert len(builtin_home) == 1  # made once, then reused
    res = runner.invoke(app, ["zero-shot", "builtin:nope", manifest, "--column", "image",
                              "--classes", "red"])
    assert res.exit_code == 2 and "no builtin model 'nope'" in res.output
