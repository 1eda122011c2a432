"""The written-answers benchmark's scoring: exact match after normalising, per kind and
family, the share of answers that are no answer at all, and the majority-per-family
baseline fitted on the train split only."""

from __future__ import annotations

import pandas as pd
import pytest

from benchmarks.captioning_answers import accuracies, majority_by_family, normalised


def _rows(answers: list[str], families: list[str], split: str) -> pd.DataFrame:
    return pd.DataFrame({"answer": answers, "family": families, "split": split,
                         "relational": [f in ("closest", "furthest", "count")
                                        for f in families]})


def test_answers_are_compared_as_words() -> None:
    assert normalised("Square.") == "square" and normalised(" yes ") == "yes"
    assert normalised(None) == "" and normalised(float("nan")) == ""


def test_accuracy_per_kind_and_family() -> None:
    test = _rows(["square", "yes", "no", "circle", "3", "square"],
                 ["shape", "horizontal", "vertical", "closest", "count", "furthest"], "test")
    a = accuracies(["square.", "no", "no", "circle", "three", "square"], test)
    assert a["all"] == pytest.approx(4 / 6)
    assert a["non-relational"] == pytest.approx(2 / 3) and a["relational"] == pytest.approx(2 / 3)
    assert a["shape"] == 1.0 and a["horizontal"] == 0.0 and a["count"] == 0.0
    assert a["invalid"] == pytest.approx(1 / 6)  # "three" is none of the answers


def test_majority_answer_of_each_family_from_train_only() -> None:
    train = pd.concat([
        _rows(["yes", "yes", "no", "2", "2", "4"], ["horizontal"] * 3 + ["count"] * 3,
              "train"),
        _rows(["no"] * 5 + ["4"] * 5, ["horizontal"] * 5 + ["count"] * 5, "val")])
    test = _rows(["no", "4", "yes"], ["horizontal", "count", "horizontal"], "test")
    assert majority_by_family(train, test) == ["yes", "2", "yes"]
