"""Losses against hand-worked examples: LM, box, T-distributed and InfoNCE contrastive."""

import math

import pytest
import torch
import torch.nn.functional as F

from scalar.losses import BoxLoss, InfoNCELoss, LMLoss, TDistContrastiveLoss

# 2-D unit vectors of the hand-worked example. Squared distances |r_i - c_j|^2:
#   r1=(1,0):  c1=(1,0) -> 0, c2=(0,1) -> 2, c3=(0,-1) -> 2
#   r2=(0,1):  c1 -> 2, c2 -> 0, c3 -> 4
#   r3=(-1,0): c1 -> 4, c2 -> 2, c3 -> 2
# Cauchy kernel (nu=1, scale=1) k = 1 / (1 + d^2): 0 -> 1, 2 -> 1/3, 4 -> 1/5
#   K = [[1, 1/3, 1/3], [1/3, 1, 1/5], [1/5, 1/3, 1/3]]
R = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
C = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])


def test_tdist_hand_worked_unique_ids():
    # rows: -log(K_ii / sum_j K_ij) = log(5/3), log(23/15), log(13/5)
    # columns: log(23/15), log(5/3), log(13/5): symmetric mean is the same sum / 3
    want = (math.log(5 / 3) + math.log(23 / 15) + math.log(13 / 5)) / 3
    loss = TDistContrastiveLoss(nu=1.0, scale=1.0)
    out = loss(R, C, torch.tensor([0, 1, 2]))
    assert out["loss"].item() == pytest.approx(want, rel=1e-5)
    assert out["tdist"].item() == pytest.approx(want, rel=1e-5)
    assert out["tdist_l0"].item() == pytest.approx(want, rel=1e-5)
    assert out["nu"].item() == pytest.approx(1.0)
    # rows only
    rows = TDistContrastiveLoss(nu=1.0, scale=1.0, symmetric=False)(R, C, torch.tensor([0, 1, 2]))
    assert rows["loss"].item() == pytest.approx(want, rel=1e-5)


def test_tdist_hand_worked_multi_positive():
    # ids [0, 1, 1]: c2 and c3 are both positives of r2 and r3
    rows = [math.log(5 / 3), math.log((23 / 15) / (6 / 5)), math.log((13 / 15) / (2 / 3))]
    cols = [math.log(23 / 15), math.log((5 / 3) / (4 / 3)), math.log((13 / 15) / (8 / 15))]
    want = 0.5 * (sum(rows) / 3 + sum(cols) / 3)
    loss = TDistContrastiveLoss(nu=1.0, scale=1.0)
    got = loss(R, C, torch.tensor([0, 1, 1]))["loss"].item()
    assert got == pytest.approx(want, rel=1e-5)
    unique = loss(R, C, torch.tensor([0, 1, 2]))["loss"].item()
    assert abs(got - unique) > 0.05


def test_tdist_general_nu_and_scale_against_plain_python():
    g = torch.Generator().manual_seed(0)
    r, c = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    ids = [0, 1, 0, 2, 3]
    nu, scale = 2.5, 4.0

    def unit(v):
        n = math.sqrt(sum(x * x for x in v))
        return [math.sqrt(scale) * x / n for x in v]

    rr, cc = [unit(v) for v in r.tolist()], [unit(v) for v in c.tolist()]
    logk = [
        [-(nu + 1) / 2 * math.log(1 + sum((a - b) ** 2 for a, b in zip(ri, cj)) / nu) for cj in cc]
        for ri in rr
    ]

    def ce(mat):
        tot = 0.0
        for i, row in enumerate(mat):
            pos = sum(math.exp(v) for j, v in enumerate(row) if ids[j] == ids[i])
            tot += -math.log(pos / sum(math.exp(v) for v in row))
        return tot / len(mat)

    cols = [list(x) for x in zip(*logk)]
    want = 0.5 * (ce(logk) + ce(cols))
    out = TDistContrastiveLoss(nu=nu, scale=scale)(r, c, torch.tensor(ids))
    assert out["loss"].item() == pytest.approx(want, rel=1e-5)


