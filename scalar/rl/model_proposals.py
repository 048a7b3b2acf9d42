"""Region proposals from the model itself: where it grounds the words it knows.

Every vocabulary word ``w`` is grounded in every prompt image with ``where is the w?``
in one teacher-forced pass (no generation; :func:`scalar.rl.grounding.cell_logprobs`):
its box is the spatial decoder's greedy box and its confidence the peak of the decoder's
attention over the patch grid. The proposals of an image are its confident groundings
(``min_confidence``), most confident first, one per region (a box overlapping a more
confident one by ``nms_iou`` or more is dropped), at most ``max_proposals``; the most
confident grounding is always kept, so that every image has a region. No pixel is
examined and no annotation is read.

The same groundings name the ground rows' queries: the ``max_queries`` most confident
words (suppressed ones included: two words on one region is what mutual exclusivity
settles), then the phrases of the image's weak caption, if any.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from pycocotools import mask as mask_utils

from scalar.core.boxes import box_iou
from scalar.rl.grounding import cell_logprobs, to_px
from scalar.rl.rollout import collate_prompts, rec_sample
from scalar.rl.vocabulary import caption_phrases


def word_query(word: str) -> str:
    return f"the {word}"


@torch.no_grad()
def word_groundings(model, collator, items: Sequence[dict], words: Sequence[str], device=None,
                    chunk: int = 128) -> list[list[tuple[str, tuple, float]]]:  # fmt: skip
    """Per item, ``(word, box in [0, 1], confidence)`` of every word, most confident first."""
    rows = [(i, w) for i in range(len(items)) for w in words]
    out: list[list[tuple[str, tuple, float]]] = [[] for _ in items]
    for s in range(0, len(rows), chunk):
        part = rows[s : s + chunk]
        samples = [rec_sample(items[i]["scene"].image, word_query(w)) for i, w in part]
        batch = collate_prompts(collator, samples, [items[i]["image"] for i, _ in part], device)
        pol = cell_logprobs(model, batch)
        conf = pol["logp"].max(dim=-1).values.exp().tolist()
        boxes = pol["boxes"].tolist()
        for (i, w), b, c in zip(part, boxes, conf):
            out[i].append((w, tuple(float(v) for v in b), float(c)))
    return [sorted(g, key=lambda e: -e[2]) for g in out]


def select_regions(groundings, max_proposals: int = 8, min_confidence: float = 0.0,
                   nms_iou: float = 0.5) -> list[tuple[str, tuple, float]]:  # fmt: skip
    """Confident groundings (most confident first), one per region, at most
    ``max_proposals``; the first grounding always (see the module doc)."""
    kept: list[tuple[str, tuple, float]] = []
    for k, (w, box, c) in enumerate(groundings):
        if len(kept) >= max_proposals or (k > 0 and c < min_confidence):
            break
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        taken = torch.tensor([b for _, b, _ in kept]).reshape(-1, 4)
        if not kept or float(box_iou(torch.tensor([box]), taken).max()) < nms_iou:
            kept.append((w, box, c))
    return kept


def box_mask(box_px: Sequence[float], size: Sequence[int]) -> dict:
    """The RLE of a box's pixels (the mask prompt of a box proposal)."""
    w, h = int(size[0]), int(size[1])
    m = np.zeros((h, w), dtype=np.uint8)
    x1, y1 = int(np.floor(box_px[0])), int(np.floor(box_px[1]))
    x2, y2 = max(x1 + 1, int(np.ceil(box_px[2]))), max(y1 + 1, int(np.ceil(box_px[3])))
    m[max(0, y1) : min(h, y2), max(0, x1) : min(w, x2)] = 1
    return mask_utils.encode(np.asfortranarray(m))


class ModelProposals:
    """Fills prompt items with the model's proposals and the ground rows' queries.

    ``words``: the vocabulary; ``replace``: put the model's regions in ``proposals``
    (False keeps the items' own, e.g. connected components); ``max_queries``: vocabulary
    queries per image; ``captions``: also query the phrases of the image's weak caption.
    """

    def __init__(self, words: Sequence[str], *, replace: bool = True, max_proposals: int = 8,
                 min_confidence: float = 0.0, nms_iou: float = 0.5, max_queries: int = 4,
                 captions: bool = True):  # fmt: skip
        if not words:
            raise ValueError("model proposals need a vocabulary of at least one word")
        self.words, self.replace = list(words), bool(replace)
        self.known = frozenset(words)
        self.max_proposals, self.min_confidence = int(max_proposals), float(min_confidence)
        self.nms_iou, self.max_queries, self.captions = float(nms_iou), int(max_queries), captions

    def fill(self, model, collator, items: Sequence[dict], device=None) -> None:
        for it, g in zip(items, word_groundings(model, collator, items, self.words, device)):
            size = tuple(it["size"])
            confident = [e for k, e in enumerate(g) if k == 0 or e[2] >= self.min_confidence]
            queries = [word_query(w) for w, _, _ in confident[: self.max_queries]]
            heads = {}  # a caption phrase naming no vocabulary word: its last word is its head
            for text in it.get("captions", []) if self.captions else []:
                for p in caption_phrases(text):
                    queries.append(word_query(p))
                    if not set(p.split()) & self.known:
                        heads[word_query(p)] = p.split()[-1]
            it["expressions"], it["heads"] = list(dict.fromkeys(queries)), heads
            if self.replace or not it["proposals"]:
                regions = select_regions(g, self.max_proposals, self.min_confidence, self.nms_iou)
                boxes = [to_px(b, size) for _, b, _ in regions]
                it["proposals"], it["masks"] = boxes, [box_mask(b, size) for b in boxes]
                it["proposal_words"] = [w for w, _, _ in regions]
