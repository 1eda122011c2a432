"""Files saved by an earlier polymodal load and give the same outputs: a Predictor, a
Pretrainer and a library saved by version 0.1 (tests/fixtures/compat/v0.1, made by
tests/fixtures/compat/make.py with that version)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

FIXTURE = Path(__file__).parent / "fixtures" / "compat" / "v0.1"


@pytest.fixture()
def saved(tmp_path: Path) -> Path:
    """A copy of the fixture; the library's config names its model by absolute path, so
    the copy's names the copied model (as a user's library names where it was made)."""
    folder = tmp_path / "v0.1"
    shutil.copytree(FIXTURE, folder)
    config = folder / "libraries" / "colours" / "library.yaml"
    settings = yaml.safe_load(config.read_text())
    settings["model"] = settings["model_name"] = str(folder / "pretrainer")
    config.write_text(yaml.safe_dump(settings))
    return folder


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads((FIXTURE / "expected.json").read_text())


def test_a_saved_predictor_predicts_as_it_did(saved, expected):
    from polymodal.predictor import Predictor

    p = Predictor.load(saved / "predictor")
    np.testing.assert_allclose(p.predict_proba(saved / "rows.csv").to_numpy(),
                               expected["predict_proba"], atol=1e-5)
    np.testing.assert_allclose(p.embed(saved / "rows.csv"), expected["predictor_embed"],
                               atol=1e-4)
    assert p.training_log() is not None  # the learning curves travel with it


def test_a_saved_pretrainer_embeds_as_it_did(saved, expected):
    from polymodal.pretraining import Pretrainer

    pre = Pretrainer.load(saved / "pretrainer")
    got = pre.embed(saved / "rows.csv")
    assert sorted(got) == sorted(expected["pretrainer_embed"])
    for column, values in expected["pretrainer_embed"].items():
        np.testing.assert_allclose(np.nan_to_num(got[column]), values, atol=1e-5)


def test_a_saved_library_answers_as_it_did(saved, expected):
    from polymodal.library import Library

    lib = Library("colours", root=saved / "libraries")
    assert len(lib) == expected["library_items"]
    for hits, want in ((lib.search("a red square", k=5), expected["search"]),
                       (lib.search("blue", k=4, modality="image"), expected["search_images"])):
        np.testing.assert_allclose([h.score for h in hits], [w["score"] for w in want],
                                   atol=1e-4)
        # rows of equal score (one caption on two rows) may come in either order, and
        # a tie at the last place may be cut either way
        by_score = {}
        for w in want:
            by_score.setdefault(round(w["score"], 3), set()).add(w["item"])
        last = min(by_score)
        for h in hits:
            assert round(float(h.score), 3) == last or \
                h.item in by_score[round(float(h.score), 3)]
