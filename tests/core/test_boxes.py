"""Box ops against torchvision.ops and the textual box codec round trip."""

import pytest
import torch
import torchvision.ops as tvo

from scalar.core import boxes as B


def _random_boxes(n, seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * 0.8
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * 0.5 + 1e-3
    return torch.cat([xy, xy + wh], dim=1)


def test_pairwise_iou_and_giou_match_torchvision():
    a, b = _random_boxes(17, 0), _random_boxes(11, 1)
    assert torch.allclose(B.box_iou(a, b), tvo.box_iou(a, b), atol=1e-6)
    assert torch.allclose(B.generalized_box_iou(a, b), tvo.generalized_box_iou(a, b), atol=1e-6)
    assert torch.allclose(B.box_area(a), tvo.box_area(a), atol=1e-12)
    # some pairs overlap, some do not: the test covers both branches
    iou = B.box_iou(a, b)
    assert (iou > 0).any() and (iou == 0).any()


def test_aligned_iou_is_diagonal_of_pairwise():
    a, b = _random_boxes(9, 2), _random_boxes(9, 3)
    b[0] = a[0]  # identical pair
    assert torch.allclose(B.aligned_iou(a, b), tvo.box_iou(a, b).diagonal(), atol=1e-6)
    assert torch.allclose(B.aligned_giou(a, b), tvo.generalized_box_iou(a, b).diagonal(), atol=1e-6)
    assert B.aligned_iou(a, b)[0] == pytest.approx(1.0)


def test_hand_worked_iou():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0]])
    assert B.box_iou(a, b).item() == pytest.approx(1 / 7)
    # hull 9, union 7 -> giou = 1/7 - 2/9
    assert B.generalized_box_iou(a, b).item() == pytest.approx(1 / 7 - 2 / 9)


def test_format_conversions_round_trip():
    a = _random_boxes(8, 4)
    c = B.xyxy_to_cxcywh(a)
    assert torch.allclose(c[:, 0], (a[:, 0] + a[:, 2]) / 2)
    assert torch.allclose(c[:, 3], a[:, 3] - a[:, 1])
    assert torch.allclose(B.cxcywh_to_xyxy(c), a)
    assert torch.allclose(tvo.box_convert(a, "xyxy", "cxcywh"), c)


def test_normalize_denormalize_per_box_sizes():
    px = torch.tensor([[10.0, 20.0, 110.0, 70.0], [0.0, 0.0, 50.0, 50.0]])
    sizes = torch.tensor([[200, 100], [50, 100]])
    n = B.normalize_boxes(px, sizes)
    assert torch.allclose(n, torch.tensor([[0.05, 0.2, 0.55, 0.7], [0.0, 0.0, 1.0, 0.5]]))
    assert torch.allclose(B.denormalize_boxes(n, sizes), px)
    assert torch.allclose(
        B.clamp01(torch.tensor([-0.1, 0.5, 1.2, 1.0])), torch.tensor([0, 0.5, 1, 1.0])
    )


def test_text_round_trip_error_bounded():
    a = _random_boxes(50, 5).clamp(0, 1)
    text = " then ".join(B.boxes_to_text(x) for x in a)
    parsed = torch.tensor(B.parse_box_text(text), dtype=torch.float64)
    assert parsed.shape == (50, 4)
    assert (parsed - a).abs().max() <= 1 / 999 / 2 + 1e-12


def test_text_format_values():
    assert B.boxes_to_text(torch.tensor([0.0, 0.5, 1.0, 1.0])) == "[0,500,999,999]"
    assert B.boxes_to_text([0.25, 0.75]) == "[250,749]"  # round(0.75 * 999) = 749.25 -> 749
    assert B.boxes_to_text([-0.2, 0.0, 1.3, 0.1]) == "[0,0,999,100]"


def test_parse_is_tolerant():
    assert B.parse_box_text("nothing here") == []
    assert B.parse_box_text("[1,2,3]") == []
    assert B.parse_box_text(None) == []
    got = B.parse_box_text("a cat [ 999, 0 ,0, 499.5] and [1,2,3,4]")
    assert len(got) == 2
    assert got[0] == pytest.approx((0.0, 0.0, 1.0, 0.5))  # reordered corners
    assert got[1] == pytest.approx((1 / 999, 2 / 999, 3 / 999, 4 / 999))
    assert B.parse_box_text("[5000,0,10,10]")[0][2] == 1.0  # clipped
    pts = B.parse_box_text("at [999,0] and [0,0,999,999]", points=True)
    assert pts == [(1.0, 0.0, 1.0, 0.0), (0.0, 0.0, 1.0, 1.0)]
