"""A Captioner trained with questions writes what the question asks about one
picture (its colour or its shape), and ``ask`` writes that answer, naming the items it
rests on. Tiny models on pictures made here."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from polymodal.generate import Captioner
from polymodal.library.asking import written_answer
from polymodal.library.results import Hit

COLOUR_Q, SHAPE_Q = "what colour is it?", "what shape is it?"
COLOURS, SHAPES = {"red.", "blue."}, {"square.", "circle."}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_generate_lm import make_pictures

    folder = tmp_path_factory.mktemp("questions")
    pictures = make_pictures(folder, n=12)
    rows = [{"id": f"{r.id}-{what}", "image": r.image, "question": q,
             "answer": getattr(r, what)}
            for r in pictures.itertuples() for what, q in (("colour", COLOUR_Q),
                                                          ("shape", SHAPE_Q))]
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def asked(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Captioner:
    return Captioner(text="answer", question="question", preset="tiny", dim=32,
                     max_epochs=20, batch_size=4, max_length=4, lr=1e-2, patience=0,
                     path=tmp_path_factory.mktemp("run"), media_cache=None,
                     ).fit(data / "manifest.csv", progress=False)


def test_the_question_changes_what_is_written(asked: Captioner, data: Path,
                                              tmp_path: Path) -> None:
    pictures = [data / f"p{i}.png" for i in range(12)]
    colour = asked.caption(pictures, question=COLOUR_Q)["caption"]
    shape = asked.caption(pictures, question=SHAPE_Q)["caption"]
    assert set(colour) <= COLOURS and set(shape) <= SHAPES
    # one question each, in one call, gives the same as one question a call
    mixed = asked.caption(pictures[:2], question=[COLOUR_Q, SHAPE_Q])["caption"]
    assert mixed.tolist() == [colour[0], shape[1]]
    # the question is read, not predicted: it is no part of the caption's likelihood
    ll = asked.log_likelihood(pictures[:1], ["red."], question=COLOUR_Q)
    assert ll[0] < 0
    loaded = Captioner.load(asked.save(tmp_path / "saved"))
    assert loaded.caption(pictures, question=SHAPE_Q)["caption"].tolist() == shape.tolist()


def test_ask_writes_given_the_question(asked: Captioner, data: Path) -> None:
    class Library:  # what written_answer needs of a library: its picture search
        def search(self, question: str, k: int, modality: str | None = None) -> list[Hit]:
            return [Hit(item=f"p{i}", key=f"k{i}", score=0.9 - i / 10, column="image",
                        modality="image", path=str(data / f"p{i}.png"), text="",
                        thumbnail="") for i in range(k)]

    by_colour = written_answer(Library(), COLOUR_Q, 2, asked)
    by_shape = written_answer(Library(), SHAPE_Q, 2, asked)
    assert by_colour.answer.split()[0] in COLOURS and by_shape.answer.split()[0] in SHAPES
    for answer in (by_colour, by_shape):
        assert answer.method == "captioner" and "about item p0, given the question" in \
            answer.answer and "evidence: p0, p1" in answer.answer


def test_a_question_needs_a_captioner_trained_with_them(data: Path, tmp_path: Path
                                                        ) -> None:
    plain = Captioner(text="answer", preset="tiny", dim=16, max_epochs=1, max_length=4,
                      path=tmp_path, media_cache=None).fit(data / "manifest.csv",
                                                           progress=False)
    with pytest.raises(ValueError, match="trained without questions"):
        plain.caption([data / "p0.png"], question=COLOUR_Q)
    with pytest.raises(ValueError, match="column 'asked' is not in the manifest"):
        Captioner(text="answer", question="asked", preset="tiny", path=tmp_path,
                  media_cache=None).fit(data / "manifest.csv", progress=False)


def test_train_captioner_takes_a_question_column(data: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from polymodal.cli import app

    out = tmp_path / "asked"
    result = CliRunner().invoke(app, [
        "train-captioner", "--train", str(data / "manifest.csv"), "--text", "answer",
        "--question", "question", "--preset", "tiny", "--out", str(out),
        "--set", "max_epochs=1", "--set", "dim=16", "--set", "max_length=4",
        "--set", "patience=0", "--set", f"path={tmp_path / 'run'}"])
    assert result.exit_code == 0, result.output
    loaded = Captioner.load(out)
    assert loaded.question == "question"
    written = loaded.caption(data / "manifest.csv", question=COLOUR_Q)
    assert written["caption"].notna().all()
