"""A pretrained causal language model as the Captioner's decoder: a tiny random GPT-2
and a word-level tokenizer built here (offline), fitted on pictures made here; it
learns, writes, saves and loads; a language model that is not on this machine is
refused by name."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image, ImageDraw

from polymodal.generate import Captioner

COLOURS = {"red": (220, 30, 30), "blue": (30, 30, 220)}


def make_pictures(folder: Path, n: int = 16) -> pd.DataFrame:
    """``n`` 16x16 pictures (a red or blue square or circle) and their captions."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        colour, shape = list(COLOURS)[i % 2], ("square", "circle")[i // 2 % 2]
        img = Image.new("RGB", (16, 16), "white")
        draw = ImageDraw.Draw(img)
        (draw.rectangle if shape == "square" else draw.ellipse)((3, 3, 12, 12),
                                                                fill=COLOURS[colour])
        img.save(folder / f"p{i}.png")
        rows.append({"id": f"p{i}", "image": f"p{i}.png",
                     "caption": f"A {colour} {shape}.", "colour": f"{colour}.",
                     "shape": f"{shape}."})
    return pd.DataFrame(rows)


def make_language_model(folder: Path, texts: list[str]) -> Path:
    """A random 1-layer GPT-2 (width 32) and a word-level tokenizer trained on
    ``texts``, saved with ``save_pretrained`` into ``folder``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    words = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    words.train_from_iterator(texts, trainers.WordLevelTrainer(
        special_tokens=["<|endoftext|>", "[UNK]"]))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=words, eos_token="<|endoftext|>",
                                        bos_token="<|endoftext|>", unk_token="[UNK]",
                                        pad_token="<|endoftext|>")
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=32, n_positions=64,
                               vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                               eos_token_id=tokenizer.eos_token_id,
                               initializer_range=0.3)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lm-captions")
    make_pictures(folder).to_csv(folder / "manifest.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def lm_folder(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    captions = pd.read_csv(data / "manifest.csv")["caption"].tolist()
    return make_language_model(tmp_path_factory.mktemp("tiny-gpt2"), captions)


def _train_losses(run: Path) -> list[float]:
    logs = pd.read_csv(run / "logs" / "metrics.csv")
    column = "train_loss_epoch" if "train_loss_epoch" in logs else "train_loss"
    return logs[column].dropna().tolist()


@pytest.mark.parametrize("fine_tune", [False, True])
def test_language_model_decoder(data: Path, lm_folder: Path, tmp_path: Path,
                                fine_tune: bool) -> None:
    from polymodal.generate.lm_decoder import LMCaptionModel

    cap = Captioner(decoder=str(lm_folder), fine_tune=fine_tune, preset="tiny",
                    max_epochs=8, batch_size=4, max_length=6, lr=1e-2, path=tmp_path / "run",
                    media_cache=None).fit(data / "manifest.csv", progress=False)
    assert isinstance(cap.model_, LMCaptionModel)
    frozen = [p.requires_grad for p in cap.model_.lm.parameters()]
    assert not any(frozen) if not fine_tune else all(frozen)
    losses = _train_losses(tmp_path / "run")
    assert len(losses) >= 2 and losses[-1] < 0.7 * losses[0]
    written = cap.caption(data / "manifest.csv", beam=2)
    assert written["caption"].map(lambda c: isinstance(c, str) and c != "").all()
    assert set(" ".join(written["caption"]).split()) <= {"A", "red", "blue", "square",
                                                         "circle", ".", "square.",
                                                         "circle."}
    # a caption stops at max_length, marked cut
    short = cap.caption(data / "manifest.csv", max_length=1)
    assert (short["caption"].str.split().str.len() <= 1).all()
    saved = cap.save(tmp_path / "saved")
    with_lm = (saved / "model.safetensors").stat().st_size
    loaded = Captioner.load(saved)
    assert loaded.caption(data / "manifest.csv", beam=2)["caption"].tolist() == \
        written["caption"].tolist()
    assert torch.equal(loaded.model_.project[0].weight, cap.model_.project[0].weight)
    lm_bytes = sum(p.numel() * 4 for p in cap.model_.lm.parameters())
    assert (with_lm > lm_bytes) == fine_tune  # the frozen LM is not copied
    from polymodal.training import load_training_checkpoint

    checkpoint = load_training_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    in_checkpoint = any(k.startswith("model.lm.") for k in checkpoint["state_dict"])
    assert in_checkpoint == fine_tune  # nor written into each epoch's checkpoint


def test_missing_language_model_is_refused(data: Path, lm_folder: Path, tmp_path: Path,
                                           ) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ValueError, match=r"decoder '.*no-such-model'.*present locally"):
        Captioner(decoder=str(missing), preset="tiny", max_epochs=1, path=tmp_path / "r",
                  media_cache=None).fit(data / "manifest.csv", progress=False)
    with pytest.raises(ValueError, match=r"decoder 'not-a-cached-model-name'.*locally"):
        Captioner(decoder="not-a-cached-model-name", preset="tiny", max_epochs=1,
                  path=tmp_path / "r", media_cache=None).fit(data / "manifest.csv",
                                                             progress=False)
    # a saved captioner whose language model has gone is refused at load, by name
    import shutil

    moved = tmp_path / "lm"
    shutil.copytree(lm_folder, moved)
    cap = Captioner(decoder=str(moved), preset="tiny", max_epochs=1, max_length=6,
                    path=tmp_path / "run", media_cache=None).fit(data / "manifest.csv",
                                                                 progress=False)
    saved = cap.save(tmp_path / "saved")
    shutil.rmtree(moved)
    with pytest.raises(ValueError, match=rf"decoder '{moved}'.*present locally"):
        Captioner.load(saved)
