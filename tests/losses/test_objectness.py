"""The objectness term: per-patch targets from the annotated boxes, a hand-worked example."""

import math

import torch

from scalar.losses.align import AlignLoss, objectness_targets


def _batch():
    # two images (rows 0, 1 of image 0; row 2 of image 1; row 3 of an unlabeled image 2)
    return {
        "image_index": torch.tensor([0, 0, 1, 2]),
        # image 0: one box over the left half; image 1: a tiny box no cell centre falls in
        "object_boxes": torch.tensor(
            [[0.0, 0.0, 0.5, 1.0], [0.0, 0.0, 0.5, 1.0], [0.80, 0.80, 0.85, 0.85]]
        ),
        "object_batch": torch.tensor([0, 1, 2]),  # rows 0 and 1 each hold image 0's box
        "scene_known": torch.tensor([True, True, True, False]),
    }


def test_targets_on_a_2x2_grid():
    # cell centres of a 2x2 grid: (0.25, 0.25) (0.75, 0.25) / (0.25, 0.75) (0.75, 0.75)
    targets, known = objectness_targets(_batch(), 3, (2, 2))
    assert targets.tolist() == [[1, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]]  # duplicates once
    assert known.tolist() == [True, True, False]


def test_loss_is_the_bce_over_known_images_only():
    logits = torch.tensor([[2.0, -1.0, 0.0, 1.0], [0.5, 0.5, 0.5, 0.5], [9.0, 9.0, 9.0, 9.0]])
    out = {"objectness_logits": logits, "grid_hw": (2, 2)}
    terms = AlignLoss(lm_weight=0, box_weight=0, objectness_weight=2.0)(out, _batch())

    def bce(x, y):  # -[y log s(x) + (1 - y) log(1 - s(x))]
        s = 1 / (1 + math.exp(-x))
        return -(y * math.log(s) + (1 - y) * math.log(1 - s))

    want = [bce(x, y) for x, y in zip([2.0, -1.0, 0.0, 1.0], [1, 0, 1, 0])]
    want += [bce(0.5, y) for y in [0, 0, 0, 1]]
    assert math.isclose(terms["objectness"].item(), sum(want) / 8, rel_tol=1e-6)
    assert math.isclose(terms["loss"].item(), 2 * sum(want) / 8, rel_tol=1e-6)


def test_no_term_without_known_images_or_weight():
    batch = {**_batch(), "scene_known": torch.tensor([False] * 4)}
    out = {"objectness_logits": torch.zeros(3, 4), "grid_hw": (2, 2)}
    assert "objectness" not in AlignLoss(lm_weight=0, box_weight=0, objectness_weight=1)(out, batch)
    assert "objectness" not in AlignLoss(lm_weight=0, box_weight=0)(out, _batch())
