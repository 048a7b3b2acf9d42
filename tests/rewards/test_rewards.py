"""Reward functions on hand-worked examples and independent references (torchvision)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou as tv_box_iou

from scalar.rewards import (
    CiderD,
    cider_reward,
    count_words,
    counting_reward,
    describe_then_ground_reward,
    entropy_regulariser,
    exclusive_grounding_reward,
    exhaustiveness_reward,
    first_box,
    format_agreement_reward,
    ground_describe_ground_reward,
    iou_reward,
    length_reward,
    localization_reward,
    parse_count,
    prompt_format_agreement,
    prompt_format_consistency_reward,
    query_agreement_reward,
    semantic_reward,
    varentropy_entropy_penalty,
)

LN2 = math.log(2)


def test_iou_reward_hand_worked_and_none():
    pred = [(0, 0, 2, 2), None, (1, 1, 3, 3)]
    gt = [(0, 0, 2, 2), (0, 0, 1, 1), (0, 0, 2, 2)]
    # third: intersection 1, union 4 + 4 - 1 = 7
    np.testing.assert_allclose(iou_reward(pred, gt), [1.0, 0.0, 1 / 7])


def test_iou_reward_matches_torchvision():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(20, 2, generator=g)
    b = torch.rand(20, 2, generator=g)
    pred = torch.cat([a, a + torch.rand(20, 2, generator=g)], 1)
    gt = torch.cat([b, b + torch.rand(20, 2, generator=g)], 1)
    expect = tv_box_iou(pred.double(), gt.double()).diagonal().numpy()
    np.testing.assert_allclose(iou_reward(list(pred), gt), expect, atol=1e-12)


def test_first_box_and_parse_count():
    assert first_box(["the cat [0,0,999,999] and [1,2,3,4]", "no box"]) == [(0, 0, 1, 1), None]
    texts = ["there are three cats", "I see [1,2,3,4] 12 dogs", "no idea", "[5,5,9,9] two"]
    assert parse_count(texts) == [3, 12, None, 2]


def test_cider_reward_hand_worked():
    scorer = CiderD([["a b"], ["a c"]])
    np.testing.assert_allclose(cider_reward(["a b", "b a"], [0, 0], scorer), [5.0, 2.5])


def test_length_reward_hand_worked():
    assert count_words("a red ball [1,2,3,4] <box> left, of it.") == 6
    texts = [" ".join(["w"] * k) for k in (15, 9, 0, 25, 12)]
    # target 10, tolerance 2: excess = max(0, |n - 10| - 2); reward = 1 - excess / 10
    np.testing.assert_allclose(length_reward(texts, 10, 2), [0.7, 1.0, 0.2, 0.0, 1.0])
    np.testing.assert_allclose(length_reward(texts), [15, 9, 0, 25, 12])
    with pytest.raises(ValueError, match="target_len"):
        length_reward(texts, 0)


def test_exhaustiveness_reward_hand_worked():
    gt = [(0, 0, 1, 1), (2, 2, 3, 3), (5, 5, 6, 6)]
    pred = [(0, 0, 1, 1), (2, 2, 3, 2.9), (8, 8, 9, 9)]  # finds 2 of 3
    got = exhaustiveness_reward([pred, [], pred], [gt, gt, []])
    np.testing.assert_allclose(got, [2 / 3, 0.0, 1.0])


def test_exhaustiveness_reward_greedy_not_maximum_matching():
    # 1-D intervals (height 1): IoU(P1,G1)=0.9, IoU(P2,G1)=0.7, IoU(P1,G2)=0.6,
    # IoU(P2,G2)=3.3/9 < 0.5. Greedy pairs P1-G1 first and then has nothing left (1 of 2);
    # a maximum matching (P1-G2, P2-G1) would find both.
    p1, p2 = (0, 0, 10, 1), (2.7, 0, 9, 1)
    g1, g2 = (0, 0, 9, 1), (0, 0, 6, 1)
    np.testing.assert_allclose(exhaustiveness_reward([[p1, p2]], [[g1, g2]]), [0.5])


def test_exhaustiveness_reward_labels_must_agree():
    gt, pred = [(0, 0, 1, 1), (2, 2, 3, 3)], [(0, 0, 1, 1), (2, 2, 3, 3)]
    got = exhaustiveness_reward(
        [pred, pred], [gt, gt], pred_labels_list=[["Cat", "dog"], ["cat", None]],
        gt_labels_list=[["cat", "bird"], ["cat", "dog"]],
    )  # fmt: skip
    np.testing.assert_allclose(got, [0.5, 0.5])


def test_counting_reward_hand_worked():
    np.testing.assert_allclose(counting_reward([3, 5, None], [3, 3, 2]), [1.0, 1 / 3, 0.0])
    np.testing.assert_allclose(
        counting_reward([3, 5, None], [3, 3, 2], kind="exp"), [1.0, math.exp(-2), 0.0]
    )


def test_semantic_reward_hand_worked_and_against_torch():
    region = [[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]
    text = [[2.0, 0.0], [1.0, 0.0], [1.0, 0.0]]
    cos1 = 1 / math.sqrt(2)
    np.testing.assert_allclose(semantic_reward(region, text), [1.0, (cos1 + 1) / 2, 0.0])
    # rescaled: (cos - 0.1) / 0.3, clipped
    np.testing.assert_allclose(semantic_reward(region, text, 0.1, 0.4), [1.0, 1.0, 0.0])
    g = torch.Generator().manual_seed(1)
    r, t = torch.randn(8, 16, generator=g), torch.randn(8, 16, generator=g)
    expect = (F.cosine_similarity(r.double(), t.double()) + 1) / 2
    np.testing.assert_allclose(semantic_reward(r, t), expect.numpy(), atol=1e-12)


def test_localization_reward_hand_worked():
    pred = [(0, 0, 2, 2), (4, 4, 6, 6)]
    ref = [(0, 0, 2, 1), (4, 4, 6, 6), (10, 10, 11, 11)]
    # best IoUs 0.5 and 1.0
    got = localization_reward([pred, [], pred[:1]], [ref, ref, ref[:1]])
    np.testing.assert_allclose(got, [0.75, 0.0, 0.5])
    np.testing.assert_allclose(localization_reward([pred], [ref[:2]], aligned=True), [0.75])


def test_describe_then_ground_reward_hand_worked():
    region = [(0, 0, 2, 2)] * 5
    grounded = [(0, 0, 2, 1)] * 4 + [None]  # IoU(R, R') = 0.5
    others = [[(0, 0, 2, 1)], [(0, 0, 2, 2)], [(5, 5, 6, 6)], None, [(0, 0, 2, 1)]]
    # 1st: R' fits another object perfectly: 0.5 - 0.5 * (1 - 0.5) = 0.25;
    # 2nd: the "other" is R itself: no penalty; 3rd: no overlap; 4th: no others; 5th: None
    got = describe_then_ground_reward(region, grounded, others)
    np.testing.assert_allclose(got, [0.25, 0.5, 0.5, 0.5, 0.0])
    got = describe_then_ground_reward(region[:1], grounded[:1], others[:1], penalty=2.0)
    np.testing.assert_allclose(got, [0.0])  # clipped at 0
    np.testing.assert_allclose(describe_then_ground_reward(region[:1], grounded[:1]), [0.5])


def test_prompt_format_consistency_hand_worked():
    regions = [
        {"box": "cat", "point": "Cat.", "mask": "dog"},
        {"box": "a cat", "point": "cat", "mask": "the cat"},
        {"box": "cat", "point": "dog", "mask": "bird"},
        {"box": None, "point": None},
        {"box": "red ball", "mask": "red ball"},
    ]
    got = prompt_format_consistency_reward(regions)
    np.testing.assert_allclose(got, [1 / 3, 1.0, 0.0, 0.0, 1.0])
    per_kind = prompt_format_agreement(regions[:1])[0]
    assert per_kind == {"box": 0.5, "point": 0.5, "mask": 0.0}
    with pytest.raises(ValueError, match=">= 2 prompt kinds"):
        prompt_format_consistency_reward([{"box": "cat"}])


def test_format_agreement_reward_counts_the_other_kinds():
    anchors = [{"point": "cat", "mask": "cat"}, {"point": "cat", "mask": "dog"}, {"box": "x"}]
    out = format_agreement_reward(["a cat", "dog", "x"], ["box", "box", "point"], anchors)
    np.testing.assert_allclose(out, [1.0, 0.5, 1.0])


def test_ground_describe_ground_hand_worked():
    first = [(0, 0, 2, 2), None, (0, 0, 1, 1)]
    second = [(1, 0, 3, 2), (0, 0, 1, 1), None]
    # intersection 2, union 4 + 4 - 2 = 6
    np.testing.assert_allclose(ground_describe_ground_reward(first, second), [1 / 3, 0.0, 0.0])


def test_entropy_varentropy_hand_worked():
    p = torch.tensor([0.5, 0.25, 0.25, 0.0])
    logits = torch.stack([p.log(), torch.zeros(4)])  # [T=2, V]: skewed (with -inf), uniform
    ent, var = entropy_regulariser(
        logits[None].expand(2, -1, -1).clone(), torch.tensor([[1, 0], [0, 1]])
    )
    # skewed: H = 1.5 ln 2; surprisal ln2 (p .5) or 2 ln2 (p .5): V = 0.25 ln2^2
    np.testing.assert_allclose(ent.numpy(), [1.5 * LN2, math.log(4)], rtol=1e-6)
    np.testing.assert_allclose(var.numpy(), [0.25 * LN2**2, 0.0], atol=1e-6)
    both, _ = entropy_regulariser(logits[None])  # no mask: mean of both positions
    np.testing.assert_allclose(both.numpy(), [(1.5 * LN2 + math.log(4)) / 2], rtol=1e-6)


def test_entropy_against_categorical_and_gradients():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 11, generator=g, dtype=torch.float64)
    logits[0, 0, 3] = -math.inf
    logits.requires_grad_(True)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]])
    ent, var = entropy_regulariser(logits, mask)
    dist = torch.distributions.Categorical(logits=logits.detach())
    h = dist.entropy()
    lp = dist.logits.clamp(min=-1e30)
    v = (dist.probs * (-lp - h[..., None]) ** 2).sum(-1)
    m = mask.double()
    expect_h = (h * m).sum(1) / m.sum(1).clamp(min=1)
    expect_v = (v * m).sum(1) / m.sum(1).clamp(min=1)
    np.testing.assert_allclose(ent.detach().numpy(), expect_h.numpy(), rtol=1e-5)
    np.testing.assert_allclose(var.detach().numpy(), expect_v.numpy(), rtol=1e-5, atol=1e-7)
    assert ent[2] == 0 and var[2] == 0  # nothing generated
    loss = varentropy_entropy_penalty(logits, mask)
    assert loss.item() == pytest.approx((var - ent).mean().item())
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_query_agreement_reward_hand_worked():
    queries = [
        "the red heart near the star",  # content: red, heart, near, star
        "where is the Heart?",  # content: heart
        "the top circle",
        "the of a",  # no content words
        "the blue square",
    ]
    descriptions = [
        "a small red circle near a star",  # red, near, star -> 3/4
        "a large red heart",  # heart -> 1
        "a circle above a circle",  # circle -> 1/2
        "anything",
        None,  # nothing was described
    ]
    out = query_agreement_reward(queries, descriptions)
    np.testing.assert_allclose(out, [0.75, 1.0, 0.5, 0.0, 0.0])
    with pytest.raises(ValueError, match="queries for"):
        query_agreement_reward(["a"], [])


def test_exclusive_grounding_reward_hand_worked():
    a, b = (0.0, 0.0, 0.5, 0.5), (0.5, 0.5, 1.0, 1.0)
    half = (0.0, 0.0, 0.5, 0.25)  # IoU with a: 0.5
    out = exclusive_grounding_reward(
        [a, a, half, b, None],
        [[a, b], [a, b], [a, b], [a], [a]],
        [[], [a], [b], [], []],
        penalty=1.0,
    )
    # on a, unclaimed: 1; on a, claimed by a more confident query: 1 - 1; half on a and
    # away from the claim b: 0.5; b is no proposal: 0; nothing grounded: 0
    np.testing.assert_allclose(out, [1.0, 0.0, 0.5, 0.0, 0.0])
    out = exclusive_grounding_reward([half], [[a]], [[a]], penalty=0.5)
    np.testing.assert_allclose(out, [0.25])
    with pytest.raises(ValueError, match="proposal lists"):
        exclusive_grounding_reward([a], [], [[]])


def test_exclusive_grounding_keeps_an_unclaimed_greedy_object():
    a, b, c = (0.0, 0.0, 0.5, 0.5), (0.5, 0.5, 1.0, 1.0), (0.0, 0.5, 0.5, 1.0)
    props = [[a, b, c]] * 4
    out = exclusive_grounding_reward(
        [a, b, b, (0.0, 0.0, 0.5, 0.25)],
        props,
        [[], [], [a], []],
        greedy_boxes=[a, a, a, (0.0, 0.0, 0.45, 0.5)],  # the last: IoU 0.9 with a
    )
    # 1: stays on its object a; 2: left its unclaimed object a for b -> IoU(b, a) = 0;
    # 3: its object a is claimed, so any proposal counts: b, no claim hit -> 1;
    # 4: the greedy box sits on a (IoU 0.9 >= 0.5): refined box on a, IoU 0.5
    np.testing.assert_allclose(out, [1.0, 0.0, 1.0, 0.5])
    # a greedy box on no proposal (IoU < 0.5 everywhere) leaves every proposal open
    free = exclusive_grounding_reward([b], [[a, b]], [[]], greedy_boxes=[(0.2, 0.2, 0.8, 0.8)])
    np.testing.assert_allclose(free, [1.0])
    with pytest.raises(ValueError, match="greedy boxes"):
        exclusive_grounding_reward([a], [[a]], [[]], greedy_boxes=[])
