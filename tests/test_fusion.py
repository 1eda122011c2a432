"""Fusion: every method trains every parameter and accepts rows lacking modalities."""

from __future__ import annotations

import pytest
import torch

from polymodal.encoders.base import Encoded
from polymodal.fusion import FUSIONS, GatedFusion, build_fusion, modality_dropout

COLUMNS = ["audio", "image", "record"]
DIM, B = 8, 5


def _inputs(seed: int = 0) -> tuple[dict[str, Encoded], dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    encoded, present = {}, {}
    for i, c in enumerate(COLUMNS):
        tokens = torch.randn(B, 3 + i, DIM, generator=g, requires_grad=True)
        mask = torch.ones(B, 3 + i, dtype=torch.bool)
        mask[0, 1:] = False
        encoded[c] = Encoded(tokens, mask, tokens.mean(dim=1))
        present[c] = torch.tensor([True, True, False, True, False])
    present["image"] = torch.tensor([True, False, True, True, False])  # row 4 lacks all
    return encoded, present


def test_six_methods_are_registered():
    assert set(FUSIONS) == {"concat", "late", "gated", "attention", "tensor", "lowrank",
                            "relation"}


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_every_parameter_gets_a_gradient_and_missing_rows_are_finite(name):
    torch.manual_seed(0)
    fusion = build_fusion(name, COLUMNS, DIM, out_dim=6)
    encoded, present = _inputs()
    out = fusion(encoded, present)
    assert out.shape == (B, 6)
    assert torch.isfinite(out).all()
    out.pow(2).sum().backward()
    no_grad = [n for n, p in fusion.named_parameters() if p.grad is None or not
               torch.isfinite(p.grad).all()]
    assert no_grad == []
    assert all(p.grad.abs().sum() > 0 for p in fusion.parameters())


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_every_fusion_takes_dotted_column_names(name):
    """Found reading the code: late, tensor and low-rank fusion keyed torch modules by
    the column name, and torch refuses a dot (``img.front``): a KeyError at build."""
    torch.manual_seed(0)
    dotted = {"audio": "snd.left", "image": "img.front", "record": "notes.v2"}
    fusion = build_fusion(name, sorted(dotted.values()), DIM, out_dim=6)
    encoded, present = _inputs()
    out = fusion({dotted[c]: e for c, e in encoded.items()},
                 {dotted[c]: p for c, p in present.items()})
    assert out.shape == (B, 6) and torch.isfinite(out).all()
    out.pow(2).sum().backward()
    assert all(p.grad is not None for p in fusion.parameters())


@pytest.mark.parametrize("name", sorted(FUSIONS))
def test_an_absent_column_does_not_leak_into_the_result(name):
    torch.manual_seed(0)
    fusion = build_fusion(name, COLUMNS, DIM).eval()
    encoded, present = _inputs()
    before = fusion(encoded, present)
    noisy = dict(encoded)
    t = encoded["record"].tokens.detach() + 100.0  # garbage where the record is absent
    noisy["record"] = Encoded(t, encoded["record"].mask, t.mean(dim=1))
    after = fusion(noisy, present)
    absent = ~present["record"]
    torch.testing.assert_close(before[absent], after[absent])


def test_gated_weights_cover_present_columns_only():
    torch.manual_seed(0)
    fusion = GatedFusion(COLUMNS, DIM)
    encoded, present = _inputs()
    fusion(encoded, present)
    w = fusion.last_weights
    flags = torch.stack([present[c] for c in sorted(COLUMNS)], dim=1)
    assert torch.all(w[~flags] < 1e-6)
    torch.testing.assert_close(w[:4].sum(dim=1), torch.ones(4))
    assert w[4].sum() == 0  # a row with nothing gets no weights


def test_modality_dropout_keeps_one_present_column_per_row():
    g = torch.Generator().manual_seed(0)
    present = {"a": torch.ones(1000, dtype=torch.bool), "b": torch.ones(1000, dtype=torch.bool),
               "c": torch.zeros(1000, dtype=torch.bool)}
    dropped = modality_dropout(present, 0.5, generator=g)
    kept = torch.stack([dropped[c] for c in "abc"], dim=1)
    assert kept.any(dim=1).all()
    assert not dropped["c"].any()  # never invents a modality
    # p = 0.5 on two columns: both dropped in 25% of rows, one of them restored: 37.5% dropped
    assert 0.35 < 1 - kept[:, :2].float().mean() < 0.40
    assert modality_dropout(present, 0.0) is present


def test_unknown_fusion_and_oversized_tensor_fusion():
    with pytest.raises(KeyError, match="known fusions"):
        build_fusion("sum", COLUMNS, DIM)
    with pytest.raises(ValueError, match="lowrank"):
        build_fusion("tensor", [f"c{i}" for i in range(6)], DIM, rank_dim=16)


def test_relation_pairs_are_g_of_each_concatenated_triple():
    """The factored first layer computes exactly g(cat(o_i, o_j, q)) for every pair."""
    from polymodal.fusion.methods import RelationFusion

    torch.manual_seed(0)
    rn = RelationFusion(["image", "question"], dim=8)
    tokens, question = torch.randn(3, 5, 8), torch.randn(3, 8)
    b, t, d = tokens.shape
    pairs = torch.cat([tokens.unsqueeze(2).expand(b, t, t, d),
                       tokens.unsqueeze(1).expand(b, t, t, d),
                       question[:, None, None].expand(b, t, t, d)], dim=-1)
    torch.testing.assert_close(rn._relations(tokens, question), rn.g(pairs),
                               rtol=1e-5, atol=1e-5)


def test_relation_sums_g_over_the_present_pairs_only():
    """f sees the sum of g over the pairs of present objects (the paper's sum: a mean
    learned far slower), with the question beside it."""
    from polymodal.fusion.methods import RelationFusion

    torch.manual_seed(0)
    rn = RelationFusion(["image", "question"], dim=8, objects="image").eval()
    tokens, question = torch.randn(2, 5, 8), torch.randn(2, 8)
    mask = torch.tensor([[True, True, False, False, False], [True] * 5])
    encoded = {"image": Encoded(tokens, mask, tokens.mean(dim=1)),
               "question": Encoded(question[:, None], torch.ones(2, 1, dtype=torch.bool),
                                   question)}
    present = {"image": torch.tensor([True, True]), "question": torch.tensor([True, True])}
    out = rn(encoded, present)
    relations = rn._relations(tokens + rn.position[:5], question)
    expected = torch.stack([relations[0, :2, :2].sum(dim=(0, 1)), relations[1].sum(dim=(0, 1))])
    torch.testing.assert_close(out, rn.f(torch.cat([expected, question], dim=-1)))


def test_relation_norm_brings_objects_and_question_to_one_scale():
    """With ``norm``, g sees each object and the question layer-normalised: scaling the
    objects up a hundredfold (a projection's init, an encoder's units) changes nothing,
    where without it g's output moves; the pairs are still g of each triple."""
    from polymodal.fusion.methods import RelationFusion

    torch.manual_seed(0)
    normed = RelationFusion(["image", "question"], dim=8, norm=True)
    plain = RelationFusion(["image", "question"], dim=8)
    plain.load_state_dict({k: v for k, v in normed.state_dict().items() if "norm" not in k})
    tokens, question = torch.randn(3, 5, 8), torch.randn(3, 8)
    torch.testing.assert_close(normed._relations(100 * tokens, question),
                               normed._relations(tokens, question), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(plain._relations(100 * tokens, question),
                              plain._relations(tokens, question), rtol=1e-2, atol=1e-2)
    ln = torch.nn.functional.layer_norm
    torch.testing.assert_close(normed._relations(tokens, question),
                               plain._relations(ln(tokens, (8,)), ln(question, (8,))),
                               rtol=1e-5, atol=1e-5)
