"""The objectness term: per-patch targets from the annotated boxes, a hand-worked example."""

import math

import torch

from scalar.losses.align import AlignLoss, objectness_targets
from scalar.losses.box import cell_box_targets


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


def test_cell_box_targets_take_the_smallest_object_on_each_cell():
    # image 0 on a 2x2 grid: a big box over everything and a small one over the top-left
    # cell centre (0.25, 0.25); image 1: one box over the right column
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.1, 0.1, 0.4, 0.4], [0.6, 0.0, 1.0, 1.0]])
    targets, assigned = cell_box_targets(boxes, torch.tensor([0, 0, 1]), 3, (2, 2))
    assert assigned.tolist() == [[True] * 4, [False, True, False, True], [False] * 4]
    assert targets[0].tolist() == [boxes[1].tolist()] + [boxes[0].tolist()] * 3
    assert targets[1, 1].tolist() == boxes[2].tolist() == targets[1, 3].tolist()


def test_cell_box_term_is_the_box_loss_over_assigned_cells_of_known_images():
    cells = torch.tensor(
        [[[0.0, 0.0, 0.5, 1.0]] * 4, [[0.7, 0.7, 0.9, 0.9]] * 4, [[0.0, 0.0, 1.0, 1.0]] * 4]
    )
    out = {"cell_boxes": cells, "grid_hw": (2, 2)}
    terms = AlignLoss(lm_weight=0, box_weight=0, cell_box_weight=1.0)(out, _batch())
    # image 0's box [0, 0, 0.5, 1] is exact on its cells 0 and 2; image 1's tiny box owns its
    # centre cell 3, predicted [0.7, 0.7, 0.9, 0.9] for [0.8, 0.8, 0.85, 0.85]:
    # L1 0.1 + 0.1 + 0.05 + 0.05. Each image weighs the same: (0 + 0.3) / 2
    assert math.isclose(terms["cells_l1"].item(), 0.3 / 2, rel_tol=1e-5)
    inter, union = 0.05 * 0.05, 0.2 * 0.2  # the target lies inside the prediction
    giou = inter / union  # the enclosing box is the prediction itself
    assert math.isclose(terms["cells_giou"].item(), (1 - giou) / 2, rel_tol=1e-5)
    want = 5 * terms["cells_l1"] + 2 * terms["cells_giou"]
    assert math.isclose(terms["loss"].item(), want, rel_tol=1e-5)
    assert "cells" not in AlignLoss(lm_weight=0, box_weight=0)(out, _batch())
