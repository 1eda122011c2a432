"""builtin:general: the concept bridge (EfficientNet-Lite0's ImageNet concepts in
MiniLM's space) with no training, shipped ready, and the default model of the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from polymodal.encoders.bridge import (
    ImageNetBridge,
    concept_confidence,
    embed_names,
    imagenet_class_names,
    mix_concepts,
    name_vectors,
)
from polymodal.library.answer import compose_answer, nothing_close
from polymodal.library.general.build import CLOSE_SCORE
from polymodal.library.results import Hit

QUERIES = ["a cat", "a cup of coffee", "a rocket", "a motorcycle", "a dog", "a car"]


def _photo(name: str) -> Image.Image:
    skimage = pytest.importorskip("skimage")
    return Image.open(Path(skimage.__file__).parent / "data" / name).convert("RGB")


@pytest.fixture(scope="module")
def general(tmp_path_factory):
    """The shipped builtin:general, copied into a scratch models folder and loaded,
    with any Lightning fit refused while it is made and loaded."""
    import lightning.pytorch as pl

    from polymodal.library.builtin import builtin_model
    from polymodal.pretraining import Pretrainer

    mp = pytest.MonkeyPatch()
    fits: list[str] = []

    def no_fit(*args, **kwargs):
        fits.append("fit")
        raise AssertionError("builtin:general must not train")

    mp.setattr(pl.Trainer, "fit", no_fit)
    mp.setattr(Pretrainer, "fit", no_fit)
    root = tmp_path_factory.mktemp("models")
    folder = builtin_model("builtin:general", root=root)
    again = builtin_model("general", root=root)
    model = Pretrainer.load(folder)
    mp.undo()
    assert fits == [] and again == folder
    return model, folder


def test_a_flat_distribution_mixes_every_name_equally_and_is_near_nothing():
    vectors = torch.nn.functional.normalize(torch.randn(1000, 8), dim=-1)
    flat = torch.full((2, 1000), 1e-3)
    assert torch.allclose(mix_concepts(flat, vectors, None), vectors.mean(0).expand(2, -1),
                          atol=1e-6)
    assert torch.allclose(concept_confidence(flat), torch.zeros(2), atol=1e-6)
    certain = torch.zeros(1, 1000)
    certain[0, 7] = 1.0
    assert concept_confidence(certain).item() == pytest.approx(1.0)
    assert torch.allclose(mix_concepts(certain, vectors, 5), vectors[7:8], atol=1e-6)
    # with the "nothing" axis, the flat distribution is orthogonal to every sentence
    bridge = ImageNetBridge(vectors=vectors)
    placed = bridge.place(torch.zeros(3, 1000))  # equal logits: the flat distribution
    assert placed.shape == (3, 9)
    assert torch.allclose(placed[:, :8], torch.zeros(3, 8), atol=1e-6)
    assert torch.allclose(placed[:, 8], torch.ones(3))


def test_the_shipped_name_vectors_are_minilms_vectors_of_the_imagenet_names(general):
    names = imagenet_class_names()
    assert len(names) == 1000 and names[281] == "tabby cat" and names[967] == "espresso"
    shipped = name_vectors()
    fresh = embed_names([names[i] for i in (281, 967)],
                        text_encoder=general[0].model_.encoder("caption"))
    assert shipped.shape == (1000, 384)
    assert torch.allclose(shipped[[281, 967]], fresh, atol=1e-4)


def test_the_bridge_puts_pictures_near_their_words_and_unplaceable_ones_near_none(general):
    model, _folder = general
    pictures = {"a cat": _photo("chelsea.png"), "a cup of coffee": _photo("coffee.png"),
                "a motorcycle": _photo("motorcycle_left.png")}
    rng = np.random.default_rng(0)
    junk = [Image.new("RGB", (64, 64), "white"), Image.new("RGB", (64, 64), (128, 128, 128)),
            Image.fromarray(np.clip(rng.normal(128, 40, (224, 224, 3)), 0, 255)
                            .astype(np.uint8))]
    words = model.embed_values("caption", QUERIES)
    scores = model.embed_values("image", list(pictures.values())) @ words.T
    for row, query in zip(scores, pictures, strict=True):
        assert QUERIES[int(row.argmax())] == query
        assert row.max() >= CLOSE_SCORE
    junk_scores = model.embed_values("image", junk) @ words.T
    assert junk_scores.max() < CLOSE_SCORE and junk_scores[:2].max() < CLOSE_SCORE / 2


@pytest.mark.slow  # Whisper transcribes (5 s here)
def test_speech_is_found_by_what_it_says(general, tmp_path):
    import shutil
    import subprocess

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    wav = tmp_path / "say.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "a black cat sleeps on the sofa"],
                   check=True, capture_output=True)
    from polymodal.data.media import decode_audio

    model, _folder = general
    said = model.embed_values("speech", [decode_audio(wav)])
    words = model.embed_values("caption", ["a cat sleeping on a couch", "a red racing car"])
    sims = (said @ words.T)[0]
    assert sims[0] > sims[1] and sims[0] > 0.5


@pytest.mark.slow  # Whisper transcribes (a few seconds here)
def test_a_clip_is_heard_for_its_words_and_silence_for_nothing(general, tmp_path):
    import shutil
    import subprocess

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    from polymodal.data.media import decode_audio

    model, _folder = general
    tower = model.model_.encoder("speech")
    wav = tmp_path / "say.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "a black cat sleeps on the sofa"],
                   check=True, capture_output=True)
    spoken = tower.preprocess(decode_audio(wav))
    silence = np.zeros(32000, np.float32)
    assert 1 - spoken[-1].item() >= 0.5  # the words make most of a spoken clip's place
    assert tower.preprocess(silence)[-1].item() == 1.0  # nothing said: its sound alone
    words = model.embed_values("caption", QUERIES)
    assert (model.embed_values("speech", [silence]) @ words.T).max() < CLOSE_SCORE / 2


def test_answers_say_when_nothing_is_close():
    hit = Hit(item="noise", key="k", score=0.08, column="image", modality="image",
              path="", text="", thumbnail="")
    assert nothing_close([hit], 0.2) and not nothing_close([hit], None)
    text = compose_answer("a giraffe", [hit], close=0.2)
    assert text.startswith("Nothing in the library is close") and "0.08" in text
    assert compose_answer("a giraffe", [hit]).startswith("Best match: noise")


def test_the_cli_uses_builtin_general_by_default_and_says_so(general, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from polymodal.cli import app

    _model, folder = general
    monkeypatch.setenv("POLYMODAL_MODELS", str(folder.parent))
    monkeypatch.setenv("POLYMODAL_ONNX", "0")
    photos = tmp_path / "photos"
    photos.mkdir()
    _photo("coffee.png").save(photos / "coffee.png")
    Image.new("RGB", (64, 64), "white").save(photos / "blank.png")
    libs = ["--library", "mine", "--root", str(tmp_path / "libs")]
    runner = CliRunner()
    res = runner.invoke(app, ["index", str(photos), *libs])
    assert res.exit_code == 0, res.output
    assert "model builtin:general" in res.output and "2 added" in res.output
    res = runner.invoke(app, ["search", "a cup of coffee", *libs, "--k", "2"])
    assert res.exit_code == 0, res.output
    assert "(model builtin:general)" in res.stdout and "coffee" in res.stdout
    assert "nothing close" not in res.stdout
    res = runner.invoke(app, ["ask", "a cup of coffee", *libs, "--json"])
    answer = json.loads(res.stdout)
    assert answer["evidence"][0]["item"] == "coffee" and not answer["nothing_close"]
    assert answer["model"] == "builtin:general"
    # a library of a blank page: whatever is asked, nothing is close, and it says so
    (photos / "coffee.png").unlink()
    blank = ["--library", "blank", "--root", str(tmp_path / "libs")]
    assert runner.invoke(app, ["index", str(photos), *blank]).exit_code == 0
    res = runner.invoke(app, ["search", "a cup of coffee", *blank])
    assert res.exit_code == 0 and "nothing close" in res.stdout
    answer = json.loads(runner.invoke(app, ["ask", "a cup of coffee", *blank, "--json"]).stdout)
    assert answer["nothing_close"] and answer["answer"].startswith("Nothing in the library")


def test_zero_shot_and_evaluate_retrieval_default_to_builtin_general(general, tmp_path,
                                                                      monkeypatch):
    from typer.testing import CliRunner

    from polymodal.cli import app

    _model, folder = general
    monkeypatch.setenv("POLYMODAL_MODELS", str(folder.parent))
    _photo("coffee.png").save(tmp_path / "coffee.png")
    Image.new("RGB", (64, 64), "white").save(tmp_path / "blank.png")
    rows = tmp_path / "rows.csv"
    rows.write_text("id,image,caption\ncoffee,coffee.png,a cup of coffee\n"
                    "blank,blank.png,a blank page\n")
    runner = CliRunner()
    res = runner.invoke(app, ["zero-shot", str(rows), "--column", "image",
                              "--classes", "a cup of coffee,a bicycle"])
    assert res.exit_code == 0, res.output
    assert "builtin:general" in res.output
    res = runner.invoke(app, ["evaluate-retrieval", str(rows), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)  # one record per direction
