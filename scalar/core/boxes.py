"""Box codecs: operations on ``xyxy`` tensors, pixel <-> [0, 1] coordinates, and the
textual ``[x1,y1,x2,y2]`` format.

Tensor functions take boxes as ``[..., 4]`` float tensors ``(x1, y1, x2, y2)``. Pairwise
functions return ``[N, M]``; the ``aligned`` ones compare row ``i`` with row ``i``. The
data side works on one pixel box at a time: ``box01`` (what the collate puts in a batch)
and ``pixel_box_text`` (what a textual target says) are relative to the original image.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor

from scalar.core.tokens import COORD_BINS

_EPS = 1e-7
_MAX_INT = COORD_BINS - 1


def box_area(boxes: Tensor) -> Tensor:
    """Area of each box (zero for degenerate boxes)."""
    w = (boxes[..., 2] - boxes[..., 0]).clamp(min=0)
    h = (boxes[..., 3] - boxes[..., 1]).clamp(min=0)
    return w * h


def _inter_union(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Intersection and union of broadcastable box tensors ``a`` and ``b``."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a) + box_area(b) - inter
    return inter, union


def _enclosing_area(a: Tensor, b: Tensor) -> Tensor:
    lt = torch.minimum(a[..., :2], b[..., :2])
    rb = torch.maximum(a[..., 2:], b[..., 2:])
    wh = (rb - lt).clamp(min=0)
    return wh[..., 0] * wh[..., 1]


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise IoU: ``a [N, 4]``, ``b [M, 4]`` -> ``[N, M]``."""
    inter, union = _inter_union(a[:, None, :], b[None, :, :])
    return inter / union.clamp(min=_EPS)


def generalized_box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise generalised IoU: ``a [N, 4]``, ``b [M, 4]`` -> ``[N, M]`` in [-1, 1]."""
    a_, b_ = a[:, None, :], b[None, :, :]
    inter, union = _inter_union(a_, b_)
    hull = _enclosing_area(a_, b_)
    iou = inter / union.clamp(min=_EPS)
    return iou - (hull - union) / hull.clamp(min=_EPS)


def aligned_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of row ``i`` of ``a`` with row ``i`` of ``b``: ``[N, 4]`` x ``[N, 4]`` -> ``[N]``."""
    inter, union = _inter_union(a, b)
    return inter / union.clamp(min=_EPS)


def aligned_giou(a: Tensor, b: Tensor) -> Tensor:
    """Generalised IoU of aligned rows: ``[N, 4]`` x ``[N, 4]`` -> ``[N]``."""
    inter, union = _inter_union(a, b)
    hull = _enclosing_area(a, b)
    return inter / union.clamp(min=_EPS) - (hull - union) / hull.clamp(min=_EPS)


def cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dim=-1)


def _scale(sizes: Tensor, like: Tensor) -> Tensor:
    """``sizes [N, 2]`` (width, height) or ``[2]`` -> ``[N, 4]`` multipliers ``(w, h, w, h)``."""
    sizes = torch.as_tensor(sizes, dtype=like.dtype, device=like.device)
    return torch.cat([sizes, sizes], dim=-1)


def normalize_boxes(boxes_px: Tensor, sizes: Tensor) -> Tensor:
    """Pixel boxes -> [0, 1], ``sizes`` is ``(width, height)`` per box (``[N, 2]``) or shared."""
    return boxes_px / _scale(sizes, boxes_px)


def denormalize_boxes(boxes01: Tensor, sizes: Tensor) -> Tensor:
    """[0, 1] boxes -> pixels, ``sizes`` is ``(width, height)`` per box (``[N, 2]``) or shared."""
    return boxes01 * _scale(sizes, boxes01)


def clamp01(boxes: Tensor) -> Tensor:
    return boxes.clamp(0.0, 1.0)


def box01(box, width: float, height: float) -> list[float]:
    """One pixel box ``(x1, y1, x2, y2)`` -> [0, 1] coordinates of a ``width x height`` image."""
    return [box[0] / width, box[1] / height, box[2] / width, box[3] / height]


def _to_int(v: float) -> int:
    return int(min(max(round(float(v) * _MAX_INT), 0), _MAX_INT))


def boxes_to_text(box01) -> str:
    """``(x1, y1, x2, y2)`` in [0, 1] -> ``"[x1,y1,x2,y2]"`` with integers in [0, 999].

    A 2-element input (a point) gives ``"[x,y]"``.
    """
    vals = box01.tolist() if isinstance(box01, Tensor) else list(box01)
    if len(vals) not in (2, 4):
        raise ValueError(f"boxes_to_text expects 2 or 4 values, got {len(vals)}")
    return "[" + ",".join(str(_to_int(v)) for v in vals) + "]"


def pixel_box_text(box, width: float, height: float) -> str:
    """One pixel box -> ``"[x1,y1,x2,y2]"``: coordinates / image size, ``round(v * 999)``."""
    return boxes_to_text(box01(box, float(width), float(height)))


_NUM = r"\s*(-?\d+(?:\.\d+)?)\s*"
_BOX_RE = re.compile(r"\[" + ",".join([_NUM] * 4) + r"\]")
_POINT_RE = re.compile(r"\[" + ",".join([_NUM] * 2) + r"\]")


def parse_box_text(text: str, points: bool = False) -> list[tuple[float, float, float, float]]:
    """All ``[x1,y1,x2,y2]`` boxes in ``text`` as [0, 1] tuples, in order of appearance.

    Tolerates spaces and decimals; values are clipped to [0, 999]; x1 > x2 (or y1 > y2)
    is reordered. With ``points=True``, ``[x,y]`` groups are also read as ``(x, y, x, y)``.
    Unparseable text gives ``[]``.
    """
    if not isinstance(text, str):
        return []
    found: list[tuple[int, tuple[float, ...]]] = []
    for m in _BOX_RE.finditer(text):
        found.append((m.start(), tuple(float(g) for g in m.groups())))
    if points:
        for m in _POINT_RE.finditer(text):
            x, y = (float(g) for g in m.groups())
            found.append((m.start(), (x, y, x, y)))
    found.sort(key=lambda t: t[0])
    out = []
    for _, vals in found:
        x1, y1, x2, y2 = (min(max(v, 0.0), _MAX_INT) / _MAX_INT for v in vals)
        out.append((min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)))
    return out
