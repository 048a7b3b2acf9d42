"""Geometric relations between two boxes ``(x1, y1, x2, y2)`` (image y grows downwards).

Definitions (``c`` is a box centre, ``S`` the longer image side):

- ``a left of b``: ``c_x(a) < x1(b)`` and ``x2(a) < c_x(b)`` -- a's centre lies left of
  b's left edge and b's centre lies right of a's right edge. Vertical position is ignored.
- ``a right of b``: ``b left of a``.
- ``a above b``: ``c_y(a) < y1(b)`` and ``y2(a) < c_y(b)``; ``a below b``: ``b above a``.
- ``a bigger than b``: ``area(a) >= BIGGER_RATIO * area(b)`` (box areas);
  ``a smaller than b``: ``b bigger than a``.
- ``a near b``: the gap between the boxes (Euclidean distance between their closest
  points, 0 when they touch or overlap) is at most ``NEAR_FRACTION * S``.
"""

from __future__ import annotations

import math

BIGGER_RATIO = 2.0
NEAR_FRACTION = 0.15
PREDICATES = ("left of", "right of", "above", "below", "bigger than", "smaller than", "near")

Box = tuple[float, float, float, float]


def _cx(b: Box) -> float:
    return (b[0] + b[2]) / 2


def _cy(b: Box) -> float:
    return (b[1] + b[3]) / 2


def _area(b: Box) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def left_of(a: Box, b: Box) -> bool:
    return _cx(a) < b[0] and a[2] < _cx(b)


def above(a: Box, b: Box) -> bool:
    return _cy(a) < b[1] and a[3] < _cy(b)


def bigger_than(a: Box, b: Box) -> bool:
    return _area(a) >= BIGGER_RATIO * _area(b)


def box_gap(a: Box, b: Box) -> float:
    """Distance between the closest points of two boxes (0 when they touch or overlap)."""
    dx = max(0.0, b[0] - a[2], a[0] - b[2])
    dy = max(0.0, b[1] - a[3], a[1] - b[3])
    return math.hypot(dx, dy)


def near(a: Box, b: Box, image_size: tuple[int, int]) -> bool:
    return box_gap(a, b) <= NEAR_FRACTION * max(image_size)


def relation_holds(predicate: str, a: Box, b: Box, image_size: tuple[int, int]) -> bool:
    """Whether ``a <predicate> b`` holds; ``image_size`` is ``(width, height)``."""
    if predicate == "left of":
        return left_of(a, b)
    if predicate == "right of":
        return left_of(b, a)
    if predicate == "above":
        return above(a, b)
    if predicate == "below":
        return above(b, a)
    if predicate == "bigger than":
        return bigger_than(a, b)
    if predicate == "smaller than":
        return bigger_than(b, a)
    if predicate == "near":
        return near(a, b, image_size)
    raise ValueError(f"unknown predicate {predicate!r}; known: {list(PREDICATES)}")


def pair_relations(a: Box, b: Box, image_size: tuple[int, int]) -> list[str]:
    """All predicates ``p`` (in ``PREDICATES`` order) with ``a p b``."""
    return [p for p in PREDICATES if relation_holds(p, a, b, image_size)]


Table = list[list[tuple[str, ...]]]


def relation_table(boxes: list[Box], image_size: tuple[int, int]) -> Table:
    """``table[i][j]``: the predicates ``p`` (``PREDICATES`` order) with ``boxes[i] p boxes[j]``;
    ``()`` on the diagonal. Same arithmetic as ``relation_holds``, once per scene."""
    cx, cy, area = [_cx(b) for b in boxes], [_cy(b) for b in boxes], [_area(b) for b in boxes]
    limit = NEAR_FRACTION * max(image_size)
    table: Table = []
    for i, a in enumerate(boxes):
        row: list[tuple[str, ...]] = []
        for j, b in enumerate(boxes):
            if i == j:
                row.append(())
                continue
            found = []
            if cx[i] < b[0] and a[2] < cx[j]:
                found.append("left of")
            if cx[j] < a[0] and b[2] < cx[i]:
                found.append("right of")
            if cy[i] < b[1] and a[3] < cy[j]:
                found.append("above")
            if cy[j] < a[1] and b[3] < cy[i]:
                found.append("below")
            if area[i] >= BIGGER_RATIO * area[j]:
                found.append("bigger than")
            if area[j] >= BIGGER_RATIO * area[i]:
                found.append("smaller than")
            if box_gap(a, b) <= limit:
                found.append("near")
            row.append(tuple(found))
        table.append(row)
    return table
