"""Reward functions for the RL stage: pure and batched, one value per completion.

Each takes a batch of completions (or what was parsed from them) plus its context and
returns ``np.ndarray [B]`` of float64. An entry that could not be parsed (``None``) gets
the function's floor, 0 unless said otherwise. Boxes are ``(x1, y1, x2, y2)`` in one frame
shared by prediction and reference (the [0, 1] frame of ``parse_box_text``, or pixels);
a batch of boxes may be a list of 4-sequences, an array or a tensor ``[B, 4]``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from scalar.core.boxes import aligned_iou, box_iou, parse_box_text
from scalar.metrics.text import normalize_answer, simple_tokenize

__all__ = [
    "as_boxes",
    "cider_reward",
    "count_words",
    "counting_reward",
    "exhaustiveness_reward",
    "first_box",
    "greedy_match",
    "iou_reward",
    "length_reward",
    "localization_reward",
    "parse_count",
    "semantic_reward",
]

Box = Sequence[float] | np.ndarray | torch.Tensor


# ---------------------------------------------------------------------------- parsing
def as_boxes(boxes: Any) -> torch.Tensor:
    """A batch of boxes as a float64 ``[N, 4]`` tensor (``[0, 4]`` when empty)."""
    if boxes is None:
        return torch.zeros(0, 4, dtype=torch.float64)
    if isinstance(boxes, torch.Tensor):
        t = boxes.detach().to("cpu", torch.float64)
    else:
        t = torch.as_tensor(np.asarray(boxes, dtype=np.float64))
    if t.numel() == 0:
        return t.reshape(0, 4)
    if t.dim() == 1:
        t = t[None]
    if t.dim() != 2 or t.shape[1] != 4:
        raise ValueError(f"boxes must have shape [N, 4], got {tuple(t.shape)}")
    return t


def first_box(texts: Sequence[str]) -> list[tuple[float, ...] | None]:
    """First ``[x1,y1,x2,y2]`` of each text in [0, 1], ``None`` where there is none."""
    out = []
    for t in texts:
        boxes = parse_box_text(t)
        out.append(boxes[0] if boxes else None)
    return out


_COORDS = re.compile(r"\[[^\]]*\]")
_SPECIAL = re.compile(r"<[^<>\s]+>")
_NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen "
        "fourteen fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}


def count_words(text: str) -> int:
    """Words of ``text`` without coordinate groups ``[...]`` or special tokens ``<...>``."""
    return len(simple_tokenize(_SPECIAL.sub(" ", _COORDS.sub(" ", text))))


def parse_count(texts: Sequence[str]) -> list[int | None]:
    """First count in each text: digits (``3``) or a number word (``three``, up to twenty).

    Coordinates in ``[...]`` are ignored; ``None`` where no count is found.
    """
    out: list[int | None] = []
    for t in texts:
        found = None
        for tok in simple_tokenize(_COORDS.sub(" ", t)):
            if tok.isdigit():
                found = int(tok)
            elif tok in _NUMBER_WORDS:
                found = _NUMBER_WORDS[tok]
            if found is not None:
                break
        out.append(found)
    return out


# ---------------------------------------------------------------------------- rewards
def iou_reward(pred_boxes: Sequence[Box | None], gt_boxes: Any) -> np.ndarray:
    """IoU of each predicted box with its ground truth; range [0, 1], ``None`` -> 0."""
    gt = as_boxes(gt_boxes)
    if len(pred_boxes) != len(gt):
        raise ValueError(f"{len(pred_boxes)} predictions for {len(gt)} ground-truth boxes")
    out = np.zeros(len(gt))
    ok = [i for i, b in enumerate(pred_boxes) if b is not None]
    if ok:
        pred = torch.cat([as_boxes(pred_boxes[i])[:1] for i in ok])
        out[ok] = aligned_iou(pred, gt[ok]).numpy()
    return out


def cider_reward(candidates: Sequence[str], refs: Sequence, scorer) -> np.ndarray:
    """CIDEr-D of each candidate against its references; range [0, 10].

    ``scorer``: a :class:`scalar.rewards.cider.CiderD` (document frequencies of the
    training references); ``refs[i]``: sentences, or an index into its corpus.
    """
    return np.asarray(scorer.score(list(candidates), refs), dtype=np.float64)


def length_reward(
    texts: Sequence[str], target_len: float | None = None, tolerance: float = 0.0
) -> np.ndarray:
    """Length in words (``count_words``) scored against a target.

    With ``target_len = T``: ``max(0, 1 - max(0, |n - T| - tolerance) / T)`` in [0, 1]:
    1 within ``tolerance`` words of ``T``, falling linearly to 0 at ``T + tolerance``
    words away. With ``target_len=None``: the raw word count ``n`` (unbounded; give it a
    small weight), which rewards longer, more detailed outputs.
    """
    n = np.array([count_words(t) for t in texts], dtype=np.float64)
    if target_len is None:
        return n
    if target_len <= 0 or tolerance < 0:
        raise ValueError(f"need target_len > 0 and tolerance >= 0, got {target_len}, {tolerance}")
    excess = np.maximum(np.abs(n - target_len) - tolerance, 0.0)
    return np.clip(1.0 - excess / target_len, 0.0, 1.0)


def greedy_match(iou: torch.Tensor, thresh: float) -> list[tuple[int, int]]:
    """One-to-one ``(pred, gt)`` pairs: highest IoU first, each >= ``thresh``.

    Greedy, like COCO's matching (not the maximum matching a Hungarian solver would find).
    """
    pairs = []
    if iou.numel() == 0:
        return pairs
    flat = iou.flatten()
    order = torch.argsort(flat, descending=True, stable=True).tolist()
    used_p, used_g = set(), set()
    n_gt = iou.shape[1]
    for k in order:
        if flat[k] < thresh:
            break
        p, g = divmod(k, n_gt)
        if p not in used_p and g not in used_g:
            used_p.add(p)
            used_g.add(g)
            pairs.append((p, g))
    return pairs


def _label_mask(pred_labels, gt_labels, n_pred: int, n_gt: int) -> torch.Tensor:
    if len(pred_labels) != n_pred or len(gt_labels) != n_gt:
        raise ValueError("labels must match their boxes one to one")
    pl = [normalize_answer(x) if x is not None else None for x in pred_labels]
    gl = [normalize_answer(x) for x in gt_labels]
    return torch.tensor([[p is not None and p == g for g in gl] for p in pl], dtype=torch.bool)


def exhaustiveness_reward(
    pred_boxes_list: Sequence[Any],
    gt_boxes_list: Sequence[Any],
    iou_thresh: float = 0.5,
    pred_labels_list: Sequence[Sequence[str | None]] | None = None,
    gt_labels_list: Sequence[Sequence[str]] | None = None,
) -> np.ndarray:
    """Share of reference objects found (recall of a scene description); range [0, 1].

    Per sample, predicted and reference boxes are matched one to one by ``greedy_match``
    at ``iou_thresh``; with labels, only pairs whose normalised labels are equal may
    match. A sample without reference objects scores 1 (nothing was missed).
    """
    if len(pred_boxes_list) != len(gt_boxes_list):
        raise ValueError(f"{len(pred_boxes_list)} predictions for {len(gt_boxes_list)} samples")
    out = np.ones(len(gt_boxes_list))
    for i, (pred, gt) in enumerate(zip(pred_boxes_list, gt_boxes_list)):
        pred, gt = as_boxes(pred), as_boxes(gt)
        if len(gt) == 0:
            continue
        iou = box_iou(pred, gt)
        if pred_labels_list is not None and gt_labels_list is not None:
            mask = _label_mask(pred_labels_list[i], gt_labels_list[i], len(pred), len(gt))
            iou = torch.where(mask, iou, torch.zeros_like(iou))
        out[i] = len(greedy_match(iou, iou_thresh)) / len(gt)
    return out


def counting_reward(
    pred_counts: Sequence[int | None], gt_counts: Sequence[int], kind: str = "inverse"
) -> np.ndarray:
    """Reward of a count with absolute error ``e``; range [0, 1], 1 when exact, ``None`` -> 0.

    ``kind="inverse"``: ``1 / (1 + e)``; ``kind="exp"``: ``exp(-e)`` (harsher).
    """
    if len(pred_counts) != len(gt_counts):
        raise ValueError(f"{len(pred_counts)} counts for {len(gt_counts)} ground truths")
    if kind not in ("inverse", "exp"):
        raise ValueError(f"kind must be 'inverse' or 'exp', got {kind!r}")
    out = np.zeros(len(gt_counts))
    for i, (p, g) in enumerate(zip(pred_counts, gt_counts)):
        if p is not None:
            e = abs(float(p) - float(g))
            out[i] = 1.0 / (1.0 + e) if kind == "inverse" else math.exp(-e)
    return out


def _rows(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be [B, D], got shape {x.shape}")
    return x


def semantic_reward(
    region_embeddings: Any, text_embeddings: Any, low: float = -1.0, high: float = 1.0
) -> np.ndarray:
    """Cosine similarity of each region-crop embedding and its text embedding, in [0, 1].

    ``clip((cos - low) / (high - low), 0, 1)``; the defaults map [-1, 1] to [0, 1]. CLIP
    similarities of matching pairs sit around 0.2-0.35, so e.g. ``low=0.1, high=0.4``
    spreads them. Rows with a zero embedding score 0. Embeddings come from the caller
    (a local open_clip model or the model's own towers), ``[B, D]`` each.
    """
    r, t = _rows(region_embeddings), _rows(text_embeddings)
    if r.shape != t.shape:
        raise ValueError(f"region {r.shape} and text {t.shape} embeddings differ in shape")
    if high <= low:
        raise ValueError(f"need high > low, got {low}, {high}")
    norms = np.linalg.norm(r, axis=1) * np.linalg.norm(t, axis=1)
    cos = np.divide((r * t).sum(1), norms, out=np.zeros(len(r)), where=norms > 0)
    return np.where(norms > 0, np.clip((cos - low) / (high - low), 0.0, 1.0), 0.0)


def localization_reward(
    pred_boxes_list: Sequence[Any], ref_boxes_list: Sequence[Any], aligned: bool = False
) -> np.ndarray:
    """How well the boxes of the objects a description mentions land; range [0, 1].

    Spatial-preference style: per sample, the boxes the model gave for the objects it
    mentions are compared with reference boxes (ground truth, or a detector's proposals
    for the same phrases). ``aligned=False``: mean over predicted boxes of the best IoU
    with any reference box; ``aligned=True``: ``pred[k]`` belongs to ``ref[k]``, mean of
    their IoUs. A sample with no predicted box, or no reference box, scores 0.
    """
    if len(pred_boxes_list) != len(ref_boxes_list):
        raise ValueError(f"{len(pred_boxes_list)} predictions for {len(ref_boxes_list)} samples")
    out = np.zeros(len(pred_boxes_list))
    for i, (pred, ref) in enumerate(zip(pred_boxes_list, ref_boxes_list)):
        pred, ref = as_boxes(pred), as_boxes(ref)
        if len(pred) == 0 or len(ref) == 0:
            continue
        if aligned:
            if len(pred) != len(ref):
                raise ValueError(f"sample {i}: {len(pred)} boxes for {len(ref)} references")
            out[i] = float(aligned_iou(pred, ref).mean())
        else:
            out[i] = float(box_iou(pred, ref).max(dim=1).values.mean())
    return out
