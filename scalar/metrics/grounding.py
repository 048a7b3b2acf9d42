"""Box metrics: REC accuracy at several IoU thresholds and grounded-description P/R/F1.

REC: the first predicted box of a sample against its one true box; a sample without a
predicted box is a miss (IoU 0) and is counted as ``unparseable``. When a sample's meta
lists its image's objects (``scene_boxes``, pixel xyxy), a miss is split into its two
causes: the prediction chose another object (the object it overlaps most is not the
referent) or found the referent with a loose box (``right_object``: share of samples
whose prediction overlaps the referent more than any other object; ``right_object_miou``
and ``right_object_acc@0.5``: how well those boxes fit).

Grounded description: the output is read as mentions, each the text since the previous
box followed by a box (``<box>``/``<point>`` triggers or ``[x1,y1,x2,y2]`` / ``[x,y]``
integers, in the order ``generate`` returns boxes). A mention matches a true object when
IoU >= 0.5 and the object's category name appears, as whole words, in the mention's
text. Matching is one-to-one and greedy: every (mention, object) pair that qualifies is
sorted by IoU (highest first; ties by mention, then object order) and taken when
neither side is taken yet. Precision = matches / mentions, recall = matches / objects,
both summed over the split (micro average); F1 = 2PR / (P + R).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from scalar.core.boxes import aligned_iou, box_iou
from scalar.metrics.keyed import KeyedRecordMetric, grouped, groups_of, metas_or_none
from scalar.metrics.text import normalize_answer

THRESHOLDS = (0.5, 0.75, 0.9)
_NUM = r"\s*-?\d+(?:\.\d+)?\s*"
MARKER = re.compile(
    r"<box>|<point>|\[" + ",".join([_NUM] * 4) + r"\]|\[" + _NUM + "," + _NUM + r"\]"
)
_JOINERS = {"and", "with", "then"}


class RecBoxMetrics(KeyedRecordMetric):
    """Acc@t for each threshold, mean IoU, counts; overall and per group.

    ``update(pred, target, metas=None, keys=None)``: aligned ``[N, 4]`` xyxy boxes in one
    unit (pixels in evaluation); a ``pred`` row with NaN means no box was produced.
    Groups: ``held_out``/``seen`` and ``sent_kind`` of the metas. ``compute()`` gives
    ``acc@0.5``, ``acc@0.75``, ``acc@0.9``, ``miou`` (misses count as 0), ``n`` and
    ``unparseable``, and ``<group>/<name>`` for each group; with ``scene_boxes`` in the
    metas also ``right_object`` (over the samples that list their scene) and, when some
    prediction is on the right object, ``right_object_miou`` and ``right_object_acc@0.5``
    (see the module docstring).
    """

    higher_is_better = True

    def __init__(self, thresholds: Sequence[float] = THRESHOLDS, **kwargs: Any):
        super().__init__(**kwargs)
        self.thresholds = tuple(float(t) for t in thresholds)

    def update(self, pred: Tensor, target: Tensor, metas=None, keys=None) -> None:
        pred, target = torch.as_tensor(pred).float(), torch.as_tensor(target).float()
        if pred.shape != target.shape or pred.ndim != 2 or pred.shape[-1] != 4:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)}: [N, 4]")
        metas = metas_or_none(metas, len(pred))
        missing = torch.isnan(pred).any(-1)
        iou = aligned_iou(torch.nan_to_num(pred), target).masked_fill(missing, 0.0)
        recs = [
            {"iou": float(v), "parsed": not bool(m), "groups": groups_of(meta)}
            for v, m, meta in zip(iou.tolist(), missing.tolist(), metas)
        ]
        for k, meta in enumerate(metas):
            scene = (meta or {}).get("scene_boxes")
            if scene:  # a sample without a box is not on the right object
                recs[k]["right"] = not bool(missing[k]) and right_object(pred[k], target[k], scene)
        self._add(keys, recs)

    def _summary(self, recs: list[dict[str, Any]]) -> dict[str, float | int]:
        n = len(recs)
        out: dict[str, float | int] = {}
        for t in self.thresholds:
            hits = sum(r["iou"] >= t and r["parsed"] for r in recs)
            out[f"acc@{t:g}"] = hits / n if n else float("nan")
        out["miou"] = sum(r["iou"] for r in recs) / n if n else float("nan")
        out["n"] = n
        out["unparseable"] = sum(not r["parsed"] for r in recs)
        known = [r for r in recs if "right" in r]
        if known:
            right = [r for r in known if r.get("right")]
            out["right_object"] = len(right) / len(known)
            if right:  # how well the boxes on the right object fit (absent when none is)
                out["right_object_miou"] = sum(r["iou"] for r in right) / len(right)
                out["right_object_acc@0.5"] = sum(r["iou"] >= 0.5 for r in right) / len(right)
        return out

    def summarize(self, recs: list[dict[str, Any]]) -> dict[str, float | int]:
        """The figures of ``recs`` (``compute`` on the split; the bootstrap on resamples)."""
        return grouped(recs, self._summary)

    def compute(self) -> dict[str, float | int]:
        return self.summarize([r for _, r in self.unique()])


def right_object(pred: Tensor, target: Tensor, scene: Sequence[Sequence[float]]) -> bool:
    """Whether ``pred`` overlaps the referent ``target`` more than any other object of
    ``scene`` (every object's pixel xyxy box, the referent's included): the prediction
    chose the right object, whatever its IoU. The referent is the scene box closest to
    ``target`` (itself, in the corpora's records); ties go to the referent; a prediction
    touching no object is not on the right one."""
    boxes = torch.as_tensor([list(b) for b in scene], dtype=torch.float32).reshape(-1, 4)
    if not len(boxes):
        return False
    referent = int(box_iou(target[None].float(), boxes)[0].argmax())
    overlap = box_iou(pred[None].float(), boxes)[0]
    return bool(overlap[referent] > 0 and overlap[referent] >= overlap.max())


def mentions(text: str, boxes: Sequence[Sequence[float]]) -> list[tuple[str, tuple]]:
    """``[(phrase, box), ...]``: the k-th box marker of ``text`` paired with ``boxes[k]``.

    ``boxes`` are the boxes ``generate`` returned for ``text`` (decoder and textual, in
    order of appearance). The phrase is the text between the previous marker and this
    one without separators (commas, leading "and"). Markers beyond ``len(boxes)`` are
    ignored; boxes beyond the markers get an empty phrase.
    """
    out, start = [], 0
    found = list(MARKER.finditer(text or ""))
    for k, box in enumerate(boxes):
        if k < len(found):
            m = found[k]
            words = re.sub(r"[,;.:]", " ", text[start : m.start()]).split()
            while words and words[0].lower() in _JOINERS:
                words = words[1:]
            out.append((" ".join(words), tuple(float(v) for v in box)))
            start = m.end()
        else:
            out.append(("", tuple(float(v) for v in box)))
    return out


def category_match(phrase: str, category: str) -> bool:
    """Whether the category's words appear consecutively among the phrase's words."""
    p, c = normalize_answer(phrase).split(), normalize_answer(category).split()
    if not c:
        return False
    return any(p[i : i + len(c)] == c for i in range(len(p) - len(c) + 1))


def greedy_match(iou: Tensor, allowed: Tensor, threshold: float = 0.5) -> list[tuple[int, int]]:
    """One-to-one greedy matching of ``[P, G]`` IoUs where ``allowed`` and IoU >= threshold."""
    ok = allowed & (iou >= threshold)
    pairs = [(float(iou[i, j]), i, j) for i, j in ok.nonzero().tolist()]
    pairs.sort(key=lambda t: (-t[0], t[1], t[2]))
    used_p, used_g, out = set(), set(), []
    for _, i, j in pairs:
        if i not in used_p and j not in used_g:
            used_p.add(i)
            used_g.add(j)
            out.append((i, j))
    return out


def match_mentions(
    pred: Sequence[tuple[str, Sequence[float]]],
    truth: Sequence[tuple[str, Sequence[float]]],
    threshold: float = 0.5,
) -> list[tuple[int, int]]:
    """Matches between predicted ``(phrase, box)`` and true ``(category, box)`` lists."""
    if not pred or not truth:
        return []
    pb = torch.tensor([list(b) for _, b in pred], dtype=torch.float64)
    tb = torch.tensor([list(b) for _, b in truth], dtype=torch.float64)
    allowed = torch.tensor([[category_match(p, c) for c, _ in truth] for p, _ in pred])
    return greedy_match(box_iou(pb, tb), allowed, threshold)


class GroundedPR(KeyedRecordMetric):
    """Precision / recall / F1 of the objects mentioned in grounded descriptions.

    ``update(pred, truth, metas=None, keys=None)``: per sample, ``pred`` is a list of
    ``(phrase, box)`` mentions (see :func:`mentions`) and ``truth`` a list of
    ``(category, box)`` objects, boxes xyxy in one unit. A sample without any mention is
    ``unparseable`` (its objects all count as missed).
    """

    higher_is_better = True

    def __init__(self, iou_threshold: float = 0.5, **kwargs: Any):
        super().__init__(**kwargs)
        self.iou_threshold = float(iou_threshold)

    def update(self, pred, truth, metas=None, keys=None) -> None:
        if len(pred) != len(truth):
            raise ValueError(f"{len(pred)} predictions for {len(truth)} truths")
        metas = metas_or_none(metas, len(pred))
        recs = []
        for p, t, meta in zip(pred, truth, metas):
            matches = match_mentions(p, t, self.iou_threshold)
            recs.append({"tp": len(matches), "n_pred": len(p), "n_true": len(t),
                         "matches": matches, "parsed": bool(p), "groups": groups_of(meta)})  # fmt: skip
        self._add(keys, recs)

    @staticmethod
    def _summary(recs: list[dict[str, Any]]) -> dict[str, float | int]:
        tp = sum(r["tp"] for r in recs)
        n_pred, n_true = sum(r["n_pred"] for r in recs), sum(r["n_true"] for r in recs)
        p = tp / n_pred if n_pred else (0.0 if recs else float("nan"))
        r = tp / n_true if n_true else float("nan")
        f1 = 2 * p * r / (p + r) if p + r > 0 else (0.0 if recs else float("nan"))
        return {"precision": p, "recall": r, "f1": f1, "n": len(recs),
                "mentions": n_pred, "objects": n_true,
                "unparseable": sum(not r["parsed"] for r in recs)}  # fmt: skip

    def summarize(self, recs: list[dict[str, Any]]) -> dict[str, float | int]:
        """The figures of ``recs`` (``compute`` on the split; the bootstrap on resamples)."""
        return grouped(recs, self._summary)

    def compute(self) -> dict[str, float | int]:
        return self.summarize([r for _, r in self.unique()])
