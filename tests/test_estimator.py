"""The one estimator core: the Predictor and the Pretrainer are the same fit with
another task; a picture or a sound is decoded once per run, not once per epoch; no
module outside the task stage branches on the problem type."""

from __future__ import annotations

import inspect
import re
from collections import Counter
from pathlib import Path

import pytest

from polymodal.data.bundled import make_dataset
from polymodal.data.manifest import Manifest
from polymodal.estimator import Estimator
from polymodal.predictor import Predictor
from polymodal.pretraining import Pretrainer

SRC = Path(__file__).resolve().parents[1] / "src" / "polymodal"


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return make_dataset("av-digits", tmp_path_factory.mktemp("avd") / "av-digits", limit=3,
                        show_progress=False)


@pytest.mark.parametrize("make", [
    lambda run: Predictor(label="label", preset="tiny", fusion="concat", max_epochs=3,
                          path=run, modalities=["image", "audio"], patience=0,
                          media_cache=None),
    lambda run: Pretrainer(preset="tiny", max_epochs=3, path=run, patience=0,
                           modalities=["image", "audio"], media_cache=None),
], ids=["predictor", "pretrainer"])
def test_each_picture_and_sound_is_decoded_once_per_run(make, digits, decodes, tmp_path):
    """Three epochs, train and validation rows: every image and audio cell decoded
    exactly once (the run's memory cache; the disk cache off, so it is this run's
    doing), none once per epoch."""
    estimator = make(tmp_path / "run").fit(digits, progress=False)
    assert isinstance(estimator, Estimator) and estimator.train_steps_ >= 3
    media = {k: n for k, n in decodes.items() if k[2] in ("image", "audio")}
    assert media and set(media.values()) == {1}, Counter(media.values())
    m = Manifest.read(digits)
    fitted_rows = len(m.split("train")) + len(m.split("val"))  # not the test split
    assert len(media) == 2 * fitted_rows  # every row's picture and sound


def test_without_a_memory_cache_each_epoch_decodes_again(digits, decodes, tmp_path):
    """The counter above counts what it should: with the cache off, three epochs decode
    each training picture three times."""
    Predictor(label="label", preset="tiny", fusion="concat", max_epochs=3, patience=0,
              path=tmp_path / "run", modalities=["image"], memory_cache_mb=0,
              media_cache=None).fit(digits, progress=False)
    assert max(n for k, n in decodes.items() if k[2] == "image") == 3


def test_both_estimators_share_one_fit():
    """The fit, the data path and save / load are the core's, not copied per task."""
    for name in ("fit", "save", "load", "_dataset", "_loader", "from_config", "config"):
        assert name not in vars(Pretrainer), name
        assert name not in vars(Predictor) or name == "fit", name
    # the Predictor's fit only chooses: the search over recipes, or the core's one fit
    source = inspect.getsource(Predictor.fit)
    assert "fit_auto(" in source and "super().fit(" in source
    assert len(source.splitlines()) < 15
    assert Predictor.kind != Pretrainer.kind


def test_only_the_task_stage_branches_on_the_problem_type():
    pattern = re.compile(r"problem_type_?\s*(==|!=|\bin\b)|\"(multiclass|binary|multilabel|"
                         r"regression)\"\s*(==|!=|\bin\b)|(==|!=)\s*\"(multiclass|binary|"
                         r"multilabel|regression)\"")
    found = [f"{path.relative_to(SRC)}:{n}" for path in SRC.rglob("*.py")
             if path.parent.name != "heads"
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if pattern.search(line)]
    assert not found, found


def test_no_module_is_over_400_lines():
    roots = [SRC, SRC.parents[1] / "benchmarks"]
    long = {str(p): n for root in roots for p in root.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long
