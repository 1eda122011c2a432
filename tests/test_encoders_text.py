"""Text encoders: bag-of-words, learned embeddings, word vectors, Hugging Face, MiniLM."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polymodal.encoders import build_encoder
from polymodal.encoders.text import PretrainedWordVectorsEncoder

TEXTS = ["a red bird sings", "the cow says moo", "a red red apple", "moo moo said the cow"]


def _all_parameters_get_gradients(encoder, batch_texts):
    encoder.train()
    out = encoder.encode(batch_texts)
    (out.pooled.sum() + out.tokens.sum()).backward()
    missing = [n for n, p in encoder.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []


@pytest.mark.parametrize("name", ["bow", "tfidf"])
def test_bag_of_words_fits_on_training_text(name):
    enc = build_encoder(name)
    with pytest.raises(RuntimeError, match="call fit"):
        enc.preprocess("a red bird")
    enc.fit([*TEXTS, None, ""])
    assert enc.output_dim == len(enc.vectorizer_.vocabulary_) > 5
    out = enc.encode(["a red bird", None])
    assert out.pooled.shape == (2, enc.output_dim)
    assert out.tokens.shape == (2, 1, enc.output_dim)
    red = enc.vectorizer_.vocabulary_["red"]
    assert out.pooled[0, red] > 0 and out.pooled[1].abs().sum() == 0
    with pytest.raises(ValueError, match="no non-empty text"):
        build_encoder(name).fit([None, " "])
    # a loaded encoder saves again before it has encoded anything (a model warm-started
    # from a checkpoint writes its own), and encodes as the fitted one does
    loaded = build_encoder(name)
    loaded.load_state_dict(enc.state_dict())
    assert loaded.get_extra_state() == enc.get_extra_state()
    torch.testing.assert_close(loaded.encode(["a red bird", None]).pooled, out.pooled)


@pytest.mark.parametrize("pooling", ["mean", "bilstm", "transformer"])
def test_learned_word_embeddings_mask_padding(pooling):
    torch.manual_seed(0)
    enc = build_encoder(f"word-{pooling}", dim=16, max_length=6).fit(TEXTS)
    assert enc.output_dim == 16
    enc.eval()
    long_text = "moo " * 20
    batch = enc.encode(["a red bird", long_text])
    alone = enc.encode(["a red bird"])
    assert batch.tokens.shape == (2, 6, 16)  # truncated to max_length words
    assert batch.mask.tolist() == [[True] * 3 + [False] * 3, [True] * 6]
    # padding does not change a row's result
    torch.testing.assert_close(batch.pooled[0], alone.pooled[0], atol=1e-5, rtol=1e-5)
    # unknown words and punctuation-only text still give a finite vector
    odd = enc.encode(["zebra!!", "?!"])
    assert torch.isfinite(odd.pooled).all()
    _all_parameters_get_gradients(enc, ["a red bird", "the cow"])


def test_pretrained_word_vectors_glove_and_word2vec(tmp_path):
    glove = tmp_path / "glove.txt"
    glove.write_text("cat 1 0 0\ndog 0 1 0\nbird 0 0 1\n")
    w2v = tmp_path / "w2v.txt"
    w2v.write_text("3 3\ncat 1 0 0\ndog 0 1 0\nbird 0 0 1\n")
    for path in (glove, w2v):
        enc = build_encoder("word-vectors", path=path)
        assert isinstance(enc, PretrainedWordVectorsEncoder) and enc.output_dim == 3
        out = enc.encode(["Cat dog", "cat"])
        torch.testing.assert_close(out.pooled[0], torch.tensor([0.5, 0.5, 0.0]))
        torch.testing.assert_close(out.pooled[1], torch.tensor([1.0, 0.0, 0.0]))
        assert not enc.embedding.weight.requires_grad
    bad = tmp_path / "bad.txt"
    bad.write_text("cat 1 0 0\ndog 0 1\n")
    with pytest.raises(Exception, match="line 2"):
        build_encoder("word-vectors", path=bad)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "bird", "cow", "moo",
             "the", "says", "sings"]
    (folder / "vocab.txt").write_text("\n".join(vocab))
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=37,
                         max_position_embeddings=16)).save_pretrained(folder)
    return folder


def test_hugging_face_text_model_from_a_folder(tiny_bert, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enc = build_encoder("hf-text", model=str(tiny_bert), max_length=8)
    assert enc.output_dim == 32 and not enc.trainable
    out = enc.encode(["a red bird", "the cow says moo " * 5])
    assert out.tokens.shape[0] == 2 and out.tokens.shape[1] == 8  # truncated to max_length
    assert out.mask[0].sum() == 5  # [CLS] a red bird [SEP]
    alone = enc.encode(["a red bird"])
    torch.testing.assert_close(out.pooled[0], alone.pooled[0], atol=1e-5, rtol=1e-4)


def test_minilm_loads_offline_and_matches_sentence_transformers(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    from polymodal.encoders.text import minilm_path

    enc = build_encoder("minilm")
    sentences = ["A cow says moo.", "The cow is mooing.", "A rocket flies to space."]
    ours = enc.encode(sentences).pooled
    assert ours.shape == (3, 384)
    reference = SentenceTransformer(str(minilm_path()), device="cpu").encode(sentences)
    np.testing.assert_allclose(ours.numpy(), reference, atol=2e-5)
    sims = ours @ ours.T
    assert sims[0, 1] > sims[0, 2] + 0.3  # meaning, not words
