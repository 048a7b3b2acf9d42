"""AlignLoss: weighted sum of its terms, computed independently here."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scalar.core.boxes import aligned_giou
from scalar.losses import BoxLoss, InfoNCELoss, TDistContrastiveLoss
from scalar.losses.align import AlignLoss


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 5, 11, generator=g, requires_grad=True)
    labels = torch.tensor([[-100, -100, 3, 4, 5], [-100, 1, 2, -100, -100]])
    xy = torch.rand(3, 2, generator=g) * 0.5
    target = torch.cat([xy, xy + 0.3], 1)
    pred = (target + 0.05 * torch.randn(3, 4, generator=g)).requires_grad_()
    r = torch.randn(4, 8, generator=g, requires_grad=True)
    c = torch.randn(4, 8, generator=g, requires_grad=True)
    out = {"logits": logits, "box_pred": pred, "region_emb": r, "concept_emb": c}
    batch = {
        "labels": labels,
        "target_boxes": target,
        "concept_ids": torch.tensor([0, 1, 0, 2]),
        "concept_levels": torch.tensor([0, 0, 1, 1]),
    }
    return out, batch


def _lm(logits, labels):
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, 11), labels[:, 1:].reshape(-1), ignore_index=-100
    )


def _box(pred, target):
    return (
        5.0 * (pred - target).abs().sum(-1).mean() + 2.0 * (1 - aligned_giou(pred, target)).mean()
    )


def test_total_is_the_weighted_sum_of_independent_terms():
    out, batch = _inputs()
    con = TDistContrastiveLoss(nu=2.0)
    loss = AlignLoss(lm_weight=0.7, box_weight=1.5, contrastive_weight=0.2,
                     box=BoxLoss(5.0, 2.0), contrastive=con)  # fmt: skip
    terms = loss(out, batch)
    lm, box = _lm(out["logits"], batch["labels"]), _box(out["box_pred"], batch["target_boxes"])
    c = con(out["region_emb"], out["concept_emb"], batch["concept_ids"], batch["concept_levels"])[
        "loss"
    ]
    assert terms["lm"].item() == pytest.approx(lm.item(), rel=1e-6)
    assert terms["box"].item() == pytest.approx(box.item(), rel=1e-6)
    assert terms["contrastive"].item() == pytest.approx(c.item(), rel=1e-6)
    assert terms["loss"].item() == pytest.approx((0.7 * lm + 1.5 * box + 0.2 * c).item(), rel=1e-6)
    assert {"box_l1", "box_giou", "tdist", "nu"} <= set(terms)
    assert float(terms["nu"]) == 2.0
    terms["loss"].backward()
    assert all(t.grad is not None for t in (out["logits"], out["box_pred"], out["region_emb"]))


def test_absent_inputs_and_disabled_terms_are_left_out():
    out, batch = _inputs(1)
    out["box_pred"] = out["box_pred"][:0]  # no <box> trigger in this batch
    del out["region_emb"]
    loss = AlignLoss(contrastive=InfoNCELoss())
    terms = loss(out, batch)
    assert set(terms) == {"lm", "loss"}
    assert terms["loss"].item() == pytest.approx(
        _lm(out["logits"], batch["labels"]).item(), rel=1e-6
    )

    out, batch = _inputs(2)
    terms = AlignLoss(lm_weight=0.0, box_weight=1.0, contrastive=None)(out, batch)
    assert "lm" not in terms and "contrastive" not in terms
    assert terms["loss"].item() == pytest.approx(
        _box(out["box_pred"], batch["target_boxes"]).item(), rel=1e-6
    )


def test_infonce_contrastive_terms_are_reported():
    out, batch = _inputs(3)
    con = InfoNCELoss(temperature=0.1)
    terms = AlignLoss(contrastive=con, contrastive_weight=1.0)(out, batch)
    want = con(out["region_emb"], out["concept_emb"], batch["concept_ids"], batch["concept_levels"])
    assert terms["infonce"].item() == pytest.approx(want["infonce"].item(), rel=1e-6)
    assert "tdist" not in terms


def test_dense_concept_grounding_term():
    out, batch = _inputs(3)
    g = torch.Generator().manual_seed(9)
    xy = torch.rand(4, 2, generator=g) * 0.5
    batch["concept_boxes"] = torch.cat([xy, xy + 0.4], 1)
    batch["concept_ground"] = torch.tensor([True, False, True, True])
    dense = batch["concept_boxes"][[0, 2, 3]] + 0.03 * torch.randn(3, 4, generator=g)
    out["concept_box_pred"] = dense.requires_grad_()
    loss = AlignLoss(lm_weight=0.0, box_weight=0.0, dense_weight=0.5, box=BoxLoss(5.0, 2.0))
    terms = loss(out, batch)
    want = _box(dense, batch["concept_boxes"][[0, 2, 3]])  # the grounded items only
    assert terms["dense"].item() == pytest.approx(want.item(), rel=1e-6)
    assert terms["loss"].item() == pytest.approx(0.5 * want.item(), rel=1e-6)
    assert {"dense_l1", "dense_giou"} <= set(terms)
    assert "dense" not in AlignLoss(box=BoxLoss(5.0, 2.0))(out, batch)  # weight 0: left out