def test_tdist_large_nu_approaches_gaussian_kernel():
    g = torch.Generator().manual_seed(1)
    r, c = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    scale = 3.0
    rn = F.normalize(r.double(), dim=1) * math.sqrt(scale)
    cn = F.normalize(c.double(), dim=1) * math.sqrt(scale)
    d2 = ((rn[:, None] - cn[None]) ** 2).sum(-1)
    logk = -d2 / 2  # Gaussian kernel exp(-d^2 / 2)
    target = torch.arange(6)
    want = 0.5 * (F.cross_entropy(logk, target) + F.cross_entropy(logk.T, target)).item()
    got = TDistContrastiveLoss(nu=1e6, scale=scale)(r, c, target)["loss"].item()
    assert got == pytest.approx(want, abs=1e-4)
    cauchy = TDistContrastiveLoss(nu=1.0, scale=scale)(r, c, target)["loss"].item()
    assert abs(cauchy - want) > 1e-2


def test_tdist_levels_and_weights():
    # add r4=(0,-1), c4=(0,-1); levels [0, 1, 0, 1]
    r = torch.cat([R, torch.tensor([[0.0, -1.0]])])
    c = torch.cat([C, torch.tensor([[0.0, -1.0]])])
    levels = torch.tensor([0, 1, 0, 1])
    ids = torch.tensor([0, 1, 2, 3])
    # level 0 = items {1, 3}: K = [[1, 1/3], [1/5, 1/3]]
    #   rows log(4/3), log((8/15)/(1/3)); columns log(6/5), log((2/3)/(1/3))
    l0 = 0.5 * ((math.log(4 / 3) + math.log(8 / 5)) / 2 + (math.log(6 / 5) + math.log(2)) / 2)
    # level 1 = items {2, 4}: d^2 = [[0, 4], [4, 0]], K = [[1, 1/5], [1/5, 1]]
    l1 = math.log(6 / 5)
    out = TDistContrastiveLoss(nu=1.0, scale=1.0, level_weights=[2.0, 5.0])(r, c, ids, levels)
    assert out["tdist_l0"].item() == pytest.approx(l0, rel=1e-5)
    assert out["tdist_l1"].item() == pytest.approx(l1, rel=1e-5)
    assert out["loss"].item() == pytest.approx(2 * l0 + 5 * l1, rel=1e-5)
    plain = TDistContrastiveLoss(nu=1.0, scale=1.0)(r, c, ids, levels)["loss"].item()
    assert plain == pytest.approx(l0 + l1, rel=1e-5)
    with pytest.raises(ValueError, match="level"):
        TDistContrastiveLoss(level_weights=[1.0])(r, c, ids, levels)


def test_tdist_learnable_nu_and_scale_get_gradients():
    g = torch.Generator().manual_seed(2)
    r = torch.randn(4, 8, generator=g, requires_grad=True)
    c = torch.randn(4, 8, generator=g)
    loss = TDistContrastiveLoss(nu=2.0, learnable_nu=True, learnable_scale=True)
    assert len(list(loss.parameters())) == 2
    out = loss(r, c, torch.tensor([0, 1, 2, 1]))
    out["loss"].backward()
    for p in loss.parameters():
        assert p.grad is not None and p.grad.abs() > 0
    assert r.grad.abs().sum() > 0
    assert not out["nu"].requires_grad
    assert len(list(TDistContrastiveLoss().parameters())) == 0


def test_tdist_stable_and_empty():
    r = torch.randn(3, 4) * 1e3
    out = TDistContrastiveLoss(nu=0.1, scale=100.0)(r, -r, torch.tensor([0, 1, 2]))
    assert torch.isfinite(out["loss"])
    empty = torch.zeros(0, 4, requires_grad=True)
    z = TDistContrastiveLoss()(empty, empty, torch.zeros(0, dtype=torch.long))["loss"]
    assert z.item() == 0.0
    z.backward()
    assert empty.grad is not None


def test_infonce_equals_cross_entropy_with_unique_ids():
    g = torch.Generator().manual_seed(3)
    r, c = torch.randn(5, 6, generator=g), torch.randn(5, 6, generator=g)
    t = 0.07
    logits = F.normalize(r, dim=1) @ F.normalize(c, dim=1).T / t
    target = torch.arange(5)
    want = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    out = InfoNCELoss(temperature=t)(r, c, torch.tensor([4, 3, 2, 1, 0]))
    assert out["infonce"].item() == pytest.approx(want.item(), rel=1e-5)
    one_way = InfoNCELoss(temperature=t, symmetric=False)(r, c, target)["loss"]
    assert one_way.item() == pytest.approx(F.cross_entropy(logits, target).item(), rel=1e-5)
    # a duplicated id makes the pair positives: a different (lower) row loss
    dup = InfoNCELoss(temperature=t, symmetric=False)(r, c, torch.tensor([0, 0, 2, 3, 4]))["loss"]
    assert dup.item() < one_way.item()


