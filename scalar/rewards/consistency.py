"""Consistency rewards: agreement of the model with itself, needing no annotation.

(a) describe-then-ground: describe region R, ground the description back to R';
(b) prompt-format consistency: box, point and mask prompts of one region name one category;
(c) ground-then-describe-then-ground: two groundings of one expression agree.
Boxes follow :mod:`scalar.rewards.functions` (``None`` for an unparseable output).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from scalar.metrics.text import normalize_answer
from scalar.model.boxes import aligned_iou, box_iou
from scalar.rewards.functions import as_boxes, iou_reward

__all__ = [
    "describe_then_ground_reward",
    "ground_describe_ground_reward",
    "prompt_format_agreement",
    "prompt_format_consistency_reward",
]


def describe_then_ground_reward(
    region_boxes: Any,
    grounded_boxes: Sequence[Any],
    other_boxes: Sequence[Any] | None = None,
    penalty: float = 0.5,
) -> np.ndarray:
    """(a) IoU(R, R'), less where the description grounds to another object; in [0, 1].

    ``r = max(0, IoU(R, R') - penalty * max(0, max_k IoU(R', O_k) - IoU(R, R')))``:
    the reward drops by ``penalty`` times how much better R' fits some other object
    ``O_k`` (other objects or proposals of the image; R itself may be among them, it
    never penalises) than R. ``None`` R' -> 0. ``other_boxes[i]`` may be ``None``/empty.
    """
    regions = as_boxes(region_boxes)
    base = iou_reward(grounded_boxes, regions)
    if other_boxes is None:
        return base
    if len(other_boxes) != len(regions):
        raise ValueError(f"{len(other_boxes)} lists of other boxes for {len(regions)} regions")
    out = base.copy()
    for i, (g, others) in enumerate(zip(grounded_boxes, other_boxes)):
        others = as_boxes(others)
        if g is None or len(others) == 0:
            continue
        best_other = float(box_iou(as_boxes(g)[:1], others).max())
        out[i] = max(0.0, base[i] - penalty * max(0.0, best_other - base[i]))
    return out


def _norm(answer: str | None) -> str | None:
    if answer is None:
        return None
    a = normalize_answer(answer)
    return a or None  # an empty answer agrees with nothing


def _check(entry: Mapping[str, str | None], i: int) -> list[str | None]:
    if len(entry) < 2:
        raise ValueError(f"region {i}: need answers for >= 2 prompt kinds, got {list(entry)}")
    return [_norm(v) for v in entry.values()]


def prompt_format_consistency_reward(
    categories_by_kind: Sequence[Mapping[str, str | None]],
) -> np.ndarray:
    """(b) Per region, the share of prompt-kind pairs whose categories agree; in [0, 1].

    ``categories_by_kind[i]``: e.g. ``{"box": "cat", "point": "cat", "mask": "dog"}``;
    answers are compared after ``normalize_answer``; ``None`` or empty agrees with
    nothing. Three kinds: all agree 1, two of three 1/3, all differ 0.
    """
    out = np.zeros(len(categories_by_kind))
    for i, entry in enumerate(categories_by_kind):
        ans = _check(entry, i)
        pairs = [(a, b) for j, a in enumerate(ans) for b in ans[j + 1 :]]
        out[i] = sum(a is not None and a == b for a, b in pairs) / len(pairs)
    return out


def prompt_format_agreement(
    categories_by_kind: Sequence[Mapping[str, str | None]],
) -> list[dict[str, float]]:
    """Per region and prompt kind, the share of the other kinds giving the same category.

    A per-completion version of (b): ``{"box": "cat", "point": "cat", "mask": "dog"}``
    gives ``{"box": 0.5, "point": 0.5, "mask": 0.0}``.
    """
    out = []
    for i, entry in enumerate(categories_by_kind):
        ans = _check(entry, i)
        out.append(
            {
                k: sum(a is not None and a == b for j, b in enumerate(ans) if j != n)
                / (len(ans) - 1)
                for n, (k, a) in enumerate(zip(entry, ans))
            }
        )
    return out


def ground_describe_ground_reward(
    first_boxes: Sequence[Any], second_boxes: Sequence[Any]
) -> np.ndarray:
    """(c) IoU of the two groundings of one expression (ground, describe, ground again).

    ``first_boxes[i]``: the box the expression grounded to; ``second_boxes[i]``: the box
    the model's description of that box grounded to. Range [0, 1]; ``None`` either -> 0.
    """
    if len(first_boxes) != len(second_boxes):
        raise ValueError(f"{len(first_boxes)} first boxes for {len(second_boxes)} second boxes")
    out = np.zeros(len(first_boxes))
    ok = [
        i
        for i, (a, b) in enumerate(zip(first_boxes, second_boxes))
        if a is not None and b is not None
    ]
    if ok:
        a = torch.cat([as_boxes(first_boxes[i])[:1] for i in ok])
        b = torch.cat([as_boxes(second_boxes[i])[:1] for i in ok])
        out[ok] = aligned_iou(a, b).numpy()
    return out
