"""One-to-one object matching between two corpora's annotations of one image.

Boxes of the other corpus are first brought to the base image's size (Visual Genome
stores its own image sizes). A pair can match when its IoU reaches ``iou`` and its names
are compatible (same synset, one synset a hypernym of the other in WordNet, or the same
normalised name); the one-to-one assignment maximising the summed IoU of such pairs is
Hungarian (``scipy.optimize.linear_sum_assignment``). An object of the other corpus left
unmatched whose best-overlapping base object (IoU >= ``iou``) has an incompatible name is
*conflicting*; the rest are *unmatched*.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from scalar.data.join.wordnet import WordNet
from scalar.data.scene import Box, Object

INFEASIBLE = 1e6


def norm_name(name: str | None) -> str:
    """``"Baseball_Bat "`` -> ``"baseball bat"``."""
    return " ".join((name or "").replace("_", " ").lower().split())


def synset_head(synset: str | None) -> str:
    """``"baseball_bat.n.01"`` -> ``"baseball bat"`` (empty when no synset)."""
    return norm_name((synset or "").split(".")[0])


def compatible(a: Object, b: Object, wordnet: WordNet | None = None) -> bool:
    """Whether ``a`` and ``b`` may be one object: same synset, related synsets (WordNet),
    or the same name (category or synset head, plural ``s`` ignored)."""
    if a.synset and b.synset:
        if a.synset == b.synset:
            return True
        if wordnet is not None and wordnet.related(a.synset, b.synset):
            return True
    names_a = {norm_name(a.category), synset_head(a.synset)} - {""}
    names_b = {norm_name(b.category), synset_head(b.synset)} - {""}
    strip = {n.removesuffix("s") for n in names_a}
    return bool(names_a & names_b) or bool(strip & {n.removesuffix("s") for n in names_b})


def scale_box(box: Box, sx: float, sy: float) -> Box:
    x1, y1, x2, y2 = box
    return (x1 * sx, y1 * sy, x2 * sx, y2 * sy)


def iou_matrix(a: list[Box], b: list[Box]) -> np.ndarray:
    """IoU of every box of ``a`` (rows) with every box of ``b`` (columns)."""
    if not a or not b:
        return np.zeros((len(a), len(b)))
    A, B = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ix1 = np.maximum(A[:, None, 0], B[None, :, 0])
    iy1 = np.maximum(A[:, None, 1], B[None, :, 1])
    ix2 = np.minimum(A[:, None, 2], B[None, :, 2])
    iy2 = np.minimum(A[:, None, 3], B[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (A[:, 2] - A[:, 0]) * (A[:, 3] - A[:, 1])
    area_b = (B[:, 2] - B[:, 0]) * (B[:, 3] - B[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


@dataclass
class Matching:
    """The result for one image: ``pairs`` are ``(base index, other index, iou)``."""

    pairs: list[tuple[int, int, float]] = field(default_factory=list)
    unmatched_base: list[int] = field(default_factory=list)
    unmatched_other: list[int] = field(default_factory=list)
    conflicting: list[int] = field(default_factory=list)  # other indices


def match_objects(
    base: list[Object],
    other: list[Object],
    iou: float = 0.5,
    scale: tuple[float, float] = (1.0, 1.0),
    wordnet: WordNet | None = None,
) -> Matching:
    """Match ``other`` onto ``base`` one-to-one (see the module docstring)."""
    other_boxes = (
        [scale_box(o.box, *scale) for o in other] if scale != (1.0, 1.0) else [o.box for o in other]
    )
    ious = iou_matrix([o.box for o in base], other_boxes)
    out = Matching()
    if ious.size == 0:
        out.unmatched_base, out.unmatched_other = list(range(len(base))), list(range(len(other)))
        return out
    over = ious >= iou
    ok = np.zeros_like(over)
    for i, j in zip(*np.nonzero(over), strict=True):
        ok[i, j] = compatible(base[i], other[j], wordnet)
    taken_b, taken_o = set(), set()
    if ok.any():
        cost = np.where(ok, -ious, INFEASIBLE)
        rows, cols = linear_sum_assignment(cost)
        for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
            if ok[i, j]:
                out.pairs.append((i, j, float(ious[i, j])))
                taken_b.add(i)
                taken_o.add(j)
    out.unmatched_base = [i for i in range(len(base)) if i not in taken_b]
    for j in range(len(other)):
        if j in taken_o:
            continue
        best = int(np.argmax(ious[:, j]))
        if over[best, j] and not ok[best, j]:
            out.conflicting.append(j)
        else:
            out.unmatched_other.append(j)
    return out
