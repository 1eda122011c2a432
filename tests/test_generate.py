"""The generative half: captions written from pictures (search, limits, save / load,
bad input) and the GAN's refusals. Tiny models on pictures made here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from PIL import Image, ImageDraw

from polymodal.generate import Captioner, Vocabulary
from polymodal.generate.decoding import beam_search, decode, greedy
from polymodal.generate.tokens import BOS, EOS, join_words, words

COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220), "green": (30, 180, 30)}


def _pictures(folder: Path) -> pd.DataFrame:
    """Twelve 16x16 pictures: a square or a circle in one of three colours, each with
    its caption; and one row that holds only a sound."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(12):
        colour, shape = list(COLOURS)[i % 3], ("square", "circle")[i // 3 % 2]
        img = Image.new("RGB", (16, 16), "white")
        draw = ImageDraw.Draw(img)
        box = (3 + i % 2, 3, 12, 12)
        (draw.rectangle if shape == "square" else draw.ellipse)(box, fill=COLOURS[colour])
        img.save(folder / f"p{i}.png")
        rows.append({"id": f"p{i}", "image": f"p{i}.png", "sound": None,
                     "caption": f"A {colour} {shape}."})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("captions")
    table = _pictures(folder)
    table.to_csv(folder / "manifest.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def fitted(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Captioner:
    run = tmp_path_factory.mktemp("run")
    return Captioner(text="caption", preset="tiny", dim=16, max_epochs=2, max_length=8,
                     path=run, media_cache=None).fit(data / "manifest.csv", progress=False)


def test_words_round_trip() -> None:
    assert words("a photo of a t-shirt/top.") == ["a", "photo", "of", "a", "t-shirt/top", "."]
    assert join_words(words("A baby sheep (a lamb).")) == "A baby sheep (a lamb)."
    v = Vocabulary.fit(["A frog.", "A red frog."])
    assert v.decode(v.encode("A red frog.", 10)) == "A red frog."
    assert v.decode(v.encode("A blue frog.", 10)) == "A <unk> frog."
    assert v.encode("A red frog.", 3) == [BOS, v.index["A"], v.index["frog"], EOS] or \
        len(v.encode("A red frog.", 3)) == 4


def _scripted(table: dict[tuple[int, ...], dict[int, float]], vocab: int = 6):
    """A next-word function that gives the log-probabilities ``table`` lists for a
    prefix (uniform over the rest)."""
    def step(ids: torch.Tensor, memory: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        out = []
        for row in ids.tolist():
            probs = torch.full((vocab,), 1e-6)
            for word, p in table.get(tuple(row[1:]), {}).items():
                probs[word] = p
            out.append(torch.log(probs / probs.sum()))
        return torch.stack(out)
    return step


def test_beam_finds_what_greedy_misses() -> None:
    # greedy takes 4 (0.6), then nothing after it is likely; 5 (0.4) then <eos> (0.9)
    step = _scripted({(): {4: 0.6, 5: 0.4}, (4,): {EOS: 0.3, 4: 0.35, 5: 0.35},
                      (4, 4): {EOS: 1.0}, (4, 5): {EOS: 1.0}, (5,): {EOS: 0.9, 4: 0.1}})
    memory, padding = torch.zeros(1, 1, 2), torch.zeros(1, 1, dtype=torch.bool)
    g = greedy(step, memory, padding, max_length=5)[0]
    b = beam_search(step, memory, padding, max_length=5, beam=3)[0]
    assert g.ids[0] == 4 and b.ids == [5] and not b.cut
    assert b.log_likelihood == pytest.approx(np.log(0.4 * 0.9), abs=1e-4)
    assert b.log_likelihood > g.log_likelihood


def test_decoding_stops_at_the_length_limit() -> None:
    step = _scripted({})  # never writes <eos> on purpose: uniform over 6 words
    never_ends = lambda ids, m, p: step(ids, m, p).index_fill(1, torch.tensor([EOS]), -1e9)  # noqa: E731
    memory, padding = torch.zeros(2, 1, 2), torch.zeros(2, 1, dtype=torch.bool)
    for beam in (1, 3):
        for h in decode(never_ends, memory, padding, max_length=4, beam=beam):
            assert len(h.ids) == 4 and h.cut
    with pytest.raises(ValueError, match="at least 1"):
        greedy(step, memory, padding, max_length=0)


def test_fit_caption_save_load(fitted: Captioner, data: Path, tmp_path: Path) -> None:
    greedy_out = fitted.caption(data / "manifest.csv")
    assert greedy_out["caption"].notna().sum() == 12
    assert greedy_out["problem"].isna().all()
    beam_out = fitted.caption(data / "manifest.csv", beam=3)
    # the beam's caption is never less likely than greedy's (length_penalty 0)
    assert (beam_out["log_likelihood"] >= greedy_out["log_likelihood"] - 1e-5).all()
    # the reported score is the model's likelihood of the written caption
    uncut = ~beam_out["cut"].to_numpy()
    rescored = fitted.log_likelihood(data / "manifest.csv", beam_out["caption"].tolist())
    np.testing.assert_allclose(rescored[uncut], beam_out["log_likelihood"][uncut], atol=1e-4)
    saved = fitted.save(tmp_path / "captioner")
    loaded = Captioner.load(saved)
    assert loaded.caption(data / "manifest.csv", beam=3)["caption"].tolist() == \
        beam_out["caption"].tolist()
    assert loaded.vocabulary_.words == fitted.vocabulary_.words


def test_caption_length_limit(fitted: Captioner, data: Path) -> None:
    out = fitted.caption(data / "manifest.csv", max_length=2, beam=2)
    assert all(len(words(c)) <= 2 for c in out["caption"])
    with pytest.raises(ValueError, match="past this model's limit of 8"):
        fitted.caption(data / "manifest.csv", max_length=9)


def test_audio_only_rows_say_so(fitted: Captioner, data: Path, tmp_path: Path) -> None:
    sf.write(tmp_path / "moo.wav", np.zeros(1600, dtype=np.float32), 16_000)
    table = pd.DataFrame({"id": ["cow", "p0"], "image": [None, str(data / "p0.png")],
                          "sound": [str(tmp_path / "moo.wav"), None]})
    out = fitted.caption(table)
    assert out.loc[0, "caption"] is None
    assert "no picture" in out.loc[0, "problem"] and "audio (sound)" in out.loc[0, "problem"]
    assert isinstance(out.loc[1, "caption"], str) and out.loc[1, "problem"] is None
    with pytest.raises(ValueError, match="no picture column"):
        fitted.caption(table.drop(columns=["image"]))


def test_bad_settings_and_rows(data: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a picture column"):
        Captioner(image="caption", preset="tiny", path=tmp_path, media_cache=None).fit(
            data / "manifest.csv", progress=False)
    with pytest.raises(ValueError, match="multiple of its 3 attention heads"):
        Captioner(preset="tiny", dim=16, heads=3, max_epochs=1, path=tmp_path,
                  media_cache=None).fit(data / "manifest.csv", progress=False)
    with pytest.raises(ValueError, match="not a saved Captioner"):
        Captioner.load(tmp_path)


# -- the GAN ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gan(data: Path):
    from polymodal.generate.gan import ConditionalGAN

    table = pd.read_csv(data / "manifest.csv")
    table["label"] = table["caption"].str.split().str[1]  # the colour
    table["image"] = [str(data / p) for p in table["image"]]
    return ConditionalGAN(size=8, width=4, z_dim=4, steps=3, batch_size=4).fit(
        table.drop(columns=["sound"]))


def test_gan_samples_known_classes_only(gan, tmp_path: Path) -> None:
    from polymodal.generate.augment import mix, write_synthetic
    from polymodal.generate.gan import ConditionalGAN

    assert gan.classes_ == ["blue", "green", "red"]
    pictures = gan.sample("red", 3, seed=1)
    assert [p.size for p in pictures] == [(8, 8)] * 3 and pictures[0].mode == "L"
    with pytest.raises(ValueError, match=r"'purple' is not one this GAN was trained on; "
                                         r"it knows \['blue', 'green', 'red'\]"):
        gan.sample("purple", 1)
    with pytest.raises(ValueError, match="purple"):
        write_synthetic(gan, tmp_path / "never", 2, classes=["red", "purple"])
    assert not (tmp_path / "never").exists()
    loaded = ConditionalGAN.load(gan.save(tmp_path / "gan"))
    assert np.array_equal(np.asarray(loaded.sample("red", 3, seed=1)[2]),
                          np.asarray(pictures[2]))
    manifest = write_synthetic(loaded, tmp_path / "syn", 4, classes=["red", "blue"])
    rows = pd.read_csv(manifest)
    assert len(rows) == 8 and set(rows["label"]) == {"red", "blue"}
    assert rows["caption"].iloc[0] == "a synthetic picture of a red."
    assert all((tmp_path / "syn" / p).exists() for p in rows["image"])
    real = pd.DataFrame({"image": ["/a.png", "/b.png"], "label": ["red", "blue"]})
    mixed = mix(real, manifest, ratio=1.5)
    assert len(mixed) == 5 and mixed["synthetic"].sum() == 3
    with pytest.raises(ValueError, match="not a saved GAN"):
        ConditionalGAN.load(tmp_path)


def test_gan_two_learning_rates(gan, tmp_path: Path) -> None:
    """The discriminator learns at its own rate (d_lr), saved and loaded with the GAN."""
    from polymodal.generate.gan import BETAS, ConditionalGAN, _GANModule

    module = _GANModule(gan.generator_, gan.discriminator_, lr=1e-4, d_lr=4e-4)
    opt_g, opt_d = module.configure_optimizers()
    assert opt_g.param_groups[0]["lr"] == 1e-4 and opt_d.param_groups[0]["lr"] == 4e-4
    assert opt_d.param_groups[0]["betas"] == BETAS == (0.0, 0.9)
    assert (gan.lr, gan.d_lr) == (1e-4, 4e-4)
    other = ConditionalGAN(size=8, width=4, z_dim=4, d_lr=1e-3)
    other.classes_, other.n_train_ = gan.classes_, gan.n_train_
    other.generator_, other.discriminator_ = gan.generator_, gan.discriminator_
    loaded = ConditionalGAN.load(other.save(tmp_path / "g"))
    assert loaded.d_lr == 1e-3


def test_ask_written_by_the_captioner(fitted: Captioner, data: Path) -> None:
    from polymodal.library.asking import written_answer
    from polymodal.library.results import Hit

    class Library:  # what written_answer needs of a library: its picture search
        def search(self, question: str, k: int, modality: str | None = None) -> list[Hit]:
            assert modality == "image"
            return [Hit(item=f"p{i}", key=f"k{i}", score=0.9 - i / 10, column="image",
                        modality="image", path=str(data / f"p{i}.png"), text="",
                        thumbnail="") for i in range(k)]

    answer = written_answer(Library(), "which one is red?", 2, fitted)
    expected = fitted.caption([data / "p0.png"])["caption"].iloc[0]
    assert answer.method == "captioner" and answer.answer.startswith(expected)
    assert "about item p0" in answer.answer and "evidence: p0, p1" in answer.answer
    assert [h.item for h in answer.evidence] == ["p0", "p1"]
