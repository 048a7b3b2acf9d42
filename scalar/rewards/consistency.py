"""Consistency rewards: agreement of the model with itself, needing no annotation.

(a) describe-then-ground: describe region R, ground the description back to R';
(b) prompt-format consistency: box, point and mask prompts of one region name one category;
(c) ground-then-describe-then-ground: two groundings of one expression agree;
(d) ground-then-describe agreement: the description of where a query was grounded
contains the query's words;
(e) exclusive grounding: a query lands on an object (a region proposal), and not on one
that a more confident query naming another category already claims.
Boxes follow :mod:`scalar.rewards.functions` (``None`` for an unparseable output).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from scalar.core.boxes import aligned_iou, box_iou
from scalar.metrics.text import normalize_answer, simple_tokenize
from scalar.rewards.functions import as_boxes, iou_reward

__all__ = [
    "describe_then_ground_reward",
    "exclusive_grounding_reward",
    "ground_describe_ground_reward",
    "prompt_format_agreement",
    "prompt_format_consistency_reward",
    "query_agreement_reward",
]

FUNCTION_WORDS = frozenset(
    "a an the of is are where what which to and or in on at with from by this that it".split()
)


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


def format_agreement_reward(
    texts: Sequence[str], prompt_kinds: Sequence[str], anchors: Sequence[Mapping[str, str]]
) -> np.ndarray:
    """Per sampled category: the share of the other prompt kinds' answers it agrees with.

    ``anchors[i]``: the greedy answers of the other kinds for the same region, e.g.
    ``{"point": "cat", "mask": "dog"}``; ``texts[i]`` answered kind ``prompt_kinds[i]``.
    """
    out = np.zeros(len(texts))
    for i, (text, kind, other) in enumerate(zip(texts, prompt_kinds, anchors)):
        entry = {kind: text, **{k: v for k, v in other.items() if k != kind}}
        out[i] = prompt_format_agreement([entry])[0][kind] if len(entry) > 1 else 0.0
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


def query_agreement_reward(
    queries: Sequence[str], descriptions: Sequence[str | None], ignore=FUNCTION_WORDS
) -> np.ndarray:
    """(d) The share of a query's distinct content words that the description of its
    grounding contains; in [0, 1].

    ``queries[i]``: the expression that was grounded (e.g. ``"the red heart near the
    star"``); ``descriptions[i]``: the model's description of the box it grounded to
    (e.g. ``"a small red circle near a star"``: red, near, star of red, heart, near,
    star -> 0.75). Words are ``simple_tokenize`` tokens; ``ignore`` (articles,
    prepositions of the prompt templates) are not content. A query without content words,
    or a ``None`` description, gives 0.
    """
    if len(queries) != len(descriptions):
        raise ValueError(f"{len(queries)} queries for {len(descriptions)} descriptions")
    out = np.zeros(len(queries))
    for i, (q, d) in enumerate(zip(queries, descriptions)):
        words = set(simple_tokenize(q)) - set(ignore)
        if not words or d is None:
            continue
        out[i] = len(words & set(simple_tokenize(d))) / len(words)
    return out


def exclusive_grounding_reward(
    first_boxes: Sequence[Any],
    proposal_boxes: Sequence[Any],
    claimed_boxes: Sequence[Any],
    greedy_boxes: Sequence[Any] | None = None,
    penalty: float = 1.0,
    keep_iou: float = 0.5,
) -> np.ndarray:
    """(e) ``IoU(B, P) - penalty * max_j IoU(B, C_j)``; in [-penalty, 1].

    ``first_boxes[i]``: where query ``i`` was grounded (B; ``None`` -> 0);
    ``proposal_boxes[i]``: region proposals of its image (P, e.g. foreground components:
    the reward for landing on an object); ``claimed_boxes[i]``: the greedy groundings of
    the image's other queries that name a different category and are more confident (C;
    mutual exclusivity: two names, two objects). Empty lists contribute 0.
    ``greedy_boxes[i]`` (optional): the query's own greedy grounding G. Where G is on a
    proposal (IoU >= ``keep_iou``) that no claim covers (IoU < ``keep_iou``), P is that
    proposal: the query keeps its object and only its box is refined. Otherwise (and
    without ``greedy_boxes``) P is the proposal B fits best.
    """
    n = len(first_boxes)
    if not len(proposal_boxes) == len(claimed_boxes) == n:
        raise ValueError(
            f"{n} boxes, {len(proposal_boxes)} proposal lists, {len(claimed_boxes)} claim lists"
        )
    if greedy_boxes is not None and len(greedy_boxes) != n:
        raise ValueError(f"{n} boxes, {len(greedy_boxes)} greedy boxes")
    out = np.zeros(n)
    for i, (b, props, claims) in enumerate(zip(first_boxes, proposal_boxes, claimed_boxes)):
        if b is None:
            continue
        box = as_boxes(b)[:1]
        props, claims = as_boxes(props), as_boxes(claims)
        on = box_iou(box, props)[0] if len(props) else torch.zeros(0, dtype=torch.float64)
        taken = float(box_iou(box, claims).max()) if len(claims) else 0.0
        own = _kept_proposal(greedy_boxes[i] if greedy_boxes is not None else None, props,
                             claims, keep_iou)  # fmt: skip
        if own is not None:
            on_value = float(on[own])
        else:
            on_value = float(on.max()) if len(on) else 0.0
        out[i] = on_value - penalty * taken
    return out


def _kept_proposal(greedy: Any, props: torch.Tensor, claims: torch.Tensor, keep_iou: float):
    """Index of the proposal the greedy box sits on, if no claim covers it; else None."""
    if greedy is None or not len(props):
        return None
    g = as_boxes(greedy)[:1]
    fit = box_iou(g, props)[0]
    k = int(fit.argmax())
    if float(fit[k]) < keep_iou:
        return None
    if len(claims) and float(box_iou(props[k : k + 1], claims).max()) >= keep_iou:
        return None
    return k