def test_infonce_learnable_temperature():
    r = torch.randn(4, 3)
    loss = InfoNCELoss(temperature=0.1, learnable=True)
    loss(r, r + 0.1 * torch.randn(4, 3), torch.arange(4))["loss"].backward()
    (p,) = list(loss.parameters())
    assert p.grad.abs() > 0


def test_lm_loss_on_answer_tokens_only():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 5, 7, generator=g, requires_grad=True)
    labels = torch.tensor([[-100, -100, 3, 4, -100], [-100, 1, 2, 6, 0]])
    out = LMLoss()(logits, labels)
    # positions (b, t) with labels[b, t + 1] != -100: (0,1)->3, (0,2)->4, (1,0)->1, (1,1)->2,
    # (1,2)->6, (1,3)->0
    picks = [(0, 1, 3), (0, 2, 4), (1, 0, 1), (1, 1, 2), (1, 2, 6), (1, 3, 0)]
    want = sum(-torch.log_softmax(logits[b, t], -1)[y] for b, t, y in picks) / len(picks)
    assert out["lm"].item() == pytest.approx(want.item(), rel=1e-5)
    assert out["loss"] is out["lm"]
    none = LMLoss()(logits, torch.full((2, 5), -100))["loss"]
    assert none.item() == 0.0
    none.backward()
    assert logits.grad is not None


def test_box_loss_values_and_empty():
    pred = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.2, 0.2, 0.4, 0.4]], requires_grad=True)
    tgt = torch.tensor([[0.25, 0.25, 0.75, 0.75], [0.2, 0.2, 0.4, 0.4]])
    out = BoxLoss(l1_weight=5.0, giou_weight=2.0)(pred, tgt)
    # box 1: L1 = 4 * 0.25 = 1; IoU = 1/16 / (7/16) = 1/7; hull = 9/16, union 7/16
    giou1 = 1 / 7 - (9 / 16 - 7 / 16) / (9 / 16)
    assert out["box_l1"].item() == pytest.approx(0.5, rel=1e-6)
    assert out["box_giou"].item() == pytest.approx((1 - giou1) / 2, rel=1e-5)
    assert out["loss"].item() == pytest.approx(5 * 0.5 + 2 * (1 - giou1) / 2, rel=1e-5)
    # per-box weights replace the mean: all of it on box 1 gives box 1's own terms
    weighted = BoxLoss(l1_weight=5.0, giou_weight=2.0)(pred, tgt, weight=torch.tensor([1.0, 0.0]))
    assert weighted["box_l1"].item() == pytest.approx(1.0, rel=1e-6)
    assert weighted["box_giou"].item() == pytest.approx(1 - giou1, rel=1e-5)
    out["loss"].backward()
    assert pred.grad[0].abs().sum() > 0
    empty = torch.zeros(0, 4, requires_grad=True)
    e = BoxLoss()(empty, torch.zeros(0, 4))
    assert e["loss"].item() == 0.0 and e["box_l1"].item() == 0.0
    e["loss"].backward()
    assert empty.grad is not None


def test_box_attention_mass_term_hand_worked():
    """2x2 grid, cell centres (.25,.25) (.75,.25) (.25,.75) (.75,.75) in row-major order."""
    from scalar.losses.box import inside_cells

    attn = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]])
    target = torch.tensor([[0.5, 0.0, 1.0, 1.0], [0.05, 0.55, 0.2, 0.7]])  # right column; tiny
    cells = inside_cells(target, (2, 2))
    assert cells.tolist() == [[False, True, False, True], [False, False, True, False]]
    out = BoxLoss(l1_weight=0.0, giou_weight=0.0, attn_weight=1.0)(target, target, attn, (2, 2))
    want = (-math.log(0.2 + 0.4) - math.log(0.3)) / 2
    assert out["box_attn"].item() == pytest.approx(want, abs=1e-6)
    assert out["loss"].item() == pytest.approx(want, abs=1e-6)
    assert "box_attn" not in BoxLoss()(target, target, attn, (2, 2))  # off by default
