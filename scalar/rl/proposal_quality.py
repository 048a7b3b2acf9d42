"""How well the RL stage's class-agnostic proposals find the objects of a corpus.

For every annotated object, the best IoU of the connected-component proposals of its
image (``prompts.component_proposals``, with the ``PromptImages`` defaults) with the
object's true box. On a world whose objects are the only pixels unlike the border colour
the proposals are the answer (IoU near 1); on a world with textured backgrounds they
should find little (a low mean is what makes the world not trivially segmentable).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from PIL import Image

from scalar.data.scene import Scene
from scalar.rl.prompts import component_proposals

HIT_IOU = 0.5


def iou_xyxy(a, b) -> float:
    """IoU of two pixel boxes ``(x1, y1, x2, y2)``."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def best_proposal_ious(scenes: Iterable[Scene], min_area: int = 16, max_proposals: int = 8):
    """The best proposal IoU of each object of ``scenes`` (0 when an image has none)."""
    out = []
    for scene in scenes:
        with Image.open(scene.image.path) as im:
            raw = np.asarray(im.convert("RGB"))
        props = [b for b, _ in component_proposals(raw, min_area, max_proposals)]
        for o in scene.objects:
            out.append(max((iou_xyxy(p, o.box) for p in props), default=0.0))
    return out


def summary(ious: list[float]) -> dict:
    """``{objects, mean_best_iou, share_iou_ge_0_5}`` of ``best_proposal_ious``."""
    arr = np.asarray(ious, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no objects to score proposals against")
    return {
        "objects": int(arr.size),
        "mean_best_iou": round(float(arr.mean()), 4),
        "share_iou_ge_0_5": round(float((arr >= HIT_IOU).mean()), 4),
    }


def best_model_proposal_ious(model, datamodule, scenes, words, max_proposals: int = 8,
                             min_confidence: float = 0.0, nms_iou: float = 0.5,
                             batch_size: int = 8, device=None):  # fmt: skip
    """The best IoU of each object of ``scenes`` with the model's own proposals (its
    confident groundings of ``words``, :mod:`scalar.rl.model_proposals`), images read
    as the RL stage reads them (``datamodule``'s size, mean, std and collator)."""
    from scalar.rl.model_proposals import ModelProposals  # (it imports this module's peers)
    from scalar.rl.prompts import PromptImages

    scenes = list(scenes)
    data = PromptImages(scenes, datamodule.image_size, datamodule.mean, datamodule.std, "model")
    proposer = ModelProposals(words, max_proposals=max_proposals,
                              min_confidence=min_confidence, nms_iou=nms_iou)  # fmt: skip
    out = []
    for s in range(0, len(scenes), batch_size):
        items = [data._item(k) for k in range(s, min(s + batch_size, len(scenes)))]
        proposer.fill(model, datamodule.collator, items, device)
        for it in items:
            for o in it["scene"].objects:
                out.append(max((iou_xyxy(p, o.box) for p in it["proposals"]), default=0.0))
    return out


def corpus_proposal_summary(root, split: str = "val") -> dict | None:
    """``summary`` of a built synthetic corpus's ``split`` (read back through the COCO
    reader); None when the corpus has no COCO annotations or no objects in that split."""
    from pathlib import Path

    from scalar.data.readers.coco import read_coco

    root = Path(root)
    ann = root / "coco" / "annotations" / f"instances_{split}.json"
    if not ann.is_file():
        return None
    ious = best_proposal_ious(read_coco(ann, root / "images", split).scenes)
    return summary(ious) if ious else None
